"""The settings fields by area; app.config.Settings is the one object that combines them."""

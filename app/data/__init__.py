"""Sources, schema, validation, warehouse tables and synthetic data."""

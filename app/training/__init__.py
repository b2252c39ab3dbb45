"""Training: point-in-time training sets, Ray Train fits, evaluation, MLflow registry."""

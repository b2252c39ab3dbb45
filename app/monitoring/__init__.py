"""Monitoring of live decisions: feature drift and realised model performance."""

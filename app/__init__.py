"""Ray-native credit-risk runtime: ingest, features, training, serving and monitoring."""

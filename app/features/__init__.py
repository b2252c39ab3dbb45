"""Feast feature store: definitions, pure feature functions, apply/materialize/retrieve."""

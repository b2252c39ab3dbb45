"""Errors a user can act on: every job turns these into one clear line and a non-zero exit."""


class CreditRiskError(Exception):
    """Base class: the message names the problem and, where possible, the fix."""


class ConfigError(CreditRiskError):
    """Settings are missing or inconsistent."""


class SourceError(CreditRiskError):
    """The source (local files or Snowflake) is missing, unreachable or wrongly shaped."""


class SnapshotError(CreditRiskError):
    """No usable offline snapshot (not ingested yet, or unreadable)."""


class FeatureStoreError(CreditRiskError):
    """The Feast registry, offline store or online store failed."""


class DatasetSpecError(CreditRiskError):
    """The dataset spec (`dataset.yaml`) is missing, malformed or inconsistent."""

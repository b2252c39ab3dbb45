"""The Feast objects: applicant entity, profile and financial views, request-time view, service."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from feast import Entity, FeatureService, FeatureView, Field, FileSource, RequestSource, ValueType
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.types import Float64, Int64, String

from app.data.schema import APPLICATIONS, FINANCIALS, PROFILE, REQUEST_COLUMNS, TableSpec
from app.data.snapshot import table_path
from app.features.transforms import APPLICATION_FEATURES

# How long a record stays valid: profiles change slowly; bureau-style financial data is
# refreshed more often, so an older record is treated as missing rather than trusted.
PROFILE_TTL = timedelta(days=365)
FINANCIALS_TTL = timedelta(days=180)
SOURCE_STAMP = datetime(1970, 1, 1, tzinfo=UTC)

applicant = Entity(
    name="applicant",
    join_keys=["applicant_id"],
    value_type=ValueType.STRING,
    description="A credit applicant (stable id assigned at ingest).",
)

_FEAST_TYPES = {"string": String, "int64": Int64}


def _fields(spec: TableSpec) -> list[Field]:
    return [Field(name=c, dtype=_FEAST_TYPES[str(spec.columns[c])]) for c in spec.feature_columns]


def _source(spec: TableSpec, offline_dir: Path) -> FileSource:
    source = FileSource(
        name=f"{spec.name}_source",
        path=str(table_path(offline_dir, spec.name)),
        timestamp_field=spec.timestamp,
    )
    # A source stamps itself with its construction time and a view stores its source with the
    # stamps; once materialized, a view differs from the repo's (its intervals), and `feast
    # plan` then reports those stamps as an update. Fixed stamps make a rebuilt view equal.
    source.created_timestamp = source.last_updated_timestamp = SOURCE_STAMP
    return source


def _application_udf(inputs: pd.DataFrame) -> pd.DataFrame:
    # Feast stores the UDF's source and re-executes it alone, so the import must be inside.
    from app.features.transforms import application_features

    return application_features(inputs)


def build_definitions(offline_dir: Path, feature_service_name: str) -> list:
    """Every object `feast apply` would register, bound to the current offline snapshot."""
    profile_view = FeatureView(
        name=PROFILE.name,
        entities=[applicant],
        ttl=PROFILE_TTL,
        schema=_fields(PROFILE),
        source=_source(PROFILE, offline_dir),
        online=True,
        description="Demographics, housing, property and job of the applicant.",
    )
    financials_view = FeatureView(
        name=FINANCIALS.name,
        entities=[applicant],
        ttl=FINANCIALS_TTL,
        schema=_fields(FINANCIALS),
        source=_source(FINANCIALS, offline_dir),
        online=True,
        description="Accounts, savings, credit history, employment and other obligations.",
    )
    application_request = RequestSource(
        name="loan_application",
        schema=[
            Field(name=c, dtype=_FEAST_TYPES[str(APPLICATIONS.columns[c])]) for c in REQUEST_COLUMNS
        ],
    )
    application_view = OnDemandFeatureView(
        name="application_features",
        sources=[application_request, profile_view[["age_in_years"]]],
        schema=[Field(name=c, dtype=Float64) for c in APPLICATION_FEATURES],
        mode="pandas",
        udf=_application_udf,
        # Feast's decorator reads the source through dill, which fails in a process that has
        # already loaded views from the registry; the standard library reads it reliably.
        udf_string=inspect.getsource(_application_udf),
        description="Request-time features of the loan application.",
    )
    service = FeatureService(
        name=feature_service_name,
        features=[profile_view, financials_view, application_view],
        description="Features of the credit model version this service is named for.",
    )
    return [applicant, profile_view, financials_view, application_view, service]

"""The Feast objects of a dataset spec: its entity, one view per feature table, the request
source (the spine's request fields), the on-demand view of its derived features and the
feature service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, RequestSource, ValueType
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.transformation.udf_rehydrate import rehydrate_udf_from_source
from feast.types import Bool, Float64, Int64, String

from app.data.snapshot import table_path
from app.dataset import Dataset, TableSpec

SOURCE_STAMP = datetime(1970, 1, 1, tzinfo=UTC)
DERIVED_VIEW = "derived_features"
UDF_NAME = "derived_features"

_FEAST_TYPES = {"string": String, "int64": Int64, "double": Float64, "bool": Bool}


def _fields(spec: TableSpec, columns: list[str]) -> list[Field]:
    schema = spec.arrow_schema
    return [Field(name=c, dtype=_FEAST_TYPES[str(schema.field(c).type)]) for c in columns]


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


def udf_source(dataset: Dataset) -> str:
    """The on-demand view's function as source text, its expressions written in.

    Feast stores this text in the registry and re-executes it alone (`feast serve`, another
    process), so it cannot close over the loaded spec: it carries the definitions itself and
    evaluates them with the same compiled expressions as training and the request path. The
    text changes exactly when the spec's derived features do, which is what `feast plan`
    compares.
    """
    pairs = [(d.name, d.text) for d in dataset.spec.features.derived]
    rows = "".join(f"        ({name!r}, {expr!r}),\n" for name, expr in pairs)
    return (
        f"def {UDF_NAME}(inputs):\n"
        f'    """Derived features of dataset {dataset.name!r} (its dataset.yaml)."""\n'
        "    from app.dataset.expressions import derive_frame\n\n"
        f"    return derive_frame(\n        inputs,\n        (\n{rows}        ),\n    )\n"
    )


def build_definitions(dataset: Dataset, offline_dir: Path, feature_service_name: str) -> list:
    """Every object `feast apply` would register, bound to the current offline snapshot."""
    entity = Entity(
        name=dataset.spec.entity.name,
        join_keys=[dataset.entity_key],
        value_type=ValueType.STRING,
        description=dataset.spec.entity.description,
    )
    views = [
        FeatureView(
            name=table.name,
            entities=[entity],
            ttl=timedelta(days=dataset.ttl_days(table.name) or 0),
            schema=_fields(table, [c for c in table.feature_columns if c != dataset.entity_key]),
            source=_source(table, offline_dir),
            online=True,
            description=dataset.spec.sources.tables[table.name].description,
        )
        for table in dataset.feature_tables
    ]
    objects: list = [entity, *views]
    served: list = list(views)
    if dataset.derived_names:
        spine = dataset.spine
        sources: list = []
        if dataset.request_columns:
            sources.append(
                RequestSource(
                    name=f"{spine.name}_request",
                    schema=_fields(spine, list(dataset.request_columns)),
                )
            )
        inputs = set(dataset.derived_inputs)
        for view in views:
            used = [f.name for f in view.features if f.name in inputs]
            if used:
                sources.append(view[used])
        text = udf_source(dataset)
        derived = OnDemandFeatureView(
            name=DERIVED_VIEW,
            sources=sources,
            schema=[Field(name=c, dtype=Float64) for c in dataset.derived_names],
            mode="pandas",
            # The function Feast runs is the one its text defines (as Feast itself rebuilds
            # it from the registry), so the two can never differ.
            udf=rehydrate_udf_from_source(text, preferred_name=UDF_NAME),
            udf_string=text,
            description="Derived features (the dataset spec's `features.derived`).",
        )
        objects.append(derived)
        served.append(derived)
    service = FeatureService(
        name=feature_service_name,
        features=served,
        description="Features of the credit model version this service is named for.",
    )
    return [*objects, service]

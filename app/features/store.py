"""The feature store from settings: apply, materialize, training sets, online reads."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from feast import FeatureStore

from app.config import Settings
from app.data.snapshot import load_snapshot, read_manifest
from app.dataset import Dataset
from app.errors import FeatureStoreError
from app.features.repo import apply_repo, repo_config, write_feature_repo
from app.features.training_set import training_entities, training_frame

log = logging.getLogger(__name__)


def get_store(settings: Settings) -> FeatureStore:
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=repo_config(settings))


def describe_online_store(settings: Settings) -> str:
    if settings.online_store == "redis":
        return f"Redis online store at {settings.redis_host}:{settings.redis_port}"
    return f"SQLite online store at {settings.feast_dir / 'online_store.db'}"


def check_online_store(settings: Settings) -> None:
    """Fail fast, naming the store, when the online store cannot be reached."""
    if settings.online_store != "redis":
        return
    import redis

    from app.connections import redis_client

    # One attempt with a short timeout: a refused connection is the answer.
    client = redis_client(settings, timeout=3, retry=False)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise FeatureStoreError(
            f"{describe_online_store(settings)} is unreachable: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        client.close()


def apply_definitions(store: FeatureStore, settings: Settings) -> list:
    """Make the registry what the feature repo defines (as `feast apply` does); the objects."""
    return apply_repo(store, settings)


@dataclass
class MaterializeReport:
    snapshot_id: str
    online_store: str
    views: list[str]
    start: datetime | None
    end: datetime
    incremental: bool
    repo_dir: Path


def materialize(
    settings: Settings,
    full: bool = False,
    end: datetime | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> MaterializeReport:
    """Apply the definitions, then load new feature rows into the online store.

    The first run (or `full`) loads everything from the earliest event in the snapshot, since
    Feast's own first incremental window only reaches back one TTL; later runs load only what
    arrived since the previous run. The rows go through Feast's own write path, streamed by
    Ray Data (app/features/online_load.py; needs a running Ray when a window is large), and
    `on_progress(rows done, rows)` is told as batches land.
    """
    from app.features.online_load import load_views

    manifest = read_manifest(settings.offline_dir)
    check_online_store(settings)
    end = end or datetime.now(UTC)
    # The repo first: the CLI then sees the definitions this run applies.
    repo = write_feature_repo(settings)
    store = get_store(settings)
    try:
        apply_definitions(store, settings)
        views = [v for v in store.list_feature_views() if v.online]
        fresh = full or any(not v.materialization_intervals for v in views)
        start = earliest_event(settings) if fresh else None
        load_views(store, views, end, start, on_progress=on_progress)
    except FeatureStoreError:
        raise
    except Exception as exc:
        raise FeatureStoreError(
            f"materialize into {describe_online_store(settings)} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    return MaterializeReport(
        snapshot_id=manifest["snapshot_id"],
        online_store=describe_online_store(settings),
        views=sorted(v.name for v in views),
        start=start,
        end=end,
        incremental=not fresh,
        repo_dir=repo,
    )


def feature_event_times(settings: Settings) -> list:
    """Each feature table's event times (pyarrow arrays; only its time column is read)."""
    import pyarrow.parquet as pq

    from app.data.snapshot import table_path

    return [
        pq.read_table(table_path(settings.offline_dir, spec.name), columns=[spec.timestamp]).column(
            0
        )
        for spec in settings.load_dataset().feature_tables
    ]


def earliest_event(settings: Settings) -> datetime:
    """Just before the first event time of any feature table: a full load's start."""
    import pyarrow.compute as pc

    first = min(pc.min(times).as_py() for times in feature_event_times(settings))
    return first - timedelta(seconds=1)


def get_training_frame(
    settings: Settings, applications_df: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Features as of each application's time (never later values), one row per application,
    sorted by the spine key; joined as `training_join` says (DuckDB or Feast)."""
    if settings.training_join == "duckdb":
        return training_frame(settings, applications_df)
    return feast_training_frame(settings, applications_df)


def feast_training_frame(
    settings: Settings, applications_df: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The training set from Feast's `get_historical_features` (its file offline store).

    Applies the definitions first (idempotent), so a training set can be built from a fresh
    snapshot without materializing the online store.
    """
    dataset = settings.load_dataset()
    key = dataset.spine.key
    if applications_df is None:
        applications_df = load_snapshot(settings.offline_dir, dataset.spine.name)
    store = get_store(settings)
    apply_definitions(store, settings)
    service = store.get_feature_service(settings.feature_service_name)
    entity_df = training_entities(applications_df, dataset)
    joined = store.get_historical_features(entity_df=entity_df, features=service).to_df()
    # Feast's file offline store drops an application outright when one of its views has no
    # row within the TTL; keep every application and leave those features missing instead.
    features = joined.drop(columns=[c for c in entity_df.columns if c != key])
    frame = entity_df.merge(features, on=key, how="left", validate="one_to_one")
    return frame.sort_values(key, kind="mergesort").reset_index(drop=True)


def request_row(application: Mapping[str, Any], dataset: Dataset) -> dict[str, Any]:
    """An online lookup row: the entity and the application's request fields, typed as the
    request source declares them."""
    key = dataset.entity_key
    row: dict[str, Any] = {key: str(application[key])}
    for column in dataset.request_columns:
        value = application[column]
        kind = dataset.columns[column].type
        row[column] = value if kind not in ("int", "float", "bool") else _typed(value, kind)
    return row


def _typed(value: Any, kind: str) -> Any:
    if value is None or value != value:
        return None
    return {"int": int, "float": float, "bool": bool}[kind](value)


def get_online_features(
    store: FeatureStore, feature_service_name: str, rows: list[dict]
) -> pd.DataFrame:
    """Online features for entities, with each application's request fields in `rows`."""
    # The cached registry is re-validated against the file (Feast's sync cache mode), so a
    # new apply is still seen; uncached, every lookup re-parses the registry (~8 ms here).
    service = store.get_feature_service(feature_service_name, allow_cache=True)
    return store.get_online_features(features=service, entity_rows=rows).to_df()


def missing_in_snapshot(settings: Settings, entity: str) -> set[str]:
    """The features the entity's latest snapshot rows leave empty, and the derived features
    computed from them."""
    dataset = settings.load_dataset()
    missing: set[str] = set()
    for table in dataset.feature_tables:
        rows = load_snapshot(
            settings.offline_dir, table.name, where=(dataset.entity_key, "==", entity)
        )
        if rows.empty:
            missing.update(table.feature_columns)
            continue
        latest = rows.sort_values(table.timestamp).iloc[-1]
        missing.update(c for c in table.feature_columns if latest.isna().get(c, True))
    # In definition order, so a derived feature of a derived feature follows it.
    for name, definition in dataset.derived.items():
        if missing & set(definition.inputs):
            missing.add(name)
    return missing

"""What a user would otherwise run for each stage, doing the same work at the same size:
Feast's own materialize and get_historical_features, plain xgboost.train, a single-process
pandas + XGBoost scoring loop, plain Evidently. Each returns (rows, detail)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.scale.stages import Size, silenced

PEER_PROJECT = "peer"  # its own Feast project: its own registry rows and Redis keys
ONLINE_CHUNK = 10_000  # entity rows per get_online_features call in the scoring loop


def peer_settings(settings: Any, work: Path) -> Any:
    """The same data and online store under another Feast project and directory."""
    from benchmarks.harness.workload import bench_settings

    return bench_settings(
        work,
        feast_dir=work / f"feast_peer_{settings.online_store}",
        feast_project=PEER_PROJECT,
        online_store=settings.online_store,
        redis_port=settings.redis_port,
    )


def _feast_store(settings: Any) -> Any:
    from app.features.repo import write_feature_repo
    from app.features.store import apply_definitions, get_store

    write_feature_repo(settings)
    store = get_store(settings)
    apply_definitions(store, settings)
    return store


def feast_materialize(size: Size, store: str, incremental: bool) -> tuple[int, str]:
    """`FeatureStore.materialize` / `materialize_incremental` (Feast's local engine)."""
    from app.features.store import earliest_event

    settings = peer_settings(getattr(size, store), size.work)
    feast = _feast_store(settings)
    views = [v.name for v in feast.list_feature_views() if v.online]
    with silenced():
        if incremental:
            feast.materialize_incremental(end_date=datetime.now(UTC), feature_views=views)
        else:
            start = earliest_event(settings)
            feast.materialize(start_date=start, end_date=size.cutoff, feature_views=views)
    return size.rows, f"Feast {'materialize_incremental' if incremental else 'materialize'}"


def feast_training_set(size: Size) -> tuple[int, str]:
    """`get_historical_features` on Feast's default (file) offline store, the whole frame."""
    from app.data.snapshot import load_snapshot
    from app.features.training_set import training_entities

    settings = peer_settings(size.sqlite, size.work)
    dataset = settings.load_dataset()
    store = _feast_store(settings)
    service = store.get_feature_service(settings.feature_service_name)
    entities = training_entities(load_snapshot(settings.offline_dir, dataset.spine.name), dataset)
    frame = store.get_historical_features(entity_df=entities, features=service).to_df()
    frame.to_parquet(size.work / "training_frame.parquet", index=False)  # the training peer's
    return len(frame), f"{frame.shape[1]} columns"


def plain_xgboost(size: Size) -> tuple[int, str]:
    """Split, encode and `xgboost.train` with the job's parameters and early stopping, in one
    process, on the training set Feast's peer wrote (its read is timed: it is small)."""
    import pandas as pd
    import xgboost as xgb

    from app.training.dataset import configured_split
    from app.training.preprocess import FeatureEncoder
    from app.training.train import base_params

    settings = size.settings
    frame = pd.read_parquet(size.work / "training_frame.parquet")
    encoder = FeatureEncoder.for_dataset(settings.load_dataset())
    splits = configured_split(frame, settings)
    label = settings.load_dataset().label
    train, valid = (
        xgb.DMatrix(encoder.transform_array(p), label=p[label], feature_names=encoder.feature_names)
        for p in (splits.train, splits.validation)
    )
    params = {**base_params(settings, encoder), "nthread": 2}
    booster = xgb.train(
        params,
        train,
        settings.num_boost_round,
        [(train, "train"), (valid, "validation")],
        early_stopping_rounds=settings.early_stopping_rounds,
        verbose_eval=False,
    )
    return len(frame), f"{booster.best_iteration + 1} rounds"


def pandas_scoring(size: Size) -> tuple[int, str]:
    """One process: Feast online reads in chunks, then the booster's PD and `pred_contribs`
    reasons (the champion's own CreditModel.score), for every application of the snapshot."""
    from app.data.snapshot import load_snapshot
    from app.features.store import get_online_features, get_store, request_row
    from app.training.source import RegistryModelSource

    settings = size.settings
    dataset = settings.load_dataset()
    source = RegistryModelSource(settings)
    model = source.load(source.aliases()["champion"]).model
    store = get_store(settings)
    applications = load_snapshot(settings.offline_dir, dataset.spine.name)
    declined = 0
    for first in range(0, len(applications), ONLINE_CHUNK):
        chunk = applications.iloc[first : first + ONLINE_CHUNK]
        rows = [request_row(a, dataset) for a in chunk.to_dict("records")]
        features = get_online_features(store, settings.feature_service_name, rows)
        # Feast returns the stored and derived features; the request's own fields are the rows'.
        features = features.assign(**{c: chunk[c].to_numpy() for c in dataset.request_columns})
        scored = model.score(features)
        declined += int((scored["decision"] == "decline").sum())
    return len(applications), f"{declined:,} declined"


def evidently_preset(size: Size) -> tuple[int, str]:
    """Evidently's DataDriftPreset on the whole window, its own methods and rule."""
    from benchmarks.drift import run_evidently

    reference, current = size.window
    outcome = run_evidently(reference, current, size.frames)
    return size.rows, f"{outcome.drifted_columns}/{outcome.columns} columns drifted"

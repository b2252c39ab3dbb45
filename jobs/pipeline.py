"""The main job on embedded defaults: source -> ingest -> feature store -> online read -> model."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from app.config import Settings, load_settings
from app.data.ingest import ingest
from app.data.schema import TABLES
from app.data.snapshot import load_snapshot
from app.data.sources import local_table_path
from app.data.warehouse import source_tables, write_local_tables
from app.errors import SourceError
from app.features.store import get_online_features, get_store, materialize, request_row
from app.runtime import init_ray, run_job, setup_logging
from jobs.ingest import print_report


class Stages:
    """Runs stages in order, printing what each did, how long it took and where to look."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, str]] = []

    def run(self, name: str, step: Callable[[], str]) -> None:
        print(f"\n==> {name}", flush=True)
        started = time.perf_counter()
        detail = step()
        elapsed = time.perf_counter() - started
        self.rows.append((name, elapsed, detail))
        print(f"    done in {elapsed:.1f} s: {detail}", flush=True)

    def summary(self) -> None:
        width = max(len(name) for name, _, _ in self.rows)
        print("\nSummary")
        for name, elapsed, detail in self.rows:
            print(f"  {name:<{width}}  {elapsed:>6.1f} s  {detail}")


def prepare_local_source(settings: Settings) -> str:
    """Write the shipped data as local warehouse tables unless they are already there."""
    try:
        for spec in TABLES.values():
            local_table_path(settings.local_source_dir, spec)
        return f"using existing tables in {settings.local_source_dir}"
    except SourceError:
        tables = source_tables(settings.raw_data_path, settings.seed)
        write_local_tables(tables, settings.local_source_dir)
        rows = len(next(iter(tables.values())))
        return f"wrote {rows:,} applicants as 3 tables to {settings.local_source_dir}"


def sample_online_read(settings: Settings) -> str:
    application = load_snapshot(settings.offline_dir, "loan_applications").iloc[0]
    row = request_row(application)
    features = get_online_features(get_store(settings), settings.feature_service_name, [row])
    values = features.iloc[0].to_dict()
    print(f"    online features of {row['applicant_id']}:")
    for name in sorted(values):
        print(f"      {name:<58} {values[name]}")
    missing = [k for k, v in values.items() if v is None]
    if missing:
        raise SourceError(f"online store returned no value for {', '.join(missing)}")
    return f"{len(values) - 1} features for {row['applicant_id']} from the online store"


def train_model(settings: Settings) -> str:
    """Train and register a model unless the champion was already trained on this snapshot."""
    from app.data.snapshot import read_manifest
    from app.training import registry
    from app.training.train import train_and_register

    snapshot_id = read_manifest(settings.offline_dir)["snapshot_id"]
    client = registry.client(settings)
    champion = registry.alias_version(client, settings.model_name, registry.CHAMPION)
    if champion is not None:
        run_id = client.get_model_version(settings.model_name, champion).run_id
        if client.get_run(run_id).data.tags.get("snapshot_id") == snapshot_id:
            return f"champion v{champion} was trained on snapshot {snapshot_id}: kept"
    report = train_and_register(settings)
    aliases = ", ".join(report.aliases)
    return (
        f"{settings.model_name} v{report.version} ({aliases}), test AUC "
        f"{report.metrics['test_auc']:.3f}; MLflow UI: mlflow ui --backend-store-uri "
        f"{settings.mlflow_tracking_uri}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.pipeline", description=__doc__)
    parser.parse_args()
    setup_logging()
    settings = load_settings()
    stages = Stages()
    print(f"data directory: {settings.data_dir}")
    if settings.source == "local":
        stages.run("source", lambda: prepare_local_source(settings))

    def run_ingest() -> str:
        init_ray(settings)
        report = ingest(settings)
        print_report(report)
        return f"snapshot {report.snapshot_id} ({report.rejected:,} rows rejected)"

    def run_materialize() -> str:
        report = materialize(settings)
        kind = "incremental" if report.incremental else "full"
        return f"{kind} load of {', '.join(report.views)} into {report.online_store}"

    stages.run("ingest", run_ingest)
    stages.run("feature store", run_materialize)
    stages.run("online lookup", lambda: sample_online_read(settings))
    stages.run("train", lambda: train_model(settings))
    stages.summary()
    return 0


if __name__ == "__main__":
    run_job(main)

"""Ours: each stage of the loop as the jobs run it, at one size, in this (the driver) process
on one local Ray. Each function returns (rows, detail)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass
class Size:
    """One size's run: its data directory, the settings of each online store, and when the
    full materialization ends (the incremental one then loads the newest ~1 % of rows)."""

    rows: int
    work: Path
    sqlite: Any  # Settings
    redis: Any  # Settings
    cutoff: datetime | None = None
    frames: Any = None  # benchmarks.drift.Frames, for the drift window and the log records
    window: Any = None  # (reference, current) of the drift check, drawn untimed

    @property
    def settings(self) -> Any:
        return self.sqlite


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """Feast prints a progress bar per view and warns on every call, MLflow logs: kept off the
    benchmark's table (Python-level output only: an error still reaches the terminal)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def source(size: Size) -> tuple[int, str]:
    """jobs.seed: synthetic applicants from the spec's generator, written as warehouse tables."""
    from app.data.warehouse import source_tables, write_local_tables

    tables = source_tables(size.settings, rows=size.rows)
    write_local_tables(tables, size.settings)
    return size.rows, f"{len(tables)} tables"


def ingest(size: Size) -> tuple[int, str, float]:
    """jobs.ingest: read through Ray Data, validate, snapshot; also the snapshot's own time."""
    from app.data.ingest import ingest as run

    report = run(size.settings)
    valid = sum(t.valid for t in report.tables)
    return size.rows, f"{valid:,} valid rows, {report.rejected:,} rejected", report.write_seconds


def event_cutoff(settings: Any, share: float = 0.99) -> datetime:
    """The time before which `share` of the feature rows happened (untimed preparation)."""
    import pandas as pd

    from app.features.store import feature_event_times

    stamps = [times.to_pandas() for times in feature_event_times(settings)]
    return pd.concat(stamps).quantile(share).to_pydatetime()


def materialize(size: Size, store: str, incremental: bool) -> tuple[int, str]:
    """jobs.materialize: the first run loads every row up to the cutoff, the second (the
    incremental one) what arrived after it."""
    from app.features.store import materialize as run

    settings = getattr(size, store)
    with silenced():
        if incremental:
            report = run(settings, end=datetime.now(UTC))
        else:
            report = run(settings, full=True, end=size.cutoff)
    return size.rows, f"{'incremental' if report.incremental else 'full'} {report.online_store}"


def training_set(size: Size) -> tuple[int, str]:
    from app.features.store import get_training_frame

    frame = get_training_frame(size.settings)
    return len(frame), f"{frame.shape[1]} columns"


def train(size: Size) -> tuple[int, str]:
    """jobs.train: the training set again, Ray Train fit, evaluation, MLflow, registry."""
    from app.training.train import train_and_register

    report = train_and_register(size.settings)
    phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in report.seconds.items())
    return size.rows, f"v{report.version}, test AUC {report.metrics['test_auc']:.3f} ({phases})"


def batch_scoring(size: Size, counter_offers: bool = False) -> tuple[int, str]:
    """jobs.score over the snapshot's applications: decisions and reasons, as the peer
    (`jobs.score --no-counter-offers`); with `counter_offers`, each decline's offer too."""
    from app.scoring import score_table

    out = size.work / ("scores-offers" if counter_offers else "scores")
    report = score_table(size.settings, output_path=out, counter_offers=counter_offers)
    return report.rows, f"{report.declined:,} declined, {report.offered:,} offers"


def drift(size: Size) -> tuple[int, str]:
    """The drift check the monitor runs, on a window of `rows` decisions."""
    from app.monitoring.drift import drift_config
    from benchmarks.drift import run_ours

    reference, current = size.window
    outcome = run_ours(reference, current, size.frames, drift_config(size.settings), None)
    return size.rows, f"{outcome.drifted_columns}/{outcome.columns} columns drifted"


def compaction(size: Size) -> tuple[int, str]:
    """The prediction log's journal (segments of 500, as replicas leave them) into Parquet."""
    from app.predictions.log import compact_prediction_log
    from app.predictions.schema import schema_for

    settings = size.settings
    rows = compact_prediction_log(settings.prediction_log_dir, schema_for(settings.load_dataset()))
    return rows, "records into Parquet parts"


def performance(size: Size) -> tuple[int, str]:
    """jobs.monitor performance: the log joined with outcomes, per week, and its report."""
    import argparse

    from jobs.monitor import run_performance

    args = argparse.Namespace(labels=str(size.work / "labels.parquet"), period="W", output=None)
    with silenced():
        run_performance(size.settings, args)
    return size.rows, "weekly table and HTML report"

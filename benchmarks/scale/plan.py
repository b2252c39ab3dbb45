"""The stages in the loop's order, each with its peer and its untimed preparation, and the
summary of targets printed at the end."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from benchmarks.scale import peers, stages
from benchmarks.scale.growth import Measured, exponent, total_seconds
from benchmarks.scale.stages import Size

GIB = 1024**3


@dataclass(frozen=True)
class Stage:
    name: str
    ours: Callable[[Size], tuple]
    peer: Callable[[Size], tuple] | None = None
    peer_name: str = ""
    prep: Callable[[Size], None] | None = None  # untimed, before ours
    done: Callable[[Size], None] | None = None  # after both: drop what prep held


def prepare(rows: int, work: Path, redis_port: int) -> Size:
    from benchmarks.harness.workload import bench_settings

    work.mkdir(parents=True, exist_ok=True)
    sqlite = bench_settings(work, online_store="sqlite")
    redis = bench_settings(work, online_store="redis", redis_port=redis_port)
    return Size(rows, work, sqlite, redis)


def _cutoff(size: Size) -> None:
    if size.cutoff is None:
        size.cutoff = stages.event_cutoff(size.settings)


def _window(size: Size) -> None:
    from benchmarks.drift import build_frames

    if size.frames is None:
        size.frames = build_frames(extra=0, rounds=100, seed=7)
    size.window = (size.frames.draw(size.rows, 1), size.frames.draw(size.rows, 2))


def _drop_window(size: Size) -> None:
    size.window = None


def _journal(size: Size) -> None:
    from benchmarks.scale.records import decision_frame, write_journal, write_labels

    if size.frames is None:
        _window(size)
        size.window = None
    frame = decision_frame(size.frames, size.rows, size.settings)
    write_journal(frame, size.settings.prediction_log_dir)
    key = size.settings.load_dataset().entity_key
    write_labels(frame, size.work / "labels.parquet", key)


def _materialize(store: str, incremental: bool) -> Stage:
    kind = "incremental" if incremental else "full"
    return Stage(
        f"materialize-{store}-{kind}",
        partial(stages.materialize, store=store, incremental=incremental),
        partial(peers.feast_materialize, store=store, incremental=incremental),
        f"Feast {kind}",
        prep=_cutoff,
    )


STAGES: list[Stage] = [
    Stage("source", stages.source),
    Stage("ingest", stages.ingest),
    _materialize("sqlite", False),
    _materialize("sqlite", True),
    _materialize("redis", False),
    _materialize("redis", True),
    Stage(
        "training-set", stages.training_set, peers.feast_training_set, "Feast file offline store"
    ),
    Stage("train", stages.train, peers.plain_xgboost, "plain xgboost.train"),
    Stage("batch-scoring", stages.batch_scoring, peers.pandas_scoring, "pandas + pred_contribs"),
    # The job's default: a search of the model per decline, which the peer does not do.
    Stage("batch-scoring-offers", partial(stages.batch_scoring, counter_offers=True)),
    Stage(
        "drift-check",
        stages.drift,
        peers.evidently_preset,
        "Evidently DataDriftPreset",
        prep=_window,
        done=_drop_window,
    ),
    Stage("log-compaction", stages.compaction, prep=_journal),
    Stage("performance", stages.performance),
]


def summary(ours: Sequence[Measured], theirs: Sequence[Measured], sizes: list[int]) -> str:
    """Per stage: the exponent between the two largest sizes, the peak driver RSS at the
    largest, and the ratio to the peer there; then the whole loop's time per size."""
    lines = ["growth and targets (k between the two largest sizes; k <= 1.1, driver <= 2 GiB)"]
    big = sizes[-1]
    previous = sizes[-2] if len(sizes) > 1 else None
    by = {(m.stage, m.rows): m for m in ours}
    peer = {(m.stage, m.rows): m for m in theirs}
    for name in dict.fromkeys(m.stage for m in ours):
        last = by.get((name, big))
        if last is None:
            continue
        before = by.get((name, previous)) if previous else None
        k = exponent(before.rows, before.seconds, last.rows, last.seconds) if before else math.nan
        other = peer.get((name, big))
        ratio = f"{other.seconds / last.seconds:.2f}x vs {other.peer}" if other else ""
        flags = []
        if not math.isnan(k) and k > 1.1:
            flags.append("k > 1.1")
        if last.driver_peak > 2 * GIB:
            flags.append("driver > 2 GiB")
        state = "; ".join(flags) or "ok"
        lines.append(
            f"  {name:<28} k {k:5.2f}  driver {last.driver_peak / 2**20:7,.0f} MiB  "
            f"{ratio:<40} {state}"
        )
    for rows in sizes:
        lines.append(f"  whole loop at {rows:,}: {total_seconds(ours, rows) / 60:.1f} min")
    return "\n".join(lines)

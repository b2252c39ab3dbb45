"""Benchmark: the cost of ONE drift check, ours (`compute_drift`) vs plain Evidently.

Self-contained, in one process, no Ray: draws synthetic applicants with
`app.data.synthetic.generate_raw` (from the shipped German credit file), adds the model's
request-time features (`application_features`) and the PD of a small XGBoost booster fitted
on another draw (`CreditModel.predict_pd`, i.e. `reference_frame` as training logs it), so a
frame holds the 21 model features (`FeatureEncoder.default()`: 10 numeric, 11 categorical)
plus `probability_of_default` = 22 columns; `--extra-numeric` (default 3) adds that many
noisy copies of continuous numerics (credit amount, duration, age times lognormal noise) to
reach the ~25 columns the spec sizes a check for (0: the real 22).

The reference is `--reference-rows` (default 10,000) rows; each current window (`--sizes`,
default 1k, 10k and 100k rows) is a fresh draw of the same generator with another seed, so
nothing has drifted: every window a method flags is a false alarm. Per size and repeat
(`--repeats`, default 5, each repeat a new window), in turn:

  ours            `compute_drift(reference, window, numeric, categorical, with_report=False)`
                  with the default `DriftConfig` (windows above 20,000 rows sampled)
  ours_uncapped   the same with `DriftConfig(max_rows=10**9)`: every row of the window
  evidently       plain Evidently as a user runs it, methods auto-selected:
                  `Report([DataDriftPreset()]).run(current, reference)` on
                  `Dataset.from_pandas(frame, data_definition=DataDefinition(numerical_columns
                  =..., categorical_columns=...))` (numerics incl. the PD; the categoricals),
                  then `snapshot.dict()` to read the result
  ours_html       `compute_drift(..., with_report=True)` + `snapshot.save_html` to a temp file,
                  what the monitor actor does per check (`--html-sizes`, default 100k only)

Timed: building the Evidently datasets from the frames, the report, reading its result (and
for ours_html writing the HTML); not timed: drawing the frames. Evidently's import is timed
once and printed, and one untimed check of every method on a small window runs first (lazy
imports, first-call caches), so neither is in the figures. Figures: median and min seconds
per check (wall clock), the median CPU time of the process per check, the ratio of each
method's median to plain Evidently's at the same size, the cores the rest of the machine used
meanwhile (a shared machine: above NOISY_CORES the wall clock is disturbed), and the
false alarms: windows flagged as dataset drift (ours: `result.dataset_drift`, i.e. >= 1
drifted feature or a drifted PD; Evidently: `DriftedColumnsCount` share >= 0.5, its preset's
own dataset-drift rule) out of the windows checked, with the largest number of columns a
method flagged in one window. The spec's target: ours <= 2 s per check at 100k rows.

Run from the project root (a full run takes a few minutes on 2 cores):

    .venv/bin/python benchmarks/drift.py                    # 1k/10k/100k, 5 repeats
    .venv/bin/python benchmarks/drift.py --markdown         # + a Markdown table
    .venv/bin/python benchmarks/drift.py --sizes 1000,10000 --repeats 3
    .venv/bin/python benchmarks/drift.py --wait-quiet 300  # on a shared machine
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from serving import busy_seconds, wait_quiet  # sibling script: benchmarks/ is on sys.path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:  # `python benchmarks/drift.py` from anywhere
    sys.path.insert(0, str(PROJECT_ROOT))

METHODS = ("ours", "ours_uncapped", "evidently", "ours_html")
LABELS = {
    "ours": "ours (default, cap 20k)",
    "ours_uncapped": "ours, no cap",
    "evidently": "plain Evidently preset",
    "ours_html": "ours + HTML report",
}
# Continuous numerics the extra noisy copies are made of (in this order, cycled).
EXTRA_SOURCES = ("credit_amount", "duration_in_month", "age_in_years")
EXTRA_SIGMA = 0.05
TARGET_SECONDS = 2.0  # the spec: one check of a 100k window
TARGET_ROWS = 100_000
# Windows are drawn with seeds from here on (the reference and the PD model use --seed and
# --seed + 1, kept below it), so no window repeats the reference.
WINDOW_SEED = 1_000_000
WARM_SEED = 2_000_000
NOISY_CORES = 0.25  # CPU used by other processes during a check above which it is disturbed


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of row counts: {text!r}") from None
    if not sizes or any(n < 100 for n in sizes):
        raise argparse.ArgumentTypeError(f"sizes must be >= 100 rows: {text!r}")
    return sizes


# --- data ----------------------------------------------------------------------------------


@dataclass
class Frames:
    """Draws frames the way the monitor sees them: raw features + the model's PD."""

    real: pd.DataFrame
    model: Any  # app.training.model.CreditModel
    numeric: list[str]  # model numerics + the extra copies (not the PD)
    categorical: list[str]
    extra: int

    def draw(self, n: int, seed: int) -> pd.DataFrame:
        from app.data.synthetic import generate_raw
        from app.features.transforms import application_features
        from app.training.reference import reference_frame

        raw = generate_raw(self.real, n, seed)
        features = pd.concat([raw, application_features(raw)], axis=1)
        frame = reference_frame(self.model, features)  # raw features + probability_of_default
        rng = np.random.default_rng([seed, 1])
        for i in range(self.extra):
            source = EXTRA_SOURCES[i % len(EXTRA_SOURCES)]
            noise = rng.lognormal(0.0, EXTRA_SIGMA, n)
            frame[f"{source}_noisy{i + 1}"] = frame[source].to_numpy(dtype="float64") * noise
        return frame


def build_frames(extra: int, rounds: int, seed: int) -> Frames:
    """A small XGBoost booster on a 10k training draw, so the PD column is a real model's."""
    import xgboost as xgb

    from app.config import SHIPPED_DATA_PATH
    from app.data.schema import RAW_LABEL
    from app.data.synthetic import BAD, generate_raw
    from app.data.warehouse import load_raw
    from app.features.transforms import application_features
    from app.training.model import CreditModel
    from app.training.preprocess import FeatureEncoder

    real = load_raw(SHIPPED_DATA_PATH)
    encoder = FeatureEncoder.default()
    raw = generate_raw(real, 10_000, seed)
    train = pd.concat([raw, application_features(raw)], axis=1)
    label = (train[RAW_LABEL] == BAD).astype("int32").to_numpy()
    dtrain = xgb.DMatrix(
        encoder.transform_array(train), label=label, feature_names=encoder.feature_names
    )
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.05, "nthread": 2}
    booster = xgb.train({**params, "seed": seed}, dtrain, num_boost_round=rounds)
    model = CreditModel("xgboost", encoder, booster, 1 / 6)
    numeric = list(encoder.numeric)
    numeric += [f"{EXTRA_SOURCES[i % len(EXTRA_SOURCES)]}_noisy{i + 1}" for i in range(extra)]
    return Frames(real, model, numeric, list(encoder.categorical), extra)


# --- the methods ---------------------------------------------------------------------------


@dataclass
class Outcome:
    seconds: float
    dataset_drift: bool
    drifted_columns: int
    columns: int  # columns compared (incl. the PD)
    detail: str = ""  # which columns drifted
    cpu_seconds: float = 0.0  # this process's CPU time during the check (all its threads)
    other_cores: float = 0.0  # CPU the rest of the machine used meanwhile, in cores


def measured(check: Callable[[], Outcome]) -> Outcome:
    """Run one check and add its CPU time and what the rest of the machine used meanwhile
    (another job on the machine slows the wall-clock figures; the CPU time much less)."""
    wall, cpu, busy = time.perf_counter(), time.process_time(), busy_seconds()
    outcome = check()
    wall = time.perf_counter() - wall
    outcome.cpu_seconds = time.process_time() - cpu
    outcome.other_cores = max(busy_seconds() - busy - outcome.cpu_seconds, 0.0) / wall
    return outcome


def run_ours(reference, current, frames: Frames, config, html_dir: Path | None) -> Outcome:
    from app.monitoring.drift import compute_drift

    started = time.perf_counter()
    result, snapshot = compute_drift(
        reference,
        current,
        frames.numeric,
        frames.categorical,
        config,
        with_report=html_dir is not None,
    )
    if html_dir is not None:
        snapshot.save_html(str(html_dir / "report.html"))
    seconds = time.perf_counter() - started
    drifted = list(result.drifted_features)
    if result.prediction is not None and result.prediction.drifted:
        drifted.append(result.prediction.column)
    columns = len(result.features) + (result.prediction is not None)
    return Outcome(seconds, result.dataset_drift, len(drifted), columns, ", ".join(drifted))


def run_evidently(reference, current, frames: Frames) -> Outcome:
    """What a user writes: the preset, Evidently's auto-selected methods, its own rule."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from app.monitoring.drift import PREDICTION

    numeric = [*frames.numeric, PREDICTION]
    columns = numeric + frames.categorical
    started = time.perf_counter()
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=frames.categorical)
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current[columns], data_definition=definition),
        Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    payload = snapshot.dict()
    seconds = time.perf_counter() - started
    count = share = None
    for metric in payload["metrics"]:
        value = metric["value"]
        if isinstance(value, dict) and "share" in value and "count" in value:
            count, share = int(value["count"]), float(value["share"])
            break
    if count is None:
        raise RuntimeError("no DriftedColumnsCount in the preset's result")
    failed = sorted(
        {
            t["metric_config"]["params"]["column"]
            for t in payload.get("tests", [])
            if t.get("status") == "FAIL" and "column" in t["metric_config"]["params"]
        }
    )
    return Outcome(seconds, share >= 0.5, count, len(columns), ", ".join(failed))


@dataclass
class Cell:
    """One method at one window size: every repeat's outcome."""

    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def times(self) -> list[float]:
        return [o.seconds for o in self.outcomes]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def cpu_median(self) -> float:
        return statistics.median(o.cpu_seconds for o in self.outcomes)

    @property
    def other_median(self) -> float:
        return statistics.median(o.other_cores for o in self.outcomes)

    @property
    def flagged(self) -> int:
        return sum(o.dataset_drift for o in self.outcomes)

    @property
    def max_columns(self) -> int:
        return max(o.drifted_columns for o in self.outcomes)


def methods_at(size: int, args: argparse.Namespace) -> list[str]:
    return [m for m in METHODS if m != "ours_html" or size in args.html_sizes]


# --- report --------------------------------------------------------------------------------


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def rows_of(cells: dict[tuple[int, str], Cell], args: argparse.Namespace) -> list[list[str]]:
    rows = []
    for size in args.sizes:
        plain = cells.get((size, "evidently"))
        for method in methods_at(size, args):
            cell = cells.get((size, method))
            if cell is None or not cell.outcomes:
                continue
            ratio = cell.median / plain.median if plain and plain.outcomes else None
            columns = cell.outcomes[0].columns
            rows.append(
                [
                    f"{size:,}",
                    LABELS[method],
                    f"{cell.median:.3f}",
                    f"{cell.best:.3f}",
                    f"{cell.cpu_median:.3f}",
                    fmt_ratio(ratio),
                    f"{cell.flagged}/{len(cell.outcomes)}",
                    f"{cell.max_columns}/{columns}",
                    f"{cell.other_median:.2f}",
                ]
            )
    return rows


HEADER = [
    "window rows",
    "method",
    "median s",
    "min s",
    "CPU s",
    "vs Evidently",
    "false alarms",
    "max cols drifted",
    "other cores",
]


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    left = {0, 1}

    def line(values: list[str]) -> str:
        return "  ".join(
            v.ljust(w) if i in left else v.rjust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        )

    print(line(HEADER))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def print_markdown(rows: list[list[str]]) -> None:
    print("| " + " | ".join(HEADER) + " |")
    print("|---|---|" + "---:|" * (len(HEADER) - 2))
    for row in rows:
        print("| " + " | ".join(row) + " |")


# --- main ----------------------------------------------------------------------------------


def timed_import() -> float:
    """Seconds to import Evidently (what a fresh process pays once, outside every check)."""
    if any(name == "evidently" or name.startswith("evidently.") for name in sys.modules):
        return float("nan")
    started = time.perf_counter()
    import evidently  # noqa: F401
    from evidently import DataDefinition, Dataset, Report  # noqa: F401
    from evidently.metrics import ValueDrift  # noqa: F401
    from evidently.presets import DataDriftPreset  # noqa: F401

    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=[1_000, 10_000, 100_000],
        help="current window sizes, comma-separated rows",
    )
    parser.add_argument("--reference-rows", type=int, default=10_000, help="rows of the reference")
    parser.add_argument(
        "--repeats", type=int, default=5, help="checks per method and size (a new window each)"
    )
    parser.add_argument(
        "--html-sizes",
        type=parse_sizes,
        default=[100_000],
        help="sizes at which ours_html (report + save_html) is measured too",
    )
    parser.add_argument(
        "--extra-numeric",
        type=int,
        default=3,
        help="noisy copies of continuous numerics added to the 22 columns (0: none)",
    )
    parser.add_argument("--rounds", type=int, default=100, help="boosting rounds of the PD model")
    parser.add_argument("--seed", type=int, default=42, help="seed of the reference and model")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        help="before each window size, wait up to this many seconds for an idle machine",
    )
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument("--json", type=Path, help="also write every outcome to this JSON file")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if not 0 <= args.seed < WINDOW_SEED - 1:
        parser.error(f"--seed must be in 0..{WINDOW_SEED - 2} (windows use seeds above)")

    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    import_seconds = timed_import()
    from app.monitoring.drift import DriftConfig

    started = time.perf_counter()
    frames = build_frames(args.extra_numeric, args.rounds, args.seed)
    reference = frames.draw(args.reference_rows, args.seed + 1)
    columns = len(frames.numeric) + 1 + len(frames.categorical)
    print(
        f"evidently {_version()}, pandas {pd.__version__}, numpy {np.__version__}; "
        f"{os.cpu_count()} CPUs; import of Evidently {import_seconds:.2f} s (not in the figures)"
    )
    print(
        f"reference {len(reference):,} rows x {columns} columns ({len(frames.numeric)} numeric "
        f"incl. {args.extra_numeric} noisy copies, the PD, {len(frames.categorical)} "
        f"categorical); windows {', '.join(f'{n:,}' for n in args.sizes)} rows, "
        f"{args.repeats} repeats (a new window each); set-up {time.perf_counter() - started:.1f} s"
    )

    capped, uncapped = DriftConfig(), DriftConfig(max_rows=10**9)
    with tempfile.TemporaryDirectory(prefix="drift_bench_") as tmp:
        html_dir = Path(tmp)
        runners: dict[str, Callable[[pd.DataFrame, pd.DataFrame], Outcome]] = {
            "ours": lambda ref, cur: run_ours(ref, cur, frames, capped, None),
            "ours_uncapped": lambda ref, cur: run_ours(ref, cur, frames, uncapped, None),
            "evidently": lambda ref, cur: run_evidently(ref, cur, frames),
            "ours_html": lambda ref, cur: run_ours(ref, cur, frames, capped, html_dir),
        }
        # Untimed: first calls import Evidently's metric and rendering modules lazily.
        warm = frames.draw(1_000, WARM_SEED)
        started = time.perf_counter()
        for method in METHODS:
            with contextlib.redirect_stdout(io.StringIO()):
                runners[method](reference, warm)
        warm_seconds = time.perf_counter() - started
        print(f"warm-up (one untimed check per method, 1k rows): {warm_seconds:.1f} s")

        cells: dict[tuple[int, str], Cell] = {}
        for s, size in enumerate(args.sizes):
            wait_quiet(args.wait_quiet)
            for repeat in range(args.repeats):
                current = frames.draw(size, WINDOW_SEED + 1_000 * s + repeat)
                for method in methods_at(size, args):
                    outcome = measured(lambda m=method, c=current: runners[m](reference, c))
                    cells.setdefault((size, method), Cell()).outcomes.append(outcome)
                html = (html_dir / "report.html").stat().st_size if size in args.html_sizes else 0
                print(
                    f"  {size:>7,} rows, repeat {repeat + 1}/{args.repeats}: "
                    + ", ".join(
                        f"{m} {cells[(size, m)].outcomes[-1].seconds:.2f} s"
                        for m in methods_at(size, args)
                    )
                    + (f" (HTML {html / 1e6:.1f} MB)" if html else ""),
                    flush=True,
                )

    rows = rows_of(cells, args)
    print()
    print(
        f"One drift check, reference {len(reference):,} rows, {columns} columns; seconds per "
        f"check over {args.repeats} windows drawn like the reference (no drift):"
    )
    print()
    print_table(rows)
    print()
    print(
        "median s, min s: wall clock per check; CPU s: median CPU time of this process per "
        "check (less sensitive to other jobs on the machine); vs Evidently: median / plain "
        "Evidently's median at the same size (below 1: faster); false alarms: windows flagged "
        "as dataset drift (ours: >= 1 drifted feature or the PD; Evidently: "
        "DriftedColumnsCount share >= 0.5); max cols drifted: most columns one window had "
        "flagged / columns compared; other cores: median CPU the rest of the machine used "
        f"during a check (above {NOISY_CORES} the wall-clock figures are disturbed)."
    )
    noisy = [c for c in cells.values() if c.other_median > NOISY_CORES]
    if noisy:
        print(
            f"WARNING: other processes used > {NOISY_CORES} cores during {len(noisy)} of "
            f"{len(cells)} cells: read their wall-clock figures as upper bounds"
        )
    for size in args.sizes:
        for method in methods_at(size, args):
            named = sorted({o.detail for o in cells[(size, method)].outcomes if o.detail})
            if named:
                print(f"  {size:,} rows, {method} flagged: " + "; ".join(named))
    top = cells.get((TARGET_ROWS, "ours"))
    if top is not None:
        verdict = "meets" if top.median <= TARGET_SECONDS else "MISSES"
        print(
            f"target: ours at {TARGET_ROWS:,} rows {top.median:.2f} s median, {verdict} the "
            f"<= {TARGET_SECONDS:.0f} s target"
        )
        html = cells.get((TARGET_ROWS, "ours_html"))
        if html is not None:
            verdict = "within" if html.median <= TARGET_SECONDS else "above"
            print(
                f"  with the HTML report (what the monitor actor runs per check): "
                f"{html.median:.2f} s median, {verdict} {TARGET_SECONDS:.0f} s"
            )
    if args.markdown:
        print()
        print_markdown(rows)
    if args.json is not None:
        document = {
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "evidently_import_seconds": import_seconds,
            "columns": columns,
            "cells": [
                {
                    "rows": size,
                    "method": method,
                    "outcomes": [o.__dict__ for o in cell.outcomes],
                    "median_s": cell.median,
                    "min_s": cell.best,
                }
                for (size, method), cell in cells.items()
            ],
        }
        args.json.write_text(json.dumps(document, indent=1))
        print(f"written to {args.json}")
    return 0


def _version() -> str:
    from importlib.metadata import version

    return version("evidently")


if __name__ == "__main__":
    sys.exit(main())

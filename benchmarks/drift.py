"""The cost of ONE drift check, ours (`compute_drift`) vs plain Evidently, in one process with
no Ray, on windows drawn like the reference (nothing drifted: every flag is a false alarm).
Method and figures: docs/benchmarks.md, section 5."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from app.config import SHIPPED_DATASET
from app.dataset import load_dataset
from benchmarks.harness.cli import int_list, parser
from benchmarks.harness.machine import NOISY_CORES, busy_seconds, other_cores, wait_quiet
from benchmarks.harness.stats import median
from benchmarks.harness.tables import markdown_table, settings_of, text_table, write_json

METHODS = ("ours", "ours_uncapped", "evidently", "ours_html")
LABELS = {
    "ours": "ours (default, cap 20k)",
    "ours_uncapped": "ours, no cap",
    "evidently": "plain Evidently preset",
    "ours_html": "ours + HTML report",
}
EXTRA_SOURCES = ("credit_amount", "duration_in_month", "age_in_years")  # noisy copies, cycled
EXTRA_SIGMA = 0.05
TARGET_SECONDS, TARGET_ROWS = 2.0, 100_000  # one check of a 100k window
# Windows are drawn with seeds from here on (the reference and the PD model use --seed and
# --seed + 1, kept below it), so no window repeats the reference.
WINDOW_SEED, WARM_SEED = 1_000_000, 2_000_000
HEADER = ["window rows", "method", "median s", "min s", "CPU s", "vs Evidently", "false alarms"]
HEADER += ["max cols drifted", "other cores"]


def sizes(text: str) -> list[int]:
    found = int_list(text)
    if not found or min(found) < 100:
        raise argparse.ArgumentTypeError(f"sizes must be >= 100 rows: {text!r}")
    return found


OPTIONS = [
    ("--sizes", sizes, [1_000, 10_000, 100_000], "current window sizes, comma-separated rows"),
    ("--reference-rows", int, 10_000, "rows of the reference"),
    ("--repeats", int, 5, "checks per method and size (a new window each)"),
    ("--html-sizes", sizes, [100_000], "sizes at which ours_html (with save_html) runs too"),
    ("--extra-numeric", int, 3, "noisy copies of continuous numerics added to the 22 columns"),
    ("--rounds", int, 100, "boosting rounds of the PD model"),
    ("--seed", int, 42, "seed of the reference and model"),
    ("--wait-quiet", float, 0, "before each window size, wait up to this many s for quiet"),
    ("--markdown", bool, False, "also print a Markdown table"),
    ("--json", Path, None, "also write every outcome to this JSON file"),
]


@dataclass
class Frames:
    """Draws frames the way the monitor sees them: raw features + the model's PD."""

    real: Any
    model: Any  # CreditModel
    numeric: list[str]  # model numerics + the extra copies (not the PD)
    categorical: list[str]
    extra: int

    def draw(self, n: int, seed: int) -> Any:
        import numpy as np
        import pandas as pd

        from app.data.synthetic import generate_raw
        from app.training.reference import reference_frame

        raw = generate_raw(self.real, n, seed, dataset=load_dataset(SHIPPED_DATASET))
        frame = reference_frame(
            self.model, pd.concat([raw, load_dataset(SHIPPED_DATASET).derive_frame(raw)], axis=1)
        )
        rng = np.random.default_rng([seed, 1])
        for i in range(self.extra):
            source = EXTRA_SOURCES[i % len(EXTRA_SOURCES)]
            noise = rng.lognormal(0.0, EXTRA_SIGMA, n)
            frame[f"{source}_noisy{i + 1}"] = frame[source].to_numpy(dtype="float64") * noise
        return frame


def build_frames(extra: int, rounds: int, seed: int) -> Frames:
    """A small XGBoost booster on a 10k training draw, so the PD column is a real model's."""
    import pandas as pd
    import xgboost as xgb

    from app.config import SHIPPED_DATA_PATH
    from app.data.synthetic import generate_raw
    from app.data.warehouse import load_raw
    from app.training.model import CreditModel
    from app.training.preprocess import FeatureEncoder

    real, encoder = (
        load_raw(SHIPPED_DATA_PATH, load_dataset(SHIPPED_DATASET)),
        FeatureEncoder.for_dataset(load_dataset(SHIPPED_DATASET)),
    )
    dataset = load_dataset(SHIPPED_DATASET)
    raw = generate_raw(real, 10_000, seed, dataset=dataset)
    train = pd.concat([raw, load_dataset(SHIPPED_DATASET).derive_frame(raw)], axis=1)
    coding = dataset.spec.label
    label = (train[coding.source or coding.name] == coding.positive).astype("int32").to_numpy()
    matrix = encoder.transform_array(train)
    dtrain = xgb.DMatrix(matrix, label=label, feature_names=encoder.feature_names)
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.05, "nthread": 2}
    booster = xgb.train({**params, "seed": seed}, dtrain, num_boost_round=rounds)
    numeric = list(encoder.numeric)
    numeric += [f"{EXTRA_SOURCES[i % len(EXTRA_SOURCES)]}_noisy{i + 1}" for i in range(extra)]
    model = CreditModel("xgboost", encoder, booster, 1 / 6)
    return Frames(real, model, numeric, list(encoder.categorical), extra)


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
    """One check with its CPU time and what the rest of the machine used meanwhile (another
    job slows the wall-clock figures, the CPU time much less)."""
    wall, cpu, busy = time.perf_counter(), time.process_time(), busy_seconds()
    outcome = check()
    wall = time.perf_counter() - wall
    outcome.cpu_seconds = time.process_time() - cpu
    outcome.other_cores = other_cores(busy_seconds() - busy, wall, outcome.cpu_seconds)
    return outcome


def run_ours(
    reference: Any, current: Any, frames: Frames, config: Any, html: Path | None
) -> Outcome:
    from app.monitoring.drift import compute_drift

    started = time.perf_counter()
    result, snapshot = compute_drift(
        reference, current, frames.numeric, frames.categorical, config, with_report=html is not None
    )
    if html is not None:
        snapshot.save_html(str(html))
    seconds = time.perf_counter() - started
    drifted = list(result.drifted_features)
    if result.prediction is not None and result.prediction.drifted:
        drifted.append(result.prediction.column)
    columns = len(result.features) + (result.prediction is not None)
    return Outcome(seconds, result.dataset_drift, len(drifted), columns, ", ".join(drifted))


def run_evidently(reference: Any, current: Any, frames: Frames) -> Outcome:
    """What a user writes: the preset, Evidently's auto-selected methods, its own rule."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from app.domain import PREDICTION

    numeric = [*frames.numeric, PREDICTION]
    columns = numeric + frames.categorical
    started = time.perf_counter()
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=frames.categorical)
    datasets = (
        Dataset.from_pandas(f[columns], data_definition=definition) for f in (current, reference)
    )
    payload = Report([DataDriftPreset()]).run(*datasets).dict()
    seconds = time.perf_counter() - started
    count = next((m["value"] for m in payload["metrics"] if _is_count(m["value"])), None)
    if count is None:
        raise RuntimeError("no DriftedColumnsCount in the preset's result")
    failed = {
        t["metric_config"]["params"]["column"]
        for t in payload.get("tests", [])
        if t.get("status") == "FAIL" and "column" in t["metric_config"]["params"]
    }
    drifted = float(count["share"]) >= 0.5
    return Outcome(seconds, drifted, int(count["count"]), len(columns), ", ".join(sorted(failed)))


def _is_count(value: Any) -> bool:
    return isinstance(value, dict) and "share" in value and "count" in value


@dataclass
class Cell:
    """One method at one window size: every repeat's outcome."""

    outcomes: list[Outcome] = field(default_factory=list)

    def median(self, attribute: str = "seconds") -> float:
        return median(getattr(o, attribute) for o in self.outcomes)

    def row(self, size: int, method: str, plain: Cell | None) -> list[str]:
        o, seconds = self.outcomes, self.median()
        figures = (seconds, min(x.seconds for x in o), self.median("cpu_seconds"))
        vs = f"{seconds / plain.median():.2f}x" if plain and plain.outcomes else "n/a"
        alarms = f"{sum(x.dataset_drift for x in o)}/{len(o)}"
        most = f"{max(x.drifted_columns for x in o)}/{o[0].columns}"
        cells = [*(f"{x:.3f}" for x in figures), vs, alarms, most]
        return [f"{size:,}", LABELS[method], *cells, f"{self.median('other_cores'):.2f}"]


def methods_at(size: int, args: argparse.Namespace) -> list[str]:
    return [m for m in METHODS if m != "ours_html" or size in args.html_sizes]


def timed_import() -> float:
    """Seconds to import Evidently (what a fresh process pays once, outside every check)."""
    if any(name.partition(".")[0] == "evidently" for name in sys.modules):
        return float("nan")
    started = time.perf_counter()
    from evidently import DataDefinition, Dataset, Report  # noqa: F401
    from evidently.metrics import ValueDrift  # noqa: F401
    from evidently.presets import DataDriftPreset  # noqa: F401

    return time.perf_counter() - started


def measure(frames: Frames, reference: Any, args: argparse.Namespace) -> dict[tuple, Cell]:
    """Every method on `--repeats` new windows per size, after one untimed check each."""
    from app.monitoring.drift import DriftConfig

    capped, uncapped = DriftConfig(), DriftConfig(max_rows=10**9)
    cells: dict[tuple, Cell] = {}
    with tempfile.TemporaryDirectory(prefix="drift_bench_") as tmp:
        html = Path(tmp) / "report.html"
        runners = {
            "ours": lambda cur: run_ours(reference, cur, frames, capped, None),
            "ours_uncapped": lambda cur: run_ours(reference, cur, frames, uncapped, None),
            "evidently": lambda cur: run_evidently(reference, cur, frames),
            "ours_html": lambda cur: run_ours(reference, cur, frames, capped, html),
        }
        started, warm = time.perf_counter(), frames.draw(1_000, WARM_SEED)
        for runner in runners.values():  # first calls import Evidently's metrics lazily
            with contextlib.redirect_stdout(io.StringIO()):
                runner(warm)
        seconds = time.perf_counter() - started
        print(f"warm-up (one untimed check per method, 1k rows): {seconds:.1f} s")
        for s, size in enumerate(args.sizes):
            wait_quiet(args.wait_quiet)
            for repeat in range(args.repeats):
                current = frames.draw(size, WINDOW_SEED + 1_000 * s + repeat)
                done = []
                for method in methods_at(size, args):
                    outcome = measured(lambda m=method, c=current: runners[m](c))
                    cells.setdefault((size, method), Cell()).outcomes.append(outcome)
                    done.append(f"{method} {outcome.seconds:.2f} s")
                if size in args.html_sizes:
                    done[-1] += f" (HTML {html.stat().st_size / 1e6:.1f} MB)"
                print(f"  {size:>7,} rows, repeat {repeat + 1}/{args.repeats}: {', '.join(done)}")
    return cells


def report(
    cells: dict[tuple, Cell], args: argparse.Namespace, reference: int, columns: int
) -> list:
    rows = [
        cells[(size, m)].row(size, m, cells.get((size, "evidently")))
        for size in args.sizes
        for m in methods_at(size, args)
    ]
    print(
        f"\nOne drift check, reference {reference:,} rows, {columns} columns; seconds per "
        f"check over {args.repeats} windows drawn like the reference (no drift):\n"
    )
    print(text_table(HEADER, rows, "ll" + "r" * 7))
    print(
        "\n(median s, min s: wall clock; CPU s: this process's; vs Evidently: median / plain "
        "Evidently's; false alarms: windows flagged as dataset drift; max cols drifted: most "
        f"columns one window flagged; other cores: the rest of the machine, > {NOISY_CORES} "
        "disturbs the wall clock; docs/benchmarks.md, section 5)"
    )
    if noisy := [c for c in cells.values() if c.median("other_cores") > NOISY_CORES]:
        print(
            f"WARNING: other processes used > {NOISY_CORES} cores in {len(noisy)} of {len(cells)}"
        )
    for (size, method), cell in cells.items():
        if named := sorted({o.detail for o in cell.outcomes if o.detail}):
            print(f"  {size:,} rows, {method} flagged: " + "; ".join(named))
    for method, what in (("ours", "target:"), ("ours_html", "  with the HTML report:")):
        if (cell := cells.get((TARGET_ROWS, method))) is not None:
            verdict = "meets" if cell.median() <= TARGET_SECONDS else "MISSES"
            seconds = cell.median()
            print(f"{what} {method} at {TARGET_ROWS:,} rows {seconds:.2f} s median, {verdict} 2 s")
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__, OPTIONS).parse_args(argv)
    if args.repeats < 1 or not 0 <= args.seed < WINDOW_SEED - 1:
        raise SystemExit(f"--repeats must be >= 1, --seed in 0..{WINDOW_SEED - 2}")
    import warnings

    warnings.filterwarnings("ignore")
    import_seconds = timed_import()
    started = time.perf_counter()
    frames = build_frames(args.extra_numeric, args.rounds, args.seed)
    reference = frames.draw(args.reference_rows, args.seed + 1)
    columns = len(frames.numeric) + 1 + len(frames.categorical)
    versions = ", ".join(f"{name} {version(name)}" for name in ("evidently", "pandas", "numpy"))
    print(f"{versions}; {os.cpu_count()} CPUs; import of Evidently {import_seconds:.2f} s")
    print(
        f"reference {len(reference):,} rows x {columns} columns ({len(frames.numeric)} numeric "
        f"incl. {args.extra_numeric} noisy copies, the PD, {len(frames.categorical)} categorical); "
        f"windows {', '.join(f'{n:,}' for n in args.sizes)} rows, {args.repeats} repeats (a new "
        f"window each); set-up {time.perf_counter() - started:.1f} s"
    )
    cells = measure(frames, reference, args)
    rows = report(cells, args, len(reference), columns)
    if args.markdown:
        print("\n" + markdown_table(HEADER, rows, "ll" + "r" * 7))
    if args.json is not None:
        outcomes = [
            {"rows": size, "method": method, "outcomes": [o.__dict__ for o in cell.outcomes]}
            | {"median_s": cell.median(), "min_s": min(o.seconds for o in cell.outcomes)}
            for (size, method), cell in cells.items()
        ]
        document = {"settings": settings_of(args), "evidently_import_seconds": import_seconds}
        write_json(args.json, document | {"columns": columns, "cells": outcomes})
        print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

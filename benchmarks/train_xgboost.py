"""Benchmark: XGBoost through Ray Train (`fit_xgboost`) vs plain in-process `xgboost.train`.

Self-contained: generates `--rows` synthetic applicants, builds the training frame directly
(no Feast: `generate_raw` -> `assign_ids_and_times` -> `application_features`, with
`application_timestamp` renamed to `event_timestamp`), splits it 60/20/20 with
`split_frame(..., "random", seed, 0.2, 0.2)`, starts one local Ray (2 CPUs, no dashboard)
and, with the project's default XGBoost settings, times:

  plain            `xgboost.train` in this process on the encoded matrix (nthread=2): DMatrix
                   construction + training, with the same evals and early stopping as ours
  ours WxC[:tN]    `encoded_dataset` for train and validation (encoding + `ray.data.from_pandas`)
                   + `fit_xgboost` with W workers of C CPUs each (XGBoost nthread N, default
                   int(C) as the training job sets it): Ray Train start-up, the workers reading
                   their shards, training, the checkpoint, teardown and loading the booster

Both models are scored on the same held-out test split (AUC). Every pass runs plain first,
then each configuration. Pass 1 uses the default early stopping (so the rounds can differ);
pass 2 (`--fixed-rounds`) trains exactly that many rounds in every variant. A tiny fit
(`--overhead-rows`) per configuration first measures Ray Train's fixed cost.

The workers' training function is wrapped (in this process only, `app/` is unchanged) to
record when the worker starts, when `xgboost.train` starts and ends, how many rounds it
trained, and when the worker returns; the wrapper then calls the project's own worker
function. Run from the project root:

    .venv/bin/python benchmarks/train_xgboost.py --rows 1000000 --workers 2 --repeats 1
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PLAIN = "plain"
PLAIN_NTHREAD = 2
AUC_TARGET = 0.005
RATIO_TARGET = 1.5


# --- configurations --------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """One Ray Train resource setting."""

    workers: int
    cpus_per_worker: float
    nthread: int

    @property
    def name(self) -> str:
        name = f"ours {self.workers}x{self.cpus_per_worker:g}"
        if self.nthread != max(1, int(self.cpus_per_worker)):
            name += f":t{self.nthread}"
        return name

    @property
    def description(self) -> str:
        return (
            f"{self.workers} worker(s) x {self.cpus_per_worker:g} CPU, nthread {self.nthread} "
            f"({self.workers * self.cpus_per_worker:g} of 2 CPUs reserved, "
            f"{self.workers * self.nthread} threads)"
        )


def parse_config(text: str) -> Config:
    """`WxC` (nthread = int(C), as the training job sets it) or `WxC:tN`."""
    try:
        shape, _, threads = text.partition(":t")
        workers, cpus = shape.split("x")
        cpus_per_worker = float(cpus)
        nthread = int(threads) if threads else max(1, int(cpus_per_worker))
        return Config(int(workers), cpus_per_worker, nthread)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad configuration {text!r}: use WxC or WxC:tN") from exc


# --- results ---------------------------------------------------------------------------------


@dataclass
class Run:
    variant: str
    wall_s: float
    auc: float
    best_round: int  # 1-based: trees kept
    rounds_trained: int
    phases: dict[str, float] = field(default_factory=dict)


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


# --- data ------------------------------------------------------------------------------------


def build_splits(settings: Any, rows: int) -> Any:
    """The training frame built directly (no Feast), split 60/20/20 at random (seeded)."""
    from app.data.synthetic import generate_raw
    from app.data.warehouse import assign_ids_and_times, load_raw
    from app.features.transforms import application_features
    from app.training.dataset import split_frame

    raw = generate_raw(load_raw(settings.raw_data_path), n=rows, seed=settings.seed)
    frame = assign_ids_and_times(raw, seed=settings.seed, id_prefix="S")
    del raw
    frame = pd.concat([frame, application_features(frame)], axis=1)
    frame = frame.rename(columns={"application_timestamp": "event_timestamp"})
    return split_frame(frame, "random", settings.seed, 0.2, 0.2)


@dataclass
class Matrices:
    """The encoded matrices plain trains on (built untimed, as the brief's plain path)."""

    features: list[str]
    train: pd.DataFrame
    train_y: np.ndarray
    valid: pd.DataFrame
    valid_y: np.ndarray
    test: Any  # xgboost.DMatrix
    test_y: np.ndarray


def encode(splits: Any, encoder: Any) -> Matrices:
    import xgboost as xgb

    from app.data.schema import LABEL

    features = encoder.feature_names
    test_x = encoder.transform(splits.test)
    return Matrices(
        features=features,
        train=encoder.transform(splits.train),
        train_y=splits.train[LABEL].to_numpy(dtype="float32"),
        valid=encoder.transform(splits.validation),
        valid_y=splits.validation[LABEL].to_numpy(dtype="float32"),
        test=xgb.DMatrix(test_x, feature_names=features),
        test_y=splits.test[LABEL].to_numpy(),
    )


def test_auc(booster: Any, m: Matrices) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(m.test_y, booster.predict(m.test)))


# --- plain -----------------------------------------------------------------------------------


def run_plain(m: Matrices, params: dict[str, Any], rounds: int, patience: int) -> Run:
    """DMatrix construction + `xgboost.train`, evaluated exactly as the Ray Train worker does."""
    import xgboost as xgb

    started = time.perf_counter()
    dtrain = xgb.DMatrix(m.train[m.features], label=m.train_y, feature_names=m.features)
    dvalid = xgb.DMatrix(m.valid[m.features], label=m.valid_y, feature_names=m.features)
    built = time.perf_counter()
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=rounds,
        evals=[(dtrain, "train"), (dvalid, "validation")],
        early_stopping_rounds=patience,
        verbose_eval=False,
    )
    ended = time.perf_counter()
    best = booster.best_iteration
    trained = booster.num_boosted_rounds()
    auc = test_auc(booster[: best + 1], m)
    phases = {"dmatrix": built - started, "train": ended - built}
    return Run(PLAIN, ended - started, auc, best + 1, trained, phases)


# --- ours ------------------------------------------------------------------------------------


def timed_worker(marks_dir: str) -> Callable[[dict[str, Any]], None]:
    """A training function that records timestamps around the project's own worker function.

    Defined here (pickled by value), it imports `app.training.fit` in the worker process, where
    the module is unpatched, and runs its `_xgb_worker` unchanged.
    """

    def worker(config: dict[str, Any]) -> None:
        import ray.train
        import xgboost

        marks: dict[str, float] = {"start": time.time()}
        real_train = xgboost.train

        def train(*args: Any, **kwargs: Any) -> Any:
            marks["train_start"] = time.time()
            booster = real_train(*args, **kwargs)
            marks["train_end"] = time.time()
            marks["rounds_trained"] = booster.num_boosted_rounds()
            return booster

        xgboost.train = train
        try:
            importlib.import_module("app.training.fit")._xgb_worker(config)
        finally:
            xgboost.train = real_train
            marks["end"] = time.time()
            rank = ray.train.get_context().get_world_rank()
            Path(marks_dir, f"rank{rank}.json").write_text(json.dumps(marks))

    return worker


@contextlib.contextmanager
def instrumented(marks_dir: Path) -> Iterator[None]:
    """Let `fit_xgboost` hand `timed_worker` to XGBoostTrainer instead of `_xgb_worker`."""
    import app.training.fit as fit_module

    marks_dir.mkdir(parents=True)
    original = fit_module._xgb_worker
    fit_module._xgb_worker = timed_worker(str(marks_dir))
    try:
        yield
    finally:
        fit_module._xgb_worker = original


def run_ours(
    splits: Any,
    encoder: Any,
    m: Matrices,
    params: dict[str, Any],
    rounds: int,
    patience: int,
    config: Config,
    work_dir: Path,
) -> Run:
    """Ingest into Ray (`encoded_dataset`) + `fit_xgboost`; the wall time includes both."""
    from app.training.fit import encoded_dataset, fit_xgboost

    marks_dir = work_dir / "marks" / uuid.uuid4().hex[:8]
    started = time.perf_counter()
    train_ds = encoded_dataset(splits.train, encoder)
    valid_ds = encoded_dataset(splits.validation, encoder)
    ingested = time.perf_counter()
    fit_called = time.time()
    with instrumented(marks_dir):
        result = fit_xgboost(
            train_ds,
            valid_ds,
            encoder,
            params,
            rounds,
            patience,
            config.workers,
            config.cpus_per_worker,
            work_dir / "ray_results",
        )
    ended = time.perf_counter()
    fit_returned = time.time()
    del train_ds, valid_ds
    marks = [json.loads(p.read_text()) for p in sorted(marks_dir.glob("rank*.json"))]
    first_start = min(mk["start"] for mk in marks)
    phases = {
        "ingest": ingested - started,
        "fit": ended - ingested,
        # fit() called -> first worker function running: controller, placement group, workers,
        # XGBoost's collective (tracker) set-up.
        "startup": first_start - fit_called,
        # worker running -> xgboost.train called: reading the shards (Ray Data streaming split,
        # materialize, to_pandas) and building the DMatrix (slowest rank).
        "read": max(mk["train_start"] - mk["start"] for mk in marks),
        "train": max(mk["train_end"] - mk["train_start"] for mk in marks),
        # xgboost.train done -> worker returns: metrics, checkpoint written and reported.
        "report": max(mk["end"] - mk["train_end"] for mk in marks),
        # last worker returned -> fit_xgboost returned: shutdown + loading the checkpoint.
        "teardown": fit_returned - max(mk["end"] for mk in marks),
    }
    best = int(result.metrics["best_iteration"])
    trained = int(max(mk["rounds_trained"] for mk in marks))
    return Run(
        config.name, ended - started, test_auc(result.estimator, m), best + 1, trained, phases
    )


# --- reporting -------------------------------------------------------------------------------


def summarise(runs: list[Run]) -> dict[str, dict[str, Any]]:
    by_variant: dict[str, list[Run]] = {}
    for run in runs:
        by_variant.setdefault(run.variant, []).append(run)
    summary: dict[str, dict[str, Any]] = {}
    for variant, group in by_variant.items():
        phase_names = list(group[0].phases)
        summary[variant] = {
            "wall": median([r.wall_s for r in group]),
            "walls": [r.wall_s for r in group],
            "auc": median([r.auc for r in group]),
            "best": "/".join(str(r.best_round) for r in group),
            "trained": "/".join(str(r.rounds_trained) for r in group),
            "phases": {p: median([r.phases[p] for r in group]) for p in phase_names},
        }
    return summary


def print_table(title: str, summary: dict[str, dict[str, Any]], repeats: int) -> None:
    plain = summary[PLAIN]
    wall_head = "wall s (median)" if repeats > 1 else "wall s"
    print(f"\n### {title}\n")
    print(
        f"| Variant | {wall_head} | ours / plain | test AUC | Δ AUC vs plain | best round "
        "| rounds trained | where the time goes (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for variant, row in summary.items():
        ratio = row["wall"] / plain["wall"]
        delta = row["auc"] - plain["auc"]
        phases = ", ".join(f"{k} {v:.1f}" for k, v in row["phases"].items())
        walls = " (" + ", ".join(f"{w:.1f}" for w in row["walls"]) + ")" if repeats > 1 else ""
        print(
            f"| {variant} | {row['wall']:.1f}{walls} | "
            f"{'-' if variant == PLAIN else f'{ratio:.2f}x'} | {row['auc']:.4f} | "
            f"{'-' if variant == PLAIN else f'{delta:+.4f}'} | {row['best']} | "
            f"{row['trained']} | {phases} |"
        )
    print()
    for variant, row in summary.items():
        if variant == PLAIN:
            continue
        ratio = row["wall"] / plain["wall"]
        delta = row["auc"] - plain["auc"]
        time_ok = "met" if ratio <= RATIO_TARGET else "NOT met"
        auc_ok = "met" if abs(delta) <= AUC_TARGET else "NOT met"
        print(
            f"- {variant}: time ≤ {RATIO_TARGET}x plain {time_ok} ({ratio:.2f}x); "
            f"|Δ AUC| ≤ {AUC_TARGET} {auc_ok} ({delta:+.4f})"
        )


def quiet() -> None:
    """Silence library chatter (re-applied after Ray starts, which resets some of it)."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    for noisy in ("ray", "ray.data", "ray.train"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="synthetic applicants")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="Ray Train workers of the headline configuration (1 CPU each, the project default)",
    )
    parser.add_argument(
        "--configs",
        type=parse_config,
        nargs="*",
        default=None,
        help="further configurations, WxC or WxC:tN (default: 1x2 1x1:t2)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="passes (medians reported)")
    parser.add_argument(
        "--fixed-rounds",
        type=int,
        default=300,
        help="second comparison with exactly this many rounds, no early stopping (0: skip)",
    )
    parser.add_argument(
        "--overhead-rows",
        type=int,
        default=10_000,
        help="rows of the tiny fit per configuration that measures the fixed cost (0: skip)",
    )
    parser.add_argument("--overhead-rounds", type=int, default=10, help="rounds of the tiny fit")
    args = parser.parse_args()

    extra = (
        args.configs if args.configs is not None else [parse_config("1x2"), parse_config("1x1:t2")]
    )
    configs = list(dict.fromkeys([Config(args.workers, 1.0, 1), *extra]))

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet()
    script_started = time.perf_counter()
    work_dir = Path(tempfile.mkdtemp(prefix="bench_train_xgboost_"))
    ray_started = False
    try:
        import ray
        import xgboost

        from app.config import load_settings
        from app.runtime import configure_ray_data
        from app.training.fit import xgb_params
        from app.training.preprocess import FeatureEncoder

        settings = load_settings(data_dir=work_dir / "data", _env_file=None)
        encoder = FeatureEncoder.default()

        def params(nthread: int) -> dict[str, Any]:
            return xgb_params(
                settings.xgb_params, settings.monotone_constraints, encoder, nthread, settings.seed
            )

        print(f"load average at start: {load()}; work dir {work_dir}")
        print(f"xgboost {xgboost.__version__}, ray {ray.__version__}")
        shown = {k: v for k, v in params(1).items() if k != "nthread"}
        print(
            f"params (nthread per variant): {shown}"
            f"; num_boost_round {settings.num_boost_round}, "
            f"early_stopping_rounds {settings.early_stopping_rounds}"
        )
        for config in configs:
            print(f"{config.name}: {config.description}")

        started = time.perf_counter()
        splits = build_splits(settings, args.rows)
        print(
            f"built {args.rows:,} rows, split {splits.sizes()} "
            f"({time.perf_counter() - started:.1f} s)"
        )
        started = time.perf_counter()
        matrices = encode(splits, encoder)
        print(
            f"encoded {len(matrices.features)} features for plain "
            f"({time.perf_counter() - started:.1f} s, untimed for plain, timed inside ours' ingest)"
        )

        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray_started = True
        quiet()
        configure_ray_data()

        if args.overhead_rows > 0:
            tiny = build_splits(settings, args.overhead_rows)
            tiny_m = encode(tiny, encoder)
            print(
                f"\n### Fixed cost: fit_xgboost on {args.overhead_rows:,} rows, "
                f"{args.overhead_rounds} rounds\n"
            )
            print(
                "| Variant | wall s | ingest | startup | read (plain: DMatrix) | train | report "
                "| teardown |"
            )
            print("|---|---:|---:|---:|---:|---:|---:|---:|")
            plain_tiny = run_plain(
                tiny_m, params(PLAIN_NTHREAD), args.overhead_rounds, args.overhead_rounds
            )
            ph = plain_tiny.phases
            print(
                f"| plain | {plain_tiny.wall_s:.2f} | - | - | {ph['dmatrix']:.2f} "
                f"| {ph['train']:.2f} | - | - |"
            )
            for config in configs:
                run = run_ours(
                    tiny,
                    encoder,
                    tiny_m,
                    params(config.nthread),
                    args.overhead_rounds,
                    args.overhead_rounds,
                    config,
                    work_dir,
                )
                ph = run.phases
                print(
                    f"| {run.variant} | {run.wall_s:.2f} | {ph['ingest']:.2f} "
                    f"| {ph['startup']:.2f} | {ph['read']:.2f} | {ph['train']:.2f} "
                    f"| {ph['report']:.2f} | {ph['teardown']:.2f} |",
                    flush=True,
                )
            del tiny, tiny_m

        passes: list[tuple[str, int, int]] = [
            (
                f"Default settings: up to {settings.num_boost_round} rounds, early stopping "
                f"after {settings.early_stopping_rounds}",
                settings.num_boost_round,
                settings.early_stopping_rounds,
            )
        ]
        if args.fixed_rounds > 0:
            # Patience = the number of rounds: early stopping never fires, but fit_xgboost still
            # gets the best iteration it keeps (it needs early stopping on).
            passes.append(
                (
                    f"Fixed {args.fixed_rounds} rounds (early stopping off)",
                    args.fixed_rounds,
                    args.fixed_rounds,
                )
            )
        for title, rounds, patience in passes:
            runs: list[Run] = []
            for repeat in range(args.repeats):
                print(f"\n{title}, pass {repeat + 1}/{args.repeats} (load {load()})", flush=True)
                run = run_plain(matrices, params(PLAIN_NTHREAD), rounds, patience)
                runs.append(run)
                print(f"  {run.variant}: {run.wall_s:.1f} s, AUC {run.auc:.4f}", flush=True)
                for config in configs:
                    run = run_ours(
                        splits,
                        encoder,
                        matrices,
                        params(config.nthread),
                        rounds,
                        patience,
                        config,
                        work_dir,
                    )
                    runs.append(run)
                    print(f"  {run.variant}: {run.wall_s:.1f} s, AUC {run.auc:.4f}", flush=True)
            summary = summarise(runs)
            print_table(f"{title} ({args.rows:,} rows)", summary, args.repeats)
            fastest = min((v for v in summary if v != PLAIN), key=lambda v: summary[v]["wall"])
            print(f"- fastest configuration: {fastest}")

        print(
            "\nPhases: ingest = encoded_dataset for train + validation (encoding + from_pandas); "
            "startup = fit() called -> worker function running; read = shards -> DMatrix "
            "(slowest worker); train = xgboost.train (slowest worker); report = metrics + "
            "checkpoint; teardown = last worker done -> fit_xgboost returned."
        )
        print(f"load average at end: {load()}")
    finally:
        if ray_started:
            import ray

            ray.shutdown()
        shutil.rmtree(work_dir, ignore_errors=True)
        print(f"script run time: {time.perf_counter() - script_started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

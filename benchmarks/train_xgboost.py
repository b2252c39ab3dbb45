"""XGBoost through Ray Train (`fit_xgboost`) vs plain in-process `xgboost.train` on the same
synthetic training frame, with where Ray Train's time goes. Method and figures:
docs/benchmarks.md, section 3."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.harness.cli import parser
from benchmarks.harness.machine import load
from benchmarks.harness.procs import local_ray, quiet, work_dir
from benchmarks.harness.stats import median
from benchmarks.harness.tables import markdown_table

PLAIN, PLAIN_NTHREAD = "plain", 2
AUC_TARGET, RATIO_TARGET = 0.005, 1.5
PHASES = ("ingest", "startup", "read", "train", "report", "teardown")


@dataclass(frozen=True)
class Config:
    """One Ray Train resource setting: workers x CPUs each, XGBoost threads per worker."""

    workers: int
    cpus_per_worker: float
    nthread: int

    @property
    def name(self) -> str:
        name = f"ours {self.workers}x{self.cpus_per_worker:g}"
        return name + (
            f":t{self.nthread}" if self.nthread != max(1, int(self.cpus_per_worker)) else ""
        )


def parse_config(text: str) -> Config:
    """`WxC` (nthread = int(C), as the training job sets it) or `WxC:tN`."""
    try:
        shape, _, threads = text.partition(":t")
        workers, cpus = shape.split("x")
        nthread = int(threads) if threads else max(1, int(float(cpus)))
        return Config(int(workers), float(cpus), nthread)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad configuration {text!r}: use WxC or WxC:tN") from exc


OPTIONS = [
    ("--rows", int, 1_000_000, "synthetic applicants"),
    ("--workers", int, 2, "workers of the headline configuration (1 CPU each, the default)"),
    ("--repeats", int, 1, "passes (medians reported)"),
    ("--fixed-rounds", int, 300, "a second comparison with exactly this many rounds (0: skip)"),
    ("--overhead-rows", int, 10_000, "rows of the tiny fit measuring the fixed cost (0: skip)"),
    ("--overhead-rounds", int, 10, "rounds of the tiny fit"),
]


@dataclass
class Run:
    variant: str
    wall_s: float
    auc: float
    best_round: int  # 1-based: trees kept
    rounds_trained: int
    phases: dict[str, float] = field(default_factory=dict)


@dataclass
class Data:
    """The splits (ours' ingest encodes them) and the matrices plain trains on (untimed)."""

    splits: Any
    features: list[str]
    x: dict[str, Any]  # train, validation: encoded frames
    y: dict[str, Any]  # their labels
    test: Any  # xgboost.DMatrix
    test_y: Any

    def auc(self, booster: Any) -> float:
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(self.test_y, booster.predict(self.test)))


def build_data(settings: Any, encoder: Any, rows: int) -> Data:
    """The training frame built directly (no Feast), split 60/20/20 at random (seeded)."""
    import xgboost as xgb

    from app.data.synthetic import generate_raw
    from app.data.warehouse import flat_rows, load_raw
    from app.training.dataset import split_frame

    dataset = settings.load_dataset()
    label = dataset.label
    real = load_raw(settings.raw_data_file(), dataset)
    raw = generate_raw(real, n=rows, seed=settings.seed, dataset=dataset)
    frame = flat_rows(raw, dataset, seed=settings.seed, id_prefix="S")
    frame = frame.rename(columns={"application_timestamp": "event_timestamp"})
    s = split_frame(frame, "random", settings.seed, 0.2, 0.2, label=label, key=dataset.spine.key)
    parts = {"train": s.train, "validation": s.validation}
    x = {name: encoder.transform(part) for name, part in parts.items()}
    y = {name: part[label].to_numpy(dtype="float32") for name, part in parts.items()}
    test = xgb.DMatrix(encoder.transform(s.test), feature_names=encoder.feature_names)
    return Data(s, encoder.feature_names, x, y, test, s.test[label].to_numpy())


def run_plain(d: Data, params: dict[str, Any], rounds: int, patience: int) -> Run:
    """DMatrix construction + `xgboost.train`, evaluated exactly as the Ray Train worker does."""
    import xgboost as xgb

    started = time.perf_counter()
    train, valid = (
        xgb.DMatrix(d.x[part][d.features], label=d.y[part], feature_names=d.features)
        for part in ("train", "validation")
    )
    built = time.perf_counter()
    evals = [(train, "train"), (valid, "validation")]
    booster = xgb.train(
        params, train, rounds, evals, early_stopping_rounds=patience, verbose_eval=False
    )
    ended, best = time.perf_counter(), booster.best_iteration
    phases = {"dmatrix": built - started, "train": ended - built}
    auc = d.auc(booster[: best + 1])
    return Run(PLAIN, ended - started, auc, best + 1, booster.num_boosted_rounds(), phases)


def timed_worker(marks_dir: str) -> Callable[[dict[str, Any]], None]:
    """A training function recording timestamps around the project's own worker function,
    which it imports in the worker process (unpatched there) and runs unchanged."""

    def worker(config: dict[str, Any]) -> None:
        import ray.train
        import xgboost

        marks: dict[str, float] = {"start": time.time()}
        real_train = xgboost.train

        def train(*args: Any, **kwargs: Any) -> Any:
            marks["train_start"] = time.time()
            booster = real_train(*args, **kwargs)
            marks["train_end"], marks["rounds_trained"] = time.time(), booster.num_boosted_rounds()
            return booster

        xgboost.train = train
        try:
            importlib.import_module("app.training.fit")._xgb_worker(config)
        finally:
            xgboost.train, marks["end"] = real_train, time.time()
            rank = ray.train.get_context().get_world_rank()
            Path(marks_dir, f"rank{rank}.json").write_text(json.dumps(marks))

    return worker


@contextlib.contextmanager
def instrumented(marks_dir: Path) -> Iterator[None]:
    """Let `fit_xgboost` hand `timed_worker` to XGBoostTrainer instead of `_xgb_worker`."""
    import app.training.fit as fit_module

    marks_dir.mkdir(parents=True)
    original, fit_module._xgb_worker = fit_module._xgb_worker, timed_worker(str(marks_dir))
    try:
        yield
    finally:
        fit_module._xgb_worker = original


def run_ours(
    d: Data, encoder: Any, params: dict, rounds: int, patience: int, config: Config, folder: Path
) -> Run:
    """Ingest into Ray (`encoded_dataset`) + `fit_xgboost`; the wall time includes both."""
    from app.training.fit import encoded_dataset, fit_xgboost

    marks_dir = folder / "marks" / uuid.uuid4().hex[:8]
    started = time.perf_counter()
    train, valid = (
        encoded_dataset(part, encoder) for part in (d.splits.train, d.splits.validation)
    )
    ingested, fit_called = time.perf_counter(), time.time()
    with instrumented(marks_dir):
        shape = (config.workers, config.cpus_per_worker)
        result = fit_xgboost(
            train, valid, encoder, params, rounds, patience, *shape, folder / "ray"
        )
    ended, fit_returned = time.perf_counter(), time.time()
    marks = [json.loads(p.read_text()) for p in sorted(marks_dir.glob("rank*.json"))]
    slowest = {
        phase: max(m[b] - m[a] for m in marks)
        for phase, a, b in (("read", "start", "train_start"), ("train", "train_start", "train_end"))
    }
    phases = {
        "ingest": ingested - started,
        "fit": ended - ingested,
        # fit() called -> first worker running: controller, placement group, workers, collective.
        "startup": min(m["start"] for m in marks) - fit_called,
        **slowest,  # read: shards -> DMatrix; train: xgboost.train (slowest rank each)
        "report": max(m["end"] - m["train_end"] for m in marks),  # metrics + checkpoint
        "teardown": fit_returned - max(m["end"] for m in marks),  # shutdown + loading it
    }
    best, trained = int(result.metrics["best_iteration"]), max(m["rounds_trained"] for m in marks)
    auc = d.auc(result.estimator)
    return Run(config.name, ended - started, auc, best + 1, int(trained), phases)


def print_table(title: str, runs: list[Run], repeats: int) -> None:
    """Medians per variant against plain, in Markdown, then each against the targets."""
    variants = {r.variant: [x for x in runs if x.variant == r.variant] for r in runs}
    wall = {v: median(r.wall_s for r in rs) for v, rs in variants.items()}
    auc = {v: median(r.auc for r in rs) for v, rs in variants.items()}
    header = ["Variant", "wall s (median)" if repeats > 1 else "wall s", "ours / plain", "test AUC"]
    header += ["Δ AUC vs plain", "best round", "rounds trained", "where the time goes (s)"]
    rows = []
    for v, rs in variants.items():
        walls = f" ({', '.join(f'{r.wall_s:.1f}' for r in rs)})" if repeats > 1 else ""
        ratio = "-" if v == PLAIN else f"{wall[v] / wall[PLAIN]:.2f}x"
        delta = "-" if v == PLAIN else f"{auc[v] - auc[PLAIN]:+.4f}"
        phases = ", ".join(f"{k} {median(r.phases[k] for r in rs):.1f}" for k in rs[0].phases)
        rounds = [
            "/".join(str(getattr(r, k)) for r in rs) for k in ("best_round", "rounds_trained")
        ]
        rows.append([v, f"{wall[v]:.1f}{walls}", ratio, f"{auc[v]:.4f}", delta, *rounds, phases])
    print(f"\n### {title}\n\n{markdown_table(header, rows, 'lrrrrrrl')}\n")
    for v in (v for v in variants if v != PLAIN):
        ratio, delta = wall[v] / wall[PLAIN], auc[v] - auc[PLAIN]
        time_ok = "met" if ratio <= RATIO_TARGET else "NOT met"
        auc_ok = "met" if abs(delta) <= AUC_TARGET else "NOT met"
        print(
            f"- {v}: time ≤ {RATIO_TARGET}x plain {time_ok} ({ratio:.2f}x); "
            f"|Δ AUC| ≤ {AUC_TARGET} {auc_ok} ({delta:+.4f})"
        )
    print(f"- fastest configuration: {min((v for v in variants if v != PLAIN), key=wall.get)}")


@dataclass
class Bench:
    """The project's defaults (settings, encoder, XGBoost parameters) and the run's folder."""

    folder: Path
    configs: list[Config]
    settings: Any = None
    encoder: Any = None

    def __post_init__(self) -> None:
        from app.training.preprocess import FeatureEncoder
        from benchmarks.harness.workload import bench_settings

        self.settings = bench_settings(self.folder)
        self.encoder = FeatureEncoder.for_dataset(self.settings.load_dataset())

    def params(self, nthread: int) -> dict[str, Any]:
        from app.training.fit import xgb_params

        s = self.settings
        return xgb_params(s.xgb_params, s.monotone(), self.encoder, nthread, s.seed)

    def data(self, rows: int) -> Data:
        return build_data(self.settings, self.encoder, rows)

    def one_pass(self, data: Data, rounds: int, patience: int) -> list[Run]:
        """Plain, then each configuration."""
        runs = [run_plain(data, self.params(PLAIN_NTHREAD), rounds, patience)]
        for c in self.configs:
            params = self.params(c.nthread)
            runs.append(run_ours(data, self.encoder, params, rounds, patience, c, self.folder))
        return runs

    def passes(self, fixed_rounds: int) -> list[tuple[str, int, int]]:
        """(title, rounds, patience): the defaults, then a fixed number of rounds in which
        early stopping never fires (patience = rounds: fit_xgboost still gets its best one)."""
        rounds, patience = self.settings.num_boost_round, self.settings.early_stopping_rounds
        title = f"Default settings: up to {rounds} rounds, early stopping after {patience}"
        found = [(title, rounds, patience)]
        if fixed_rounds > 0:
            title = f"Fixed {fixed_rounds} rounds (early stopping off)"
            found.append((title, fixed_rounds, fixed_rounds))
        return found

    def describe(self) -> None:
        import ray
        import xgboost

        s = self.settings
        print(f"load average at start: {load()}; work dir {self.folder}")
        print(f"xgboost {xgboost.__version__}, ray {ray.__version__}")
        shown = {k: v for k, v in self.params(1).items() if k != "nthread"}
        print(
            f"params (nthread per variant): {shown}; num_boost_round {s.num_boost_round}, "
            f"early_stopping_rounds {s.early_stopping_rounds}"
        )
        for c in self.configs:
            print(
                f"{c.name}: {c.workers} worker(s) x {c.cpus_per_worker:g} CPU, nthread {c.nthread}"
            )


def fixed_cost(bench: Bench, rows: int, rounds: int) -> None:
    """Ray Train's cost on a tiny fit, where training itself takes almost nothing."""
    print(f"\n### Fixed cost: fit_xgboost on {rows:,} rows, {rounds} rounds\n")
    plain, *ours = bench.one_pass(bench.data(rows), rounds, rounds)
    cells = [plain.wall_s, "-", "-", plain.phases["dmatrix"], plain.phases["train"], "-", "-"]
    table = [[PLAIN, *(c if c == "-" else f"{c:.2f}" for c in cells)]]
    table += [
        [r.variant, *(f"{x:.2f}" for x in (r.wall_s, *(r.phases[p] for p in PHASES)))] for r in ours
    ]
    header = ["Variant", "wall s", "ingest", "startup", "read (plain: DMatrix)", "train"]
    print(markdown_table([*header, "report", "teardown"], table), flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    command = parser(__doc__, OPTIONS)
    help_text = "further configurations, WxC or WxC:tN (default: 1x2 1x1:t2)"
    command.add_argument("--configs", type=parse_config, nargs="*", default=None, help=help_text)
    return command.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    extra = (
        args.configs if args.configs is not None else [parse_config(c) for c in ("1x2", "1x1:t2")]
    )
    quiet()
    started = time.perf_counter()
    with work_dir("bench_train_xgboost_") as folder:
        bench = Bench(folder, list(dict.fromkeys([Config(args.workers, 1.0, 1), *extra])))
        bench.describe()
        data = bench.data(args.rows)
        print(
            f"built {args.rows:,} rows, split {data.splits.sizes()}, {len(data.features)} features"
        )
        with local_ray():
            if args.overhead_rows > 0:
                fixed_cost(bench, args.overhead_rows, args.overhead_rounds)
            for title, rounds, patience in bench.passes(args.fixed_rounds):
                runs: list[Run] = []
                for repeat in range(args.repeats):
                    print(
                        f"\n{title}, pass {repeat + 1}/{args.repeats} (load {load()})", flush=True
                    )
                    runs += bench.one_pass(data, rounds, patience)
                    for run in runs[-len(bench.configs) - 1 :]:
                        print(f"  {run.variant}: {run.wall_s:.1f} s, AUC {run.auc:.4f}", flush=True)
                print_table(f"{title} ({args.rows:,} rows)", runs, args.repeats)
    print(
        "\nPhases: ingest = encoded_dataset for train + validation (encoding + from_pandas); "
        "startup = fit() called -> worker function running; read = shards -> DMatrix "
        "(slowest worker); train = xgboost.train (slowest worker); report = metrics + "
        "checkpoint; teardown = last worker done -> fit_xgboost returned."
    )
    print(f"load average at end: {load()}; script run time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

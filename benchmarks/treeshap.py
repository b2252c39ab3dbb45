"""The reason codes' TreeSHAP values: the model's tables (`app.training.treeshap`) against
XGBoost's own `pred_contribs` (the same values), and the leaf tables' margins against XGBoost's
`inplace_predict`, in one process on one thread as a replica has it, for one row, a batch of 16
and a block of 2,000, at tree depths 1-5, on models trained like the champion on synthetic
applicants.

Each figure is the median of timed calls, ours and XGBoost's alternating so machine noise hits
both alike; the largest difference between the two answers is printed (XGBoost sums in
float32)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness.cli import int_list, parser
from benchmarks.harness.machine import wait_quiet
from benchmarks.harness.stats import median
from benchmarks.harness.tables import markdown_table, settings_of, text_table, write_json

OPTIONS = [
    ("--depths", int_list, [1, 2, 3, 4, 5], "max_depth of each model, comma-separated"),
    ("--rounds", int, 300, "boosting rounds of each model"),
    ("--train-rows", int, 10_000, "synthetic applicants each model is trained on"),
    ("--sizes", int_list, [1, 16, 2_000], "rows per call, comma-separated"),
    ("--seconds", float, 3.0, "seconds of alternating calls per figure"),
    ("--seed", int, 7, "seed of the training draw"),
    ("--wait-quiet", float, 0, "wait up to this many s for an idle machine first"),
    ("--markdown", bool, False, "print the table as Markdown"),
    ("--json", Path, None, "also write every figure to this JSON file"),
]


def alternate(ours: Callable[[], Any], theirs: Callable[[], Any], seconds: float) -> tuple:
    """Median µs of each, called back to back in turn for `seconds` (at least 20 pairs)."""
    times: tuple[list[int], list[int]] = ([], [])
    deadline = time.perf_counter() + seconds
    while len(times[0]) < 20 or time.perf_counter() < deadline:
        for call, out in ((ours, times[0]), (theirs, times[1])):
            started = time.perf_counter_ns()
            call()
            out.append(time.perf_counter_ns() - started)
    return median(times[0]) / 1000, median(times[1]) / 1000


def measure_depth(depth: int, args: Any) -> list[dict[str, Any]]:
    import numpy as np
    import xgboost as xgb

    from app.training.compiled import CompiledModel
    from benchmarks.counter_offer import build_model

    model = build_model(args.train_rows, args.rounds, args.seed, max_depth=depth)
    compiled, booster = CompiledModel(model), model.estimator
    explainer = compiled.explainer
    if explainer is None:
        raise SystemExit(f"depth {depth}: no tables for this model (XGBoost's path kept)")
    rng = np.random.default_rng(args.seed + 1)
    rows = []
    for size in args.sizes:
        matrix = compiled.encode(_columns(model, size, rng), size)

        def xgboost_contributions(m=matrix):
            return booster.predict(
                xgb.DMatrix(m, missing=np.nan), pred_contribs=True, validate_features=False
            )

        ours, theirs = alternate(
            lambda m=matrix: explainer.contributions(m), xgboost_contributions, args.seconds
        )
        diff = np.abs(explainer.contributions(matrix) - xgboost_contributions()).max()
        row = {"depth": depth, "kind": type(explainer).__name__, "rows": size}
        row |= {"ours_us": ours, "xgboost_us": theirs, "max_diff": float(diff)}
        if hasattr(explainer, "margins"):
            row["margin_ours_us"], row["margin_xgboost_us"] = alternate(
                lambda m=matrix: explainer.margins(m),
                lambda m=matrix: booster.inplace_predict(
                    m, predict_type="margin", validate_features=False
                ),
                args.seconds,
            )
        rows.append(row)
    return rows


def _columns(model: Any, size: int, rng: Any) -> dict[str, list]:
    """Raw model columns of `size` synthetic applicants, one value in ten of the first
    numeric column missing (the default branch of its splits)."""
    from app.config import SHIPPED_DATA_PATH
    from app.data.synthetic import generate_raw
    from app.data.warehouse import load_raw

    dataset = model.dataset
    seed = int(rng.integers(1 << 30))
    raw = generate_raw(load_raw(SHIPPED_DATA_PATH, dataset), size, seed, dataset=dataset)
    frame = raw.join(dataset.derive_frame(raw))
    columns = {c: frame[c].tolist() for c in model.encoder.raw_columns}
    numeric = columns[model.encoder.numeric[0]]
    for i in range(0, size, 10):
        numeric[i] = None
    return columns


def report(rows: list[dict[str, Any]], markdown: bool) -> str:
    header = ["depth", "tables", "rows", "ours µs", "XGBoost µs", "XGBoost / ours"]
    header += ["max |diff|", "margins ours µs", "XGBoost margins µs"]
    body = []
    for r in rows:
        ratio = r["xgboost_us"] / r["ours_us"]
        margins = [r.get("margin_ours_us", float("nan")), r.get("margin_xgboost_us", float("nan"))]
        body.append(
            [str(r["depth"]), r["kind"], f"{r['rows']:,}", f"{r['ours_us']:,.0f}"]
            + [f"{r['xgboost_us']:,.0f}", f"{ratio:.1f}x", f"{r['max_diff']:.1e}"]
            + [f"{m:,.0f}" for m in margins]
        )
    return (markdown_table if markdown else text_table)(header, body)


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__, OPTIONS).parse_args(argv)
    wait_quiet(args.wait_quiet)
    rows = [row for depth in args.depths for row in measure_depth(depth, args)]
    print(report(rows, args.markdown))
    if args.json:
        write_json(args.json, {"settings": settings_of(args), "results": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

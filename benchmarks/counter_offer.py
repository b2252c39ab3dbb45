"""What a counter-offer costs a decline: the pure decision path (`decide_batch`, no HTTP, Serve
or store read) for one declined applicant with `counter_offers` on vs off, in one process, the
booster on one thread as a replica has it, on a model trained like the champion (the project's
XGBoost parameters and monotone constraints) on synthetic applicants.

Each timed round decides the same request both ways back to back (the order alternating), so
machine noise hits both alike; approvals are timed too (they must cost nothing extra), and a
batch of 16 declines shows the one model call shared by a batch."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.config import SHIPPED_DATASET
from app.dataset import load_dataset
from benchmarks.harness.cli import parser
from benchmarks.harness.machine import busy_seconds, other_cores, wait_quiet
from benchmarks.harness.stats import median, percentiles
from benchmarks.harness.tables import markdown_table, settings_of, text_table, write_json

BATCH = 16
TARGET_MS = 1.0  # the budget per decline
OPTIONS = [
    ("--rounds", int, 300, "boosting rounds of the model (the champion stops early, <= 1000)"),
    ("--train-rows", int, 10_000, "synthetic applicants the model is trained on"),
    ("--applicants", int, 400, "synthetic applicants whose requests are timed (rotated)"),
    ("--rounds-timed", int, 3_000, "timed rounds per figure (each: offers off and on)"),
    ("--seed", int, 7, "seed of the training draw (the timed draw uses seed + 1)"),
    ("--wait-quiet", float, 0, "wait up to this many s for an idle machine first"),
    ("--markdown", bool, False, "print the table as Markdown"),
    ("--json", Path, None, "also write every figure to this JSON file"),
]


def build_model(train_rows: int, rounds: int, seed: int, **overrides: Any) -> Any:
    """A booster with the settings' XGBoost parameters (`overrides` replacing some) and
    monotone constraints, one thread."""
    import pandas as pd
    import xgboost as xgb

    from app.config import SHIPPED_DATA_PATH, load_settings
    from app.data.synthetic import generate_raw
    from app.data.warehouse import load_raw
    from app.training.model import CreditModel, used_columns_of
    from app.training.preprocess import FeatureEncoder

    settings = load_settings(_env_file=None)
    dataset = load_dataset(SHIPPED_DATASET)
    raw = generate_raw(load_raw(SHIPPED_DATA_PATH, dataset), train_rows, seed, dataset=dataset)
    frame = pd.concat([raw, load_dataset(SHIPPED_DATASET).derive_frame(raw)], axis=1)
    encoder = FeatureEncoder.for_dataset(settings.load_dataset())
    coding = dataset.spec.label
    label = (frame[coding.source or coding.name] == coding.positive).astype("int32").to_numpy()
    matrix = encoder.transform_array(frame)
    dtrain = xgb.DMatrix(matrix, label=label, feature_names=encoder.feature_names)
    params = {"objective": "binary:logistic", "tree_method": "hist", "seed": seed, "nthread": 1}
    params |= settings.xgb_params | {"monotone_constraints": settings.monotone()} | overrides
    booster = xgb.train(params, dtrain, rounds)
    model = CreditModel("xgboost", encoder, booster, settings.threshold())
    model.used_columns = used_columns_of(model)
    return model


def requests_of(applicants: int, seed: int) -> list[tuple[Any, Any]]:
    """(request, its features) per synthetic applicant: what the store read would return."""
    import numpy as np

    from app.config import SHIPPED_DATA_PATH, SHIPPED_DATASET
    from app.data.synthetic import generate_raw
    from app.data.warehouse import load_raw
    from app.features.online import OnlineRows
    from app.serving.bodies import api_models
    from app.serving.decide import features_of

    dataset = load_dataset(SHIPPED_DATASET)
    decision_request = api_models(dataset).DecisionRequest
    raw = generate_raw(load_raw(SHIPPED_DATA_PATH, dataset), applicants, seed, dataset=dataset)
    out = []
    for i, row in enumerate(raw.to_dict("records")):
        application = {
            c: row[c] if c == "purpose" else int(row[c]) for c in dataset.request_columns
        }
        request = decision_request(applicant_id=f"B{i:06d}", application=application)
        stored = {c: [row[c]] for c in row if c not in dataset.request_columns}
        rows = OnlineRows(stored, np.ones(1, dtype=bool), [None])
        out.append((request, features_of(rows, [request], dataset)))
    return out


def paired(off: Callable[[int], Any], on: Callable[[int], Any], rounds: int) -> tuple[list, list]:
    """ns of off(k) and on(k) for k < rounds, back to back, alternating which goes first."""
    samples: tuple[list[int], list[int]] = ([], [])
    for k in range(rounds):
        order = ((0, off), (1, on)) if k % 2 else ((1, on), (0, off))
        for slot, call in order:
            started = time.perf_counter_ns()
            call(k)
            samples[slot].append(time.perf_counter_ns() - started)
    return samples


def figures(samples: list[int]) -> dict[str, float]:
    ms = [s / 1e6 for s in samples]
    return {"median_ms": median(ms), **{f"{k}_ms": v for k, v in percentiles(ms, ("p99",)).items()}}


def measure(model: Any, pool: list, args: Any) -> dict[str, Any]:
    """Medians and p99s of a decline, an approval and a batch of declines, offers off vs on."""
    from app.serving.decide import Features, decide_batch
    from app.serving.models import ModelSet
    from app.serving.routing import RoutingConfig
    from app.training.offers import OfferBounds, candidate_terms
    from app.training.source import ServedModel

    models, config = ModelSet(ServedModel("bench", "1", model)), RoutingConfig()
    bounds = OfferBounds()  # the settings' defaults

    def decide(group: list, offers: OfferBounds | None):
        requests = [r for r, _ in group]
        columns = {c: [v for _, f in group for v in f.columns[c]] for c in group[0][1].columns}
        n = len(group)
        features = Features(columns, [True] * n, [None] * n, [r.entity_id for r in requests])
        return decide_batch(requests, features, models, config, offers)

    answered = [(item, decide([item], bounds).outcomes[0].response) for item in pool]
    declined = [item for item, a in answered if a.decision == "decline"]
    approved = [item for item, a in answered if a.decision == "approve"]
    offered = [a for _, a in answered if a.counter_offer is not None]
    grids = [len(candidate_terms(r.application.credit_amount, r.application.duration_in_month,
                                 bounds)[0]) for r, _ in declined]  # fmt: skip
    batches = [declined[i : i + BATCH] for i in range(0, len(declined) - BATCH + 1, BATCH)]
    cases = {
        "decline": [[item] for item in declined],
        "approve": [[item] for item in approved],
        f"batch of {BATCH} declines": batches,
    }
    results: dict[str, Any] = {
        "declines": len(declined),
        "approvals": len(approved),
        "declines_with_offer": len(offered),
        "grid_median": median(grids),
        "grid_max": max(grids),
    }
    for case, groups in cases.items():
        if not groups:
            continue
        for group in groups[:5]:  # warm
            decide(group, None), decide(group, bounds)
        off, on = paired(
            lambda k, g=groups: decide(g[k % len(g)], None),
            lambda k, g=groups: decide(g[k % len(g)], bounds),
            args.rounds_timed,
        )
        results[case] = {"size": len(groups[0]), "off": figures(off), "on": figures(on)}
        added = [b - a for a, b in zip(off, on, strict=True)]
        results[case]["added"] = figures(added)
    return results


def report(results: dict[str, Any], markdown: bool) -> str:
    header = ["case", "offers off: median / p99 ms", "offers on: median / p99 ms"]
    header += ["added per decline: median / p99 ms"]
    rows = []
    for case in ("decline", "approve", f"batch of {BATCH} declines"):
        if case not in results:
            continue
        got = results[case]
        per = 1 if case == "approve" else got["size"]
        added = f"{got['added']['median_ms'] / per:.3f} / {got['added']['p99_ms'] / per:.3f}"
        rows.append(
            [
                case,
                f"{got['off']['median_ms']:.3f} / {got['off']['p99_ms']:.3f}",
                f"{got['on']['median_ms']:.3f} / {got['on']['p99_ms']:.3f}",
                added + (" (none made)" if case == "approve" else ""),
            ]
        )
    return (markdown_table if markdown else text_table)(header, rows)


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__, OPTIONS).parse_args(argv)
    wait_quiet(args.wait_quiet)
    started = time.perf_counter()
    model = build_model(args.train_rows, args.rounds, args.seed)
    pool = requests_of(args.applicants, args.seed + 1)
    print(f"model: {args.rounds} rounds on {args.train_rows:,} synthetic applicants, PD cut-off "
          f"{model.threshold:.4f} ({time.perf_counter() - started:.1f} s)")  # fmt: skip
    wall, cpu, busy = time.perf_counter(), time.process_time(), busy_seconds()
    results = measure(model, pool, args)
    wall = time.perf_counter() - wall
    results["other_cores"] = other_cores(busy_seconds() - busy, wall, time.process_time() - cpu)
    print(
        f"{results['declines']} declines ({results['declines_with_offer']} with an offer) and "
        f"{results['approvals']} approvals of {args.applicants}; grid per decline: median "
        f"{results['grid_median']:.0f}, max {results['grid_max']} candidates; "
        f"{args.rounds_timed:,} rounds per case; other cores busy: {results['other_cores']:.2f}"
    )
    print(report(results, args.markdown))
    decline = results.get("decline")
    if decline:
        added = decline["added"]["median_ms"]
        verdict = "within" if added <= TARGET_MS else "OVER"
        print(
            f"a counter-offer adds {added:.3f} ms to a decline: {verdict} the {TARGET_MS} ms budget"
        )
    if args.json:
        write_json(args.json, {"settings": settings_of(args), "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The pure decision path in this process (no HTTP, Serve or event loop): requests parsed
beforehand, the booster on one thread as OMP_NUM_THREADS=1 gives a replica, each figure the
median of `seconds` of calls (>= 200), for one request and for batches of BATCH."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from benchmarks.harness.stats import median
from benchmarks.harness.tables import markdown_table
from benchmarks.harness.workload import Workload, check_answer, ours_body

BATCH = 16
STEPS = {
    "read": "online-store read (Redis round trip)",
    "pure": "features_of + decide_batch (the pure path)",
    "fetch": "fetch_features + decide_batch (read included)",
    "score": "compiled.score (encode, contributions, reasons)",
}


def time_calls(call: Callable[[int], Any], seconds: float, min_calls: int = 200) -> list[int]:
    """ns of each call(k) for k = 0, 1, ... over `seconds` (at least `min_calls` calls)."""
    samples: list[int] = []
    deadline = time.perf_counter() + seconds
    while len(samples) < min_calls or time.perf_counter() < deadline:
        started = time.perf_counter_ns()
        call(len(samples))
        samples.append(time.perf_counter_ns() - started)
    return samples


def calls(reader: Any, groups: list, models: Any, config: Any, served: Any) -> dict[str, Callable]:
    """The four steps on rotating groups of requests (features read once beforehand where the
    step excludes the read)."""
    from app.serving.decide import decide_batch, features_of, fetch_features

    ids = [[r.entity_id for r in group] for group in groups]
    rows = [reader.read(group_ids) for group_ids in ids]
    features = [
        features_of(r, group, reader.dataset) for r, group in zip(rows, groups, strict=True)
    ]
    m, size, threshold = len(groups), len(groups[0]), config.decision_threshold
    return {
        "read": lambda k: reader.read(ids[k % m]),
        "pure": lambda k: decide_batch(
            groups[k % m], features_of(rows[k % m], groups[k % m], reader.dataset), models, config
        ),
        "fetch": lambda k: decide_batch(
            groups[k % m], fetch_features(reader, groups[k % m], lambda _ms: None), models, config
        ),
        "score": lambda k: served.compiled.score(features[k % m].columns, size, threshold),
    }


def check(reader: Any, workload: Workload, requests: list, models: Any, config: Any) -> None:
    """The pure path must give CreditModel.score's answers."""
    from app.serving.bodies import api_models
    from app.serving.decide import decide_batch, features_of

    api = api_models(reader.dataset)  # the answer under the spec's names, as the API sends it
    for i, request in enumerate(requests[:20]):
        features = features_of(reader.read([request.entity_id]), [request], reader.dataset)
        outcome = decide_batch([request], features, models, config).outcomes[0]
        if outcome.status != 200:
            raise RuntimeError(f"pure path: status {outcome.status} {outcome.detail}")
        check_answer("pure path", api.body(outcome.response), workload, i)


def micro_benchmark(workload: Workload, options: dict[str, Any], seconds: float) -> dict:
    """µs per call and per row of each step, for 1 request and a batch of BATCH."""
    from app.features.online import open_reader
    from app.serving.bodies import api_models
    from app.serving.models import ModelSet
    from app.serving.routing import RoutingConfig
    from app.training.model import CreditModel
    from app.training.source import ServedModel

    model = CreditModel.load(workload.model_dir)
    model.estimator.set_param({"nthread": 1})
    served = ServedModel(workload.settings.model_name, "bench", model)
    models, config = (
        ModelSet(champion=served),
        RoutingConfig.model_validate(options.get("user_config", {})),
    )
    decision_request = api_models(workload.settings.load_dataset()).DecisionRequest
    requests = [decision_request.model_validate(ours_body(row)) for row in workload.rows]
    n = len(requests)
    batches = {
        1: [[r] for r in requests],
        BATCH: [
            [requests[(i * BATCH + j) % n] for j in range(BATCH)] for i in range(max(1, n // BATCH))
        ],
    }
    results: dict[str, Any] = {"seconds_per_figure": seconds, "batch": BATCH}
    reader = open_reader(workload.settings)
    try:
        check(reader, workload, requests, models, config)
        for size, groups in batches.items():
            for name, call in calls(reader, groups, models, config, served).items():
                call(0)  # warm
                samples = time_calls(call, seconds)
                results[f"{name}_us_{size}"] = median(samples) / 1000
                results[f"{name}_us_per_row_{size}"] = results[f"{name}_us_{size}"] / size
                results[f"{name}_calls_{size}"] = len(samples)
    finally:
        reader.close()
    results["decide_us_single"] = results["pure_us_1"]
    results["decide_us_per_row_batch16"] = results[f"pure_us_per_row_{BATCH}"]
    return results


def describe_micro(micro: dict[str, Any]) -> str:
    header = ["step", "1 request", f"batch of {BATCH}", "per row in the batch"]
    keys = ("us_1", f"us_{BATCH}", f"us_per_row_{BATCH}")
    rows = [[text, *(f"{micro[f'{k}_{key}']:,.0f}" for key in keys)] for k, text in STEPS.items()]
    for row, k in zip(rows, STEPS, strict=True):
        row[-1] = f"{micro[f'{k}_us_per_row_{BATCH}']:,.1f}"
    seconds = micro["seconds_per_figure"]
    title = f"Pure decision path in-process (median µs; {seconds:g} s of calls per figure):"
    return f"{title}\n\n{markdown_table(header, rows)}"

"""The workload the benchmarks share: synthetic applicants ingested and materialized into
online stores, one XGBoost booster with the answers every service must give, and the request
bodies of each service."""

from __future__ import annotations

import contextlib
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness.procs import local_ray

MLSERVER_MODEL = "credit-risk"
BOOSTER_PARAMS = {
    "objective": "binary:logistic",
    "eval_metric": "auc",
    "max_depth": 3,
    "eta": 0.05,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "nthread": 2,
}


def bench_settings(work_dir: Path, **overrides: Any) -> Any:
    """The run's settings: everything under `work_dir`, no .env, no CREDIT_* of the shell
    but what the overrides say."""
    from app.config import load_settings

    return load_settings(data_dir=work_dir / "data", _env_file=None, **overrides)


def prepare_features(stores: list[Any], applicants: int) -> Any:
    """`applicants` synthetic applicants written as local warehouse tables, ingested (Ray Data
    and validation, on a local Ray stopped after) and materialized into the online store of
    each of `stores` (settings sharing one data dir). Returns the ingest report."""
    from app.data.ingest import ingest
    from app.data.warehouse import source_tables, write_local_tables
    from app.features.store import materialize

    base = stores[0]
    started = time.perf_counter()
    write_local_tables(source_tables(base, rows=applicants), base)
    print(f"wrote {applicants:,} applicants ({time.perf_counter() - started:.1f} s)")
    with local_ray():
        report = ingest(base)
    counts = ", ".join(f"{t.name} {t.valid:,} valid / {t.rejected} rejected" for t in report.tables)
    print(f"ingested snapshot {report.snapshot_id}: {counts} ({report.seconds:.1f} s)")
    for settings in stores:
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # Feast's coloured progress lines
            done = materialize(settings, full=True)
        seconds = time.perf_counter() - started
        print(f"materialized {', '.join(done.views)} into {done.online_store} ({seconds:.1f} s)")
    return report


def request_rows(settings: Any, pick: Callable[[int], np.ndarray]) -> list[dict[str, Any]]:
    """The online lookup rows (applicant and request fields) of the applications `pick(n)`
    chooses among the snapshot's n."""
    from app.data.snapshot import load_snapshot
    from app.features.store import request_row

    dataset = settings.load_dataset()
    applications = load_snapshot(settings.offline_dir, dataset.spine.name)
    return [request_row(applications.iloc[int(i)], dataset) for i in pick(len(applications))]


@dataclass
class Workload:
    """What every service is asked: the same applicants, in each service's own request form,
    and the answers they must give."""

    settings: Any  # app.config.Settings
    work_dir: Path
    redis_port: int
    token: str  # bearer token of a key with every scope and no rate limit
    model_dir: Path  # CreditModel.save() layout
    mlserver_repo: Path  # MLServer model repository with the booster's model.json
    train_frame: Any  # the booster's training frame, logged as its drift reference
    snapshot_id: str
    rows: list[dict[str, Any]] = field(default_factory=list)  # applicant + request fields
    features: np.ndarray | None = None  # encoded features of each row (float32)
    expected_pd: np.ndarray | None = None  # the booster's own PD of each row
    online: list[dict[str, Any]] = field(default_factory=list)  # Feast's features of each row
    expected: list[dict[str, Any]] = field(default_factory=list)  # CreditModel.score's answers
    bodies: dict[str, Path] = field(default_factory=dict)  # service -> its bodies' file

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def add_key(settings: Any, rate: float = 0) -> str:
    """One key with every scope in the run's keys file (ours and the floor read it), with no
    rate limit by default; its token."""
    from app.serving.keys import SCOPES, KeyFile

    keys = KeyFile.read(settings.api_keys_file)
    token = keys.add("benchmark", list(SCOPES), rate=rate)
    keys.write()
    return token


def build_workload(args: Any, work_dir: Path, redis_port: int) -> Workload:
    """Data -> ingest -> Feast (Redis) -> training frame -> booster -> rows and answers."""
    settings = bench_settings(work_dir, online_store="redis", redis_port=redis_port)
    token = add_key(settings)
    report = prepare_features([settings], args.applicants)
    started = time.perf_counter()
    model, booster, frame = train_booster(settings, args.rounds)
    model_dir = model.save(work_dir / "model")
    repo = work_dir / "mlserver"
    (repo / MLSERVER_MODEL).mkdir(parents=True)
    booster.save_model(str(repo / MLSERVER_MODEL / "model.json"))
    print(
        f"booster: {args.rounds} rounds on {len(frame):,} applications, "
        f"{len(model.encoder.feature_names)} features, saved to {model_dir} "
        f"({time.perf_counter() - started:.1f} s)"
    )
    workload = Workload(
        settings, work_dir, redis_port, token, model_dir, repo, frame, report.snapshot_id
    )
    rng = np.random.default_rng(args.seed)
    workload.rows = request_rows(settings, lambda n: rng.choice(n, min(args.bodies, n), False))
    expect(workload, model, booster)
    write_bodies(workload)
    return workload


def train_booster(settings: Any, rounds: int) -> tuple[Any, Any, Any]:
    """(CreditModel, booster, training frame): plain `xgboost.train` on Feast's training frame."""
    import xgboost as xgb

    from app.training.dataset import load_training_frame
    from app.training.model import CreditModel, used_columns_of
    from app.training.preprocess import FeatureEncoder

    frame = load_training_frame(settings)
    dataset = settings.load_dataset()
    encoder = FeatureEncoder.for_dataset(dataset)
    matrix = encoder.transform(frame)
    label = frame[dataset.label].to_numpy()
    dtrain = xgb.DMatrix(matrix, label=label, feature_names=encoder.feature_names)
    params = {**BOOSTER_PARAMS, "seed": settings.seed}
    booster = xgb.train(params, dtrain, num_boost_round=rounds)
    model = CreditModel("xgboost", encoder, booster, settings.threshold())
    model.used_columns = used_columns_of(model)
    return model, booster, frame


def expect(workload: Workload, model: Any, booster: Any) -> None:
    """Each row's Feast features, encoded features, the booster's PD and CreditModel.score's
    answer, checked to agree with each other."""
    import xgboost as xgb

    from app.features.store import get_online_features, get_store

    settings, rows, encoder = workload.settings, workload.rows, model.encoder
    online = get_online_features(get_store(settings), settings.feature_service_name, rows)
    # The model sees the application's request fields next to the looked-up features.
    request = settings.load_dataset().request_columns
    raw = online.assign(**{c: [r[c] for r in rows] for c in request})
    encoded = encoder.transform(raw)
    missing = encoded[list(encoder.numeric)].isna().any()
    if missing.any():
        raise RuntimeError(f"online features missing: {', '.join(missing[missing].index)}")
    workload.features = encoded.to_numpy(dtype="float32")
    dmatrix = xgb.DMatrix(workload.features, feature_names=encoder.feature_names)
    workload.expected_pd = np.asarray(booster.predict(dmatrix), dtype="float64")
    scored = model.score(raw)
    if not np.allclose(scored["probability_of_default"], workload.expected_pd, rtol=1e-5):
        raise RuntimeError("CreditModel.score disagrees with the booster's own PD")
    workload.expected = [
        {"probability_of_default": float(p), "decision": str(d), "codes": [r["code"] for r in rs]}
        for p, d, rs in zip(
            scored["probability_of_default"], scored["decision"], scored["reasons"], strict=True
        )
    ]
    workload.online = online.to_dict("records")


def float32_text(value: np.float32) -> str:
    """Shortest text that reads back as the same float32 (keeps the bodies small and exact)."""
    return np.format_float_positional(value, unique=True, trim="0")


def ours_body(row: dict[str, Any]) -> dict[str, Any]:
    application = {k: v for k, v in row.items() if k != "applicant_id"}
    return {"applicant_id": row["applicant_id"], "application": application}


def mlserver_body(features: np.ndarray) -> str:
    data = ", ".join(float32_text(v) for v in features)
    head = f'"name": "features", "shape": [1, {len(features)}], "datatype": "FP32"'
    return f'{{"inputs": [{{{head}, "data": [{data}]}}]}}'


def peer_body(row: dict[str, Any]) -> str:
    """The seed stack's request: our body as the one element of a V2 BYTES input."""
    element = {"name": "request", "shape": [1], "datatype": "BYTES"}
    element |= {"parameters": {"content_type": "str"}, "data": [json.dumps(ours_body(row))]}
    return json.dumps({"inputs": [element]})


def feast_body(row: dict[str, Any], feature_service: str) -> str:
    return json.dumps(
        {"feature_service": feature_service, "entities": {k: [v] for k, v in row.items()}}
    )


def write_bodies(workload: Workload) -> None:
    """One bodies.jsonl per service, which wrk's post_bodies.lua rotates over (ours_v2: ours'
    V2 REST), and the gRPC messages grpcload rotates over (ours_grpc, mlserver_grpc)."""
    from benchmarks.harness.openinference import v2_body, write_grpc_messages

    service, dataset = workload.settings.feature_service_name, workload.settings.load_dataset()
    assert workload.features is not None
    bodies = {
        "ours": [json.dumps(ours_body(row)) for row in workload.rows],
        "ours_v2": [v2_body(row, dataset) for row in workload.rows],
        "mlserver": [mlserver_body(features) for features in workload.features],
        "peer": [peer_body(row) for row in workload.rows],
        "feast": [feast_body(row, service) for row in workload.rows],
    }
    for name, lines in bodies.items():
        path = workload.work_dir / f"bodies_{name}.jsonl"
        path.write_text("".join(line + "\n" for line in lines))
        workload.bodies[name] = path
    workload.bodies["floor"] = workload.bodies["ours"]  # the same API, the same bodies
    write_grpc_messages(workload, dataset)


def check_answer(name: str, answer: dict[str, Any], workload: Workload, i: int) -> None:
    """A decision for row i against CreditModel.score's: PD to 1e-6, the same decision and
    the same reason codes in the same order."""
    want, applicant = workload.expected[i], workload.rows[i]["applicant_id"]
    got = {
        "applicant": answer.get("applicant_id"),
        "PD": answer.get("probability_of_default", math.nan),
        "decision": answer.get("decision"),
        "reason codes": [r["code"] for r in answer.get("reasons", [])],
    }
    wanted = {"applicant": applicant, "decision": want["decision"], "reason codes": want["codes"]}
    problems = [f"{k} {got[k]!r} != {v!r}" for k, v in wanted.items() if got[k] != v]
    if not math.isclose(got["PD"], want["probability_of_default"], rel_tol=0, abs_tol=1e-6):
        problems.append(f"PD {got['PD']!r} != {want['probability_of_default']!r}")
    if problems:
        raise RuntimeError(f"{name}, applicant {applicant}: {'; '.join(problems)}")

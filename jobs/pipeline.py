"""The main job: source -> ingest -> feature store -> model -> Serve app -> decisions -> drift.

On embedded defaults it starts a local Ray and shuts everything down at the end; joined to a
cluster (`ray job submit`, CREDIT_RAY_ADDRESS) it leaves the decision service deployed.

Schedule beside it, daily: `python -m jobs.retention` (cron, or `ray job submit -- python -m
jobs.retention --days 365`) deletes prediction-log days past `prediction_log_retention_days`:
the log holds applicants' personal data.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from app.config import Settings, load_settings
from app.console import Stages, output_to_log
from app.data.warehouse import prepare_local_tables, synthetic_source
from app.errors import SourceError
from app.localray import sweep_stale_runs
from app.runtime import init_ray, run_job, setup_logging
from app.serving.client import send_decisions
from app.serving.deploy import check_port_free, deploy_service

# The stages' modules (Feast, Ray, scikit-learn: ~5 s to import) load in the stages, so a
# port already in use or a bad argument is reported at once.

ROOT = Path(__file__).resolve().parents[1]


def sample_online_read(settings: Settings, say: Callable[[str], None]) -> str:
    from app.data.snapshot import load_snapshot
    from app.features.store import (
        get_online_features,
        get_store,
        missing_in_snapshot,
        request_row,
    )

    dataset = settings.load_dataset()
    application = load_snapshot(settings.offline_dir, dataset.spine.name, head=1).iloc[0]
    row = request_row(application, dataset)
    entity = row[dataset.entity_key]
    features = get_online_features(get_store(settings), settings.feature_service_name, [row])
    values = features.iloc[0].to_dict()
    say(f"    online features of {entity}:")
    for name in sorted(values):
        say(f"      {name:<58} {values[name]}")
    missing = {k for k, v in values.items() if v is None}
    # A value the data itself lacks (a borrower's unreported income) is missing online too;
    # one the snapshot holds is not, unless the load failed.
    lost = sorted(missing - missing_in_snapshot(settings, entity))
    if lost:
        raise SourceError(f"online store returned no value for {', '.join(lost)}")
    return f"{len(values) - 1} features for {entity} from the online store"


def mlflow_ui(settings: Settings) -> str:
    """How to look at the runs and the registry (a password in the URI is masked)."""
    uri = settings.describe()["mlflow_tracking_uri"]
    return uri if uri.startswith("http") else f"mlflow ui --backend-store-uri {uri}"


def train_model(settings: Settings) -> str:
    """Train and register a model unless the champion was already trained on this snapshot."""
    from app.training import model_card
    from app.training.train import needs_training, train_and_register

    skip = needs_training(settings)
    if skip is not None:
        return skip
    report = train_and_register(settings)
    aliases = ", ".join(report.aliases)
    card = model_card.write_or_say(settings, str(report.version), report.card_content)
    return (
        f"{settings.model_name} v{report.version} ({aliases}), test AUC "
        f"{report.metrics['test_auc']:.3f}; model card: {card}; MLflow UI: {mlflow_ui(settings)}"
    )


def shut_down(
    settings: Settings,
    joined: bool,
    keep_serving: bool,
    url: str | None,
    say: Callable[[str], None] = print,
) -> str:
    """A local run stops what it started; on a cluster the service stays deployed."""
    import ray
    from ray import serve

    if url and (keep_serving or joined):
        if keep_serving and not joined:
            dashboard = f"http://{ray._private.worker.get_dashboard_url()}"
            say(
                f"\nserving at {url} (API docs {url}/docs, Ray dashboard {dashboard}); "
                "Ctrl-C or SIGTERM stops it"
            )
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:  # Ctrl-C, or SIGTERM as runtime.Terminated
                say("stopping: the service, the drift monitor and the local Ray")
        else:
            return f"decision service left running at {url} (remove with `serve shutdown`)"
    from app.monitoring.monitor import find_monitor

    if url:
        serve.shutdown()
    monitor = find_monitor(settings) if ray.is_initialized() else None
    if monitor is not None:  # detached: it would outlive this job on a shared cluster
        ray.kill(monitor, no_restart=True)
    ray.shutdown()
    return "Serve app, drift monitor and the local Ray stopped"


def positive(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive number of rows: {text!r}")
    return value


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.pipeline", description=__doc__)
    parser.add_argument(
        "--serve-config", type=Path, default=ROOT / "serve_config.yaml", help="Serve config."
    )
    parser.add_argument("--host", default="127.0.0.1", help="HTTP host of the Serve proxy.")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port of the Serve proxy.")
    parser.add_argument(
        "--grpc-port",
        type=int,
        default=9000,
        help="gRPC port (the Open Inference Protocol's GRPCInferenceService).",
    )
    parser.add_argument(
        "--rows",
        type=positive,
        help="Run on this many synthetic applicants from the dataset spec's generator instead "
        "of the shipped data (local source; kept in <data_dir>/source-synthetic-<rows>).",
    )
    parser.add_argument(
        "--decisions", type=int, default=200, help="Sample decisions to send (0: skip serving)."
    )
    parser.add_argument(
        "--ready-timeout", type=float, default=180, help="Seconds to wait for the service."
    )
    parser.add_argument(
        "--keep-serving", action="store_true", help="Keep a local service up until Ctrl-C."
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="Show Ray's and the libraries' output here instead of in a log file.",
    )
    return parser.parse_args()


def joined_cluster(settings: Settings) -> bool:
    return bool(settings.ray_address or os.environ.get("RAY_ADDRESS"))


def run_stages(settings: Settings, args: argparse.Namespace, stages: Stages):
    """Every stage in order; whatever fails, what this run started is stopped first. What was
    deployed (None without decisions)."""
    from app.data.ingest import ingest
    from app.features.store import materialize
    from app.monitoring.live import check_drift
    from app.monitoring.report import write_report

    joined = joined_cluster(settings)
    if settings.source == "local":
        stages.run("source", lambda: prepare_local_tables(settings, args.rows))

    def run_ingest() -> str:
        init_ray(settings)
        report = ingest(settings)
        stages.say(report.summary())
        return f"snapshot {report.snapshot_id} ({report.rejected:,} rows rejected)"

    def run_materialize() -> str:
        report = materialize(settings, on_progress=stages.progress)
        kind = "incremental" if report.incremental else "full"
        return f"{kind} load of {', '.join(report.views)} into {report.online_store}"

    deployed = None
    answered = 0

    def run_deploy() -> str:
        nonlocal deployed
        ports = (args.port, args.grpc_port)
        config, timeout = args.serve_config, args.ready_timeout
        deployed, detail = deploy_service(settings, config, args.host, ports, timeout, not joined)
        return detail

    def run_decisions() -> str:
        nonlocal answered
        detail, answered = send_decisions(settings, deployed.url, args.decisions, stages.say)
        return detail

    try:
        stages.run("ingest", run_ingest)
        stages.run("feature store", run_materialize)
        stages.run("online lookup", lambda: sample_online_read(settings, stages.say))
        stages.run("train", lambda: train_model(settings))
        if args.decisions > 0:
            stages.run("deploy", run_deploy)
            stages.run("decisions", run_decisions)
            timeout = args.ready_timeout
            stages.run(
                "drift check", lambda: check_drift(settings, answered, deployed.options, timeout)
            )
    except BaseException:
        # Stop what this run started before the error is reported.
        shut_down(settings, joined, keep_serving=False, url=deployed and deployed.url)
        raise
    url = deployed and deployed.url
    stages.run("shutdown", lambda: shut_down(settings, joined, args.keep_serving, url, stages.say))
    # After the shutdown: every answered decision is on disk by then.
    stages.run("report", lambda: f"written to {write_report(settings)} (open in a browser)")
    return deployed


def where_to_look(settings: Settings, log_path: Path | None, deployed=None) -> str:
    from app.features.repo import repo_dir
    from app.monitoring.report import REPORT_NAME
    from app.training.model_card import cards_dir

    workspace = settings.monitor_workspace_dir
    lines = [
        "\nWhere to look",
        f"  MLflow UI         {mlflow_ui(settings)}",
        f"  model cards       {cards_dir(settings)} (python -m jobs.model_card VERSION)",
        f"  prediction log    {settings.prediction_log_dir} (daily: python -m jobs.retention)",
        f"  drift reports     {settings.monitor_dir}",
        f"  report            {settings.monitor_dir / REPORT_NAME}",
        f"  Feast repo        feast -c {repo_dir(settings)} ui|plan|serve",
        f"  Evidently UI      evidently ui --port 8001 --workspace {workspace}",
    ]
    if deployed is not None:  # stopped by now, unless it runs on a cluster
        lines.append(f"  decision API      {deployed.url} (/v1, /v2, /docs)")
        if deployed.grpc:
            lines.append(f"  gRPC (V2)         {deployed.grpc} (app/serving/v2proto/*.proto)")
    if log_path is not None:
        lines.append(f"  full log          {log_path}")
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    setup_logging()
    settings = load_settings()
    if args.rows:
        settings = synthetic_source(settings, args.rows)
    # Before any work: what an earlier run killed mid-way (SIGKILL, OOM) left behind is
    # stopped, so its ingress no longer holds the port; a port held by anything else is named.
    cleaned = sweep_stale_runs()
    if args.decisions > 0 and not joined_cluster(settings):
        check_port_free(args.host, args.port)
        check_port_free(args.host, args.grpc_port)
    # Artifact download bars would fill the log with carriage returns.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    log_path = None
    if not args.verbose:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        log_path = settings.data_dir / "logs" / f"pipeline-{stamp}.log"
    with output_to_log(log_path) if log_path else contextlib.nullcontext(sys.stdout) as out:
        stages = Stages(out)
        stages.say(f"data directory: {settings.data_dir}")
        for note in cleaned:
            stages.say(f"cleaned up after an earlier local Ray: {note}")
        if log_path is not None:
            stages.say(f"Ray's and the libraries' output: {log_path}")
        deployed = run_stages(settings, args, stages)
        stages.summary()
        stages.say(where_to_look(settings, log_path, deployed))
    return 0


if __name__ == "__main__":
    run_job(main)

"""The child process that owns ours in the serving and soak benchmarks: one local Ray, Serve on
the spec's port, `serve.run` of the app with the spec's deployment options; then it waits for
SIGTERM, prints the drift monitor's status and shuts Serve and Ray down.

    python benchmarks/peers/ours_driver.py SPEC.json   (written by benchmarks.harness.ours)
"""

from __future__ import annotations

import contextlib
import importlib
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any


def monitor_status(app_args: dict[str, Any]) -> dict[str, Any] | None:
    """The drift monitor actor's status(), None when none runs (no replica asked for one)."""
    import ray

    from app.config import load_settings
    from app.monitoring.monitor import find_monitor

    try:
        actor = find_monitor(load_settings(**app_args["settings"]))
        return None if actor is None else ray.get(actor.status.remote(), timeout=15)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def run_app(spec: dict[str, Any], stop: threading.Event) -> None:
    from ray import serve
    from ray.serve import Application

    logging_config = spec["logging_config"]
    serve.start(
        http_options={"host": "127.0.0.1", "port": spec["port"]},
        grpc_options=spec.get("grpc_options"),  # serve_config.yaml's, on a free port, or none
        logging_config=logging_config,
    )
    module, _, attribute = spec["import_path"].partition(":")
    app = getattr(importlib.import_module(module), attribute)(spec["args"])
    # What a serve config's `deployments:` does to the built app: Deployment.options.
    options = dict(spec["deployment_options"])
    deployment = app._bound_deployment
    if options.pop("name", deployment.name) != deployment.name:
        raise RuntimeError(f"the serve config names another deployment than {deployment.name}")
    app = Application(deployment.options(**options))
    serve.run(app, name=spec["app_name"], route_prefix="/", logging_config=logging_config)
    status = serve.status().applications[spec["app_name"]].deployments[deployment.name]
    print(f"SERVE_READY {json.dumps(status.replica_states)}", flush=True)
    stop.wait()
    print(f"MONITOR_STATUS {json.dumps(monitor_status(spec['args']), default=str)}", flush=True)


def main(argv: list[str]) -> int:
    import ray
    from ray import serve

    spec = json.loads(Path(argv[1]).read_text())
    stop = threading.Event()
    ray.init(
        address="local", num_cpus=spec["num_cpus"], include_dashboard=False, log_to_driver=False
    )
    # After ray.init, which installs its own SIGTERM handler (sys.exit): the status comes first.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run_app(spec, stop)
    finally:
        with contextlib.suppress(Exception):
            serve.shutdown()
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Process plumbing shared by the jobs: logging, joining or starting Ray, and clean failures."""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import CreditRiskError

if TYPE_CHECKING:
    from app.config import Settings

EXIT_USER_ERROR = 2
EXIT_TERMINATED = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM (`ray job stop`, systemd, Kubernetes): the same orderly stop as Ctrl-C."""


def stop_on_sigterm() -> None:
    """Make SIGTERM raise Terminated in the main thread, as Ctrl-C raises KeyboardInterrupt,
    so every `finally` and shutdown path runs. ray.init installs its own handler (a bare
    sys.exit mid-statement): called again after it."""
    if threading.current_thread() is not threading.main_thread():
        return

    def terminate(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, terminate)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # Library chatter that says nothing to a user of the jobs: Ray Data's own deprecation
    # notices and Feast's "on-demand views are experimental" on every retrieval.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ray\.data\..*")
    warnings.filterwarnings("ignore", message="On demand feature view is an experimental")
    warnings.filterwarnings("ignore", message="The ``noload`` loader strategy is deprecated")
    # Feast logs every registry refresh at INFO; keep the jobs' own lines readable.
    for noisy in ("feast", "snowflake.connector"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def read_args(resources: dict[str, float] | None) -> dict:
    """Ray Data's `ray_remote_args` for read tasks: the custom resources they need, if any."""
    return {"resources": dict(resources)} if resources else {}


def init_ray(settings: Settings) -> None:
    """Join the configured cluster (or the one `ray job submit` started us in), else start one.

    A new local Ray is the default rather than `ray.init()`'s join-anything behaviour, so a
    cluster that happens to run on the machine is only used when asked for.
    """
    import ray

    if ray.is_initialized():
        return
    address = settings.ray_address or os.environ.get("RAY_ADDRESS")
    from app.localservices import free_port

    # The dashboard serves the State API: without it Ray Train's placement-group cleaner fails
    # to query its controller every second of a fit (a warning each time), and local drift
    # retraining has no Jobs API. A free port, so a second local Ray on the machine can start.
    kwargs: dict = {"log_to_driver": True, "dashboard_port": free_port()}
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        with serve_ingress_env(settings):
            ray.init(address="local", num_cpus=settings.ray_num_cpus, **kwargs)
    stop_on_sigterm()
    configure_ray_data()


def serve_environment(
    settings: Settings, local: bool = False, run_dir: Path | None = None
) -> dict[str, str]:
    """RAY_SERVE_* variables for a Ray this process starts, per `settings.serve_ingress`.

    HAProxy ingress (with Serve's throughput-optimized mode) answers on the http_options
    address and balances over the replicas' own HTTP ports, skipping the Python proxy hop
    (docs/benchmarks.md section 4 has the figures). Its config, socket and state files and its
    stats and metrics ports are made private to this Ray, so two on one machine (a test run
    beside a laptop service) do not collide. HAProxy binds the stats and metrics ports, and
    the replicas their HTTP and gRPC ports, on every interface: firewall them (docs/cluster.md).
    `local`: for a one-node Ray this process starts: shorter draining (see below), and the
    ports of HAProxy's backends (the replicas, Serve's fallback proxy) from a block no other
    Ray on the machine uses, instead of Serve's defaults.
    `run_dir`: where HAProxy's files go (a new temporary directory without one).
    """
    from app.localservices import quiet_port

    # How often replicas and handles report load to the autoscaler (Serve's default is 10 s;
    # the deprecated autoscaling_config.metrics_interval_s used to set it).
    autoscaling = {
        "RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "5",
        "RAY_SERVE_HANDLE_AUTOSCALING_METRIC_PUSH_INTERVAL_S": "5",
    }
    if settings.serve_ingress != "haproxy":
        return autoscaling
    # Short: Serve appends the node id, and HAProxy refuses socket paths over ~100 characters.
    from app.localray import RUN_DIR_PREFIX

    run_dir = run_dir or Path(tempfile.mkdtemp(prefix=RUN_DIR_PREFIX))
    return {
        **autoscaling,
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_HAPROXY_NBTHREAD": str(settings.serve_haproxy_threads),
        # Bound seconds later, once Ray is up: from a range no other process is handed.
        "RAY_SERVE_HAPROXY_STATS_PORT": str(quiet_port()),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(quiet_port()),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(run_dir / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(run_dir / "admin.sock"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(run_dir / "metrics.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(run_dir),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(run_dir / "server-state"),
        # A stopping replica keeps answering this long while HAProxy takes it out of rotation
        # (config reload within ~0.1 s on a node; health checks every 5 s x 2 otherwise).
        # Serve's 30 s default made every local shutdown and scale-down wait 30 s; on one node
        # 2 s is twenty reloads' worth, and a local run's shutdown waits 2 s instead of 10.
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2" if local else "10",
        **(local_backend_ports() if local else {}),
    }


def local_backend_ports() -> dict[str, str]:
    """The ports of HAProxy's backends (Serve's fallback proxy, the replicas) from a block of
    this machine's that no other Ray uses. Serve's defaults are the same in every Ray: another
    one here would share the fallback proxy's ports, or take a replica port this Ray's HAProxy
    still routes to, and answer this service's callers (app.localservices.BACKEND_PORT_RANGE)."""
    from app.localservices import BACKEND_PORT_BLOCK, backend_port_block

    start, half = backend_port_block(), BACKEND_PORT_BLOCK // 2
    return {
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(start),
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(start + 1),
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(start + half),
        "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(start + half),
        "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT": str(start + half + 1),
        "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT": str(start + 2 * half),
    }


@contextmanager
def serve_ingress_env(settings: Settings) -> Iterator[None]:
    """`serve_environment` in os.environ while a local Ray starts (its processes keep what they
    inherited), then removed: a child process of ours starting its own Ray gets its own ports.
    Variables the user set win.

    The Ray gets a run dir (HAProxy's files) and a guard that stops whatever of it is left once
    this process is gone, however it ended; run dirs of earlier processes that died with no
    guard left to clean up are cleaned up first (app.localray)."""
    import atexit
    import shutil

    from app.localray import new_run_dir, record_ray_processes, start_guard, sweep_stale_runs

    for note in sweep_stale_runs():
        logging.getLogger(__name__).warning(note)
    run_dir = new_run_dir()
    environment = serve_environment(settings, local=True, run_dir=run_dir)
    added = {k: v for k, v in environment.items() if k not in os.environ}
    os.environ.update(added)
    start_guard(run_dir)
    # After an orderly exit nothing of this Ray is left; the guard finds nothing and leaves.
    atexit.register(shutil.rmtree, run_dir, ignore_errors=True)
    try:
        yield
        record_ray_processes(run_dir)
    finally:
        for name in added:
            os.environ.pop(name, None)


def configure_ray_data() -> None:
    """Ray Data settings for this driver (they travel with each Dataset's plan)."""
    import ray.data

    context = ray.data.DataContext.get_current()
    # Progress bars repaint on every update: in the main job's log file (and in a job's log on
    # a cluster) they are lines of carriage returns, and Ray's driver redraws them at exit.
    context.enable_progress_bars = False
    # Ray 2.60's file-listing stage starts an actor per dataset: ~5 s to read a 1,000-row
    # Parquet file here against ~0.2 s on the V1 reader (measured on 2 cores).
    context.use_datasource_v2 = False


def run_job(main: Callable[[], int | None]) -> None:
    """Run a job's main; a known failure prints one line and exits 2, never a traceback."""
    from pydantic import ValidationError

    stop_on_sigterm()
    try:
        code = main()
    except CreditRiskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        print(f"error: invalid settings: {problems}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except Terminated:
        print("stopped: SIGTERM received", file=sys.stderr)
        sys.exit(EXIT_TERMINATED)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)

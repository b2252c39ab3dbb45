"""One service's transport under load: wrk posting JSON bodies (REST) or grpcload sending
gRPC messages, a load run with many connections, then a sequential one, with the service's
memory and the machine's CPU metered around each."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.harness.machine import Meter
from benchmarks.harness.procs import ROOT, ServiceProcess

WRK_SCRIPT = ROOT / "benchmarks" / "wrk" / "post_bodies.lua"


@dataclass
class Target:
    """Where one row's load goes: wrk posting `bodies` (JSON, one a line) to the URL
    `address`, or for gRPC grpcload sending `bodies` (messages) to host:port `address`."""

    key: str  # the row's key in the results
    label: str
    transport: str  # "v1" (ours' own JSON), "v2" (V2 REST), "grpc" or "rest" (a peer's)
    address: str
    bodies: Path
    metadata: dict[str, str] = field(default_factory=dict)  # gRPC metadata
    method: str = ""  # gRPC method path
    check: Callable[[], None] | None = None  # its answers checked before it is measured


@dataclass
class WrkRun:
    connections: int
    result: dict[str, Any]  # post_bodies.lua's WRK_RESULT (grpcload gives the same keys)
    output: str

    @property
    def errors(self) -> int:
        r = self.result
        kinds = ("non200", "connect_errors", "read_errors", "write_errors", "timeouts")
        return int(sum(r[kind] for kind in kinds))

    def describe_errors(self) -> str:
        r = self.result
        return (
            f"non-200 {r['non200']}, connect {r['connect_errors']}, read {r['read_errors']}, "
            f"write {r['write_errors']}, timeouts {r['timeouts']}"
        )


def run_wrk(
    url: str, bodies: Path, connections: int, threads: int, seconds: int, args: Any
) -> WrkRun:
    """wrk posting the bodies in rotation (benchmarks/wrk/post_bodies.lua)."""
    command = ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{seconds}s"]
    command += ["--timeout", "10s", *(f"-H{k}: {v}" for k, v in args.auth.items())]
    command += ["-s", str(WRK_SCRIPT), *(["--latency"] if args.latency else []), url]
    done = subprocess.run(
        [*command, "--", str(bodies)], capture_output=True, text=True, timeout=seconds + 120
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("WRK_RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return WrkRun(connections, json.loads(lines[-1].removeprefix("WRK_RESULT ")), done.stdout)


def run_load(target: Target, connections: int, threads: int, seconds: int, args: Any) -> WrkRun:
    """wrk, or grpcload (connections: its workers, over up to --grpc-channels channels)."""
    if target.transport != "grpc":
        return run_wrk(target.address, target.bodies, connections, threads, seconds, args)
    from benchmarks.harness import grpcload

    result, output = grpcload.run(
        target.address,
        target.method,
        target.bodies,
        connections,
        seconds,
        target.metadata,
        args.grpc_channels,
    )
    return WrkRun(connections, result, output)


@dataclass
class Measured:
    name: str  # the row's label
    duration: int  # s per wrk run
    load: WrkRun
    sequential: WrkRun
    rss_idle: tuple[int, int]  # (the service's processes, the whole tree), bytes
    rss_peak: tuple[int, int]
    processes: int
    cores: dict[str, dict[str, float]]  # run -> service / wrk / other
    monitor: dict[str, Any] | None = None  # ours: its drift monitor (monitor_summary)
    transport: str = "v1"
    pss_idle: tuple[int, int] = (0, 0)  # as rss_idle, proportional (machine.Proc.pss)

    @property
    def errors(self) -> int:
        return self.load.errors + self.sequential.errors


def measure(service: ServiceProcess, target: Target, args: Any, duration: int) -> Measured:
    """Warm-up, the load run (--connections), the sequential run (1 connection)."""
    rss_idle, pss_idle = service.rss(), service.pss()
    if args.warmup > 0:
        run_load(target, args.connections, args.threads, args.warmup, args)
    runs, meters = [], []
    for connections, threads in ((args.connections, args.threads), (1, 1)):
        with Meter(service.tree, service.counted) as meter:
            runs.append(run_load(target, connections, threads, duration, args))
        meters.append(meter)
    tool = "grpcload" if target.transport == "grpc" else "wrk"
    for run in runs:
        for line in run.output.splitlines():
            if line.startswith("WRK_FIRST_BAD"):
                print(f"  {target.label}, {run.connections} connection(s): {line}")
        if args.latency and tool == "wrk":
            print(f"  wrk, {run.connections} connection(s):")
            print("\n".join(f"    {line}" for line in run.output.splitlines()))
    peak = (max(m.peak[0] for m in meters), max(m.peak[1] for m in meters))
    cores = {"load": meters[0].cores, "sequential": meters[1].cores}
    measured = Measured(target.label, duration, *runs, rss_idle, peak, len(service.tree()), cores)
    measured.transport, measured.pss_idle = target.transport, pss_idle
    return measured

"""The harness's wrk for gRPC: N workers (the connections), each with one unary call in flight at
a time, over K channels (one HTTP/2 connection each), sending prebuilt messages in rotation for
a fixed time; one WRK_RESULT line with benchmarks/wrk/post_bodies.lua's keys, so the report
treats both alike.

    python -m benchmarks.harness.grpcload HOST:PORT /pkg.Service/Method MESSAGES \
        -c 16 -d 60 [--channels 4] [-m authorization='Bearer ...']

MESSAGES holds serialized request messages, each after its 4-byte little-endian length
(`write_messages`). They are sent as they are and answers kept as bytes: no protobuf work in
the loop, only gRPC's own. A non-OK status counts as a non-200 (its code as the status), a
deadline (--timeout) as a timeout, anything else as a read error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Each channel its own connection (gRPC would share one subchannel between equal channels).
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]
ROTATION_STRIDE = 499  # workers start far apart, as post_bodies.lua's threads do


def write_messages(path: Path, messages: Iterable[bytes]) -> int:
    """Length-prefixed messages into `path`; how many."""
    count = 0
    with path.open("wb") as out:
        for message in messages:
            out.write(struct.pack("<I", len(message)) + message)
            count += 1
    return count


def read_messages(path: Path) -> list[bytes]:
    raw, offset, messages = path.read_bytes(), 0, []
    while offset < len(raw):
        (size,) = struct.unpack_from("<I", raw, offset)
        messages.append(raw[offset + 4 : offset + 4 + size])
        offset += 4 + size
    if not messages or offset != len(raw):
        raise ValueError(f"{path}: no messages, or a truncated one")
    return messages


@dataclass
class Tally:
    """What the workers saw: each answered call's latency and the failures by kind."""

    latencies_ms: list[float] = field(default_factory=list)
    non_ok: int = 0
    timeouts: int = 0
    other: int = 0
    first_bad_status: int = 0
    first_bad_body: str = ""

    def failed(self, code: int, details: str) -> None:
        self.non_ok += 1
        if not self.first_bad_status:
            self.first_bad_status, self.first_bad_body = code, details[:300]


def result_of(tally: Tally, seconds: float) -> dict[str, Any]:
    """post_bodies.lua's WRK_RESULT keys; latencies of answered calls (OK or a status)."""
    from benchmarks.harness.stats import percentiles

    keys = ("mean", "p50", "p90", "p99", "max")
    figures = dict.fromkeys(keys, 0.0)  # as wrk prints them for no answer
    if tally.latencies_ms:
        figures = percentiles(tally.latencies_ms, keys)
    answered = len(tally.latencies_ms)
    result: dict[str, Any] = {"requests": answered, "duration_s": round(seconds, 3)}
    result["rps"] = answered / seconds if seconds > 0 else 0.0
    result |= {f"{k}_ms": round(float(v), 3) for k, v in figures.items()}
    result |= {"responses": answered, "non200": tally.non_ok, "connect_errors": 0}
    result |= {"read_errors": tally.other, "write_errors": 0, "timeouts": tally.timeouts}
    return result | {"status_errors": 0, "first_bad_status": tally.first_bad_status}


async def worker(
    call: Any, messages: list[bytes], start: int, until: float, options: dict, tally: Tally
) -> None:
    import grpc

    position, clock = start, time.perf_counter
    while clock() < until:
        position = (position + 1) % len(messages)
        sent = clock()
        try:
            await call(messages[position], **options)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                tally.timeouts += 1
                continue
            tally.failed(exc.code().value[0], exc.details() or "")
        except Exception:
            tally.other += 1
            continue
        tally.latencies_ms.append((clock() - sent) * 1000)


async def load(
    target: str,
    method: str,
    messages: list[bytes],
    connections: int,
    channels: int,
    seconds: float,
    metadata: list[tuple[str, str]],
    timeout: float = 10.0,
) -> dict[str, Any]:
    """`connections` workers over `channels` channels (connected before the clock starts)."""
    import grpc

    opened = [
        grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        for _ in range(max(1, min(channels, connections)))
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in opened)), 30)
        calls = [c.unary_unary(method) for c in opened]  # bytes in, bytes out
        tally, options = Tally(), {"metadata": tuple(metadata), "timeout": timeout}
        started = time.perf_counter()
        until = started + seconds
        await asyncio.gather(
            *(
                worker(calls[i % len(calls)], messages, i * ROTATION_STRIDE, until, options, tally)
                for i in range(connections)
            )
        )
        return result_of(tally, time.perf_counter() - started) | {"_bad": tally.first_bad_body}
    finally:
        await asyncio.gather(*(c.close() for c in opened))


def main(argv: list[str] | None = None) -> int:
    command = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    command.add_argument("target", help="host:port")
    command.add_argument("method", help="/package.Service/Method")
    command.add_argument("messages", type=Path, help="length-prefixed request messages")
    command.add_argument("-c", "--connections", type=int, default=16)
    command.add_argument("-d", "--duration", type=float, default=10.0, help="seconds")
    command.add_argument("--channels", type=int, default=4, help="at most --connections")
    command.add_argument("--timeout", type=float, default=10.0, help="seconds per call")
    command.add_argument("-m", "--metadata", action="append", default=[], help="key=value")
    args = command.parse_args(argv)
    metadata = [tuple(item.split("=", 1)) for item in args.metadata]
    result = asyncio.run(
        load(
            args.target,
            args.method,
            read_messages(args.messages),
            args.connections,
            args.channels,
            args.duration,
            metadata,  # type: ignore[arg-type]
            args.timeout,
        )
    )
    bad = result.pop("_bad")
    print(f"WRK_RESULT {json.dumps(result)}")
    if result["first_bad_status"]:
        print(f"WRK_FIRST_BAD status={result['first_bad_status']} body={json.dumps(bad)}")
    return 0


def run(
    target: str,
    method: str,
    messages: Path,
    connections: int,
    seconds: float,
    metadata: dict[str, str],
    channels: int,
) -> tuple[dict[str, Any], str]:
    """(WRK_RESULT, output) of the generator in its own process, as wrk runs: its CPU is a
    reaped child's (machine.Meter's "wrk"), not the benchmark's."""
    from benchmarks.harness.procs import ROOT, child_env

    argv = [sys.executable, "-m", "benchmarks.harness.grpcload", target, method, str(messages)]
    argv += ["-c", str(connections), "-d", str(seconds), "--channels", str(channels)]
    argv += [f"--metadata={k}={v}" for k, v in metadata.items()]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + 120, cwd=ROOT, env=child_env()
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("WRK_RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"grpcload failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(lines[-1].removeprefix("WRK_RESULT ")), done.stdout


if __name__ == "__main__":
    raise SystemExit(main())

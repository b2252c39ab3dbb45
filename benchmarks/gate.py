"""What the API's front door costs a request, in process and with no server: the guard's
authentication (token SHA-256 and lookup), token bucket, and the body read and replayed."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from benchmarks.harness.cli import parser
from benchmarks.harness.procs import work_dir
from benchmarks.harness.stats import median

PASSES = 7
APPLICATION = {
    "credit_amount": 2500,
    "duration_in_month": 24,
    "purpose": "car (used)",
    "installment_rate_in_percentage_of_disposable_income": 2,
}
BODY = json.dumps({"applicant_id": "A0000001", "application": APPLICATION}).encode()


async def one_pass(gate: Any, scope: dict[str, Any], count: int) -> float:
    """Seconds per request over `count` requests through the guard."""
    from app.serving.guard import bearer_token

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    started = time.perf_counter()
    for _ in range(count):
        gate.admit(bearer_token(scope))
        replay = await gate.bounded_body(scope, receive)
        await replay()
    return (time.perf_counter() - started) / count


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__, [("--requests", int, 20_000, "requests per pass")]).parse_args(argv)
    from app.serving.guard import Gate
    from benchmarks.harness.workload import add_key, bench_settings

    with work_dir("bench_gate_") as folder:
        settings = bench_settings(folder)
        token = add_key(settings, rate=1e9)  # a bucket that never empties
        headers = [(b"authorization", f"Bearer {token}".encode())]
        headers.append((b"content-length", str(len(BODY)).encode()))
        scope = {"type": "http", "method": "POST", "path": "/v1/decisions", "headers": headers}
        gate = Gate(settings)
        runs = [asyncio.run(one_pass(gate, scope, args.requests)) for _ in range(PASSES)]
    us = [run * 1e6 for run in runs]
    print(
        f"guard per request ({len(BODY)} B body): median {median(us):.2f} us over {PASSES} "
        f"passes of {args.requests:,} (min {min(us):.2f}, max {max(us):.2f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

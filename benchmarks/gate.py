"""What the API's front door costs a request: the guard's authentication (SHA-256 of the token,
one dict lookup), token bucket, and the body read and replayed before the app parses it.

    .venv/bin/python benchmarks/gate.py [--requests N]

In process, no server: the figure to set beside a decision's ~2 ms (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from app.config import load_settings
from app.serving.auth import SCOPES, KeyFile
from app.serving.guard import Gate

BODY = json.dumps(
    {
        "applicant_id": "A0000001",
        "application": {
            "credit_amount": 2500,
            "duration_in_month": 24,
            "purpose": "car (used)",
            "installment_rate_in_percentage_of_disposable_income": 2,
        },
    }
).encode()


async def one_pass(gate: Gate, scope: dict, count: int) -> float:
    async def receive():
        return {"type": "http.request", "body": BODY, "more_body": False}

    started = time.perf_counter()
    for _ in range(count):
        gate.admit(scope)
        replay = await gate.bounded_body(scope, receive)
        await replay()
    return (time.perf_counter() - started) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    settings = load_settings(data_dir=Path(tempfile.mkdtemp()), _env_file=None)
    keys = KeyFile.read(settings.api_keys_file)
    token = keys.add("bench", list(SCOPES), rate=1e9)  # a bucket that never empties
    keys.write()
    gate = Gate(settings)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/decisions",
        "headers": [
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-length", str(len(BODY)).encode()),
        ],
    }
    runs = [asyncio.run(one_pass(gate, scope, args.requests)) for _ in range(7)]
    print(
        f"guard per request ({len(BODY)} B body): median {statistics.median(runs) * 1e6:.2f} us "
        f"over 7 passes of {args.requests:,} (min {min(runs) * 1e6:.2f}, "
        f"max {max(runs) * 1e6:.2f})"
    )


if __name__ == "__main__":
    main()

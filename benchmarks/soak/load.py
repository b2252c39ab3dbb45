"""The open-loop load: request i is due at start + i / rate and goes out then, whatever the
earlier ones are doing, so a slow service shows as latency, not as a lower rate."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Answer:
    index: int
    due: float  # s since the measured load's start (< 0: warm-up)
    lag_ms: float  # how late the request left after it was due (client-side)
    status: int  # HTTP status, 0 on a transport error
    latency_ms: float  # from due to the end of the response
    service_ms: float  # from the actual send to the end of the response
    error: str | None  # None: a good 200


@dataclass
class Schedule:
    rate: float
    warmup: float  # at least this many seconds of warm-up
    warmup_max: float  # and at most this many, waiting for `warm()`
    seconds: float  # measured load
    warm: Callable[[], bool]  # True once the service is warm (the drift monitor has checked)
    on_phase: Callable[[str, float], None]  # ("warmup" | "load" | "end", time.monotonic())
    started: float = math.nan  # when the warm-up started (time.monotonic)


async def post(session: Any, url: str, body: bytes, applicant: str, args: Any) -> tuple:
    """(status, error or None) of one request; a 200 must be a decision for the applicant."""
    import aiohttp

    status = 0
    try:
        headers = {"Content-Type": "application/json", **args.auth}
        async with session.post(url, data=body, headers=headers) as response:
            status, raw = response.status, await response.read()
        if not 200 <= status < 300:
            return status, f"HTTP {status}"
        answer = json.loads(raw)
        good = answer.get("applicant_id") == applicant and "decision" in answer
        return status, None if good else "bad 200 body"
    except ValueError:
        return status, "bad 200 body"
    except TimeoutError:
        return status, f"timeout (>{args.timeout:g} s)"
    except aiohttp.ClientConnectorError:
        return status, "connect error"
    except aiohttp.ServerDisconnectedError:
        return status, "server disconnected"
    except (aiohttp.ClientError, OSError) as exc:
        return status, type(exc).__name__


async def drive(
    url: str, bodies: list[bytes], applicants: list[str], schedule: Schedule, args: Any
) -> tuple[list[Answer], float]:
    """The warm-up, then the measured load from the first due time after at least `warmup` s
    once `warm()` (or after `warmup_max` s), for `seconds`. Returns the answers and the
    measured load's start (time.monotonic)."""
    import aiohttp

    loop, answers = asyncio.get_running_loop(), []  # the loop's clock is time.monotonic()

    async def one(session: Any, i: int, at: float) -> None:
        sent = loop.time()
        pick = i % len(bodies)
        status, error = await post(session, url, bodies[pick], applicants[pick], args)
        done = loop.time()
        latency, service = (done - at) * 1000, (done - sent) * 1000
        answers.append(Answer(i, at, (sent - at) * 1000, status, latency, service, error))

    connector = aiohttp.TCPConnector(limit=args.connections, limit_per_host=args.connections)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = schedule.started = loop.time() + 0.2
        schedule.on_phase("warmup", t0)
        load_start = end = math.inf
        next_look, tasks, i = t0 + schedule.warmup, set(), 0
        while (at := t0 + i / schedule.rate) < end:
            if load_start == math.inf and at >= next_look:
                if at >= t0 + schedule.warmup_max or schedule.warm():
                    load_start, end = at, at + schedule.seconds
                    schedule.on_phase("load", load_start)
                    schedule.on_phase("end", end)
                else:
                    next_look = at + 1.0
            if (delay := at - loop.time()) > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(session, i, at))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        while tasks:
            await asyncio.gather(*list(tasks))
    for answer in answers:
        answer.due -= load_start
    return sorted(answers, key=lambda a: a.index), load_start

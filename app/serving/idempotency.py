"""Idempotency keys: a retried POST gets the first answer back, never a second decision.

A client that did not see an answer (a timeout, a replica lost mid-request) may send the same
request again with the same `Idempotency-Key` header. The first request claims the key; once it
is answered, the answer is kept for `ttl_seconds` and every retry gets it back unchanged (same
request_id, no new prediction-log row). A retry while the first is still in flight gets 409; a
key reused for a different request gets 422. The claim expires after `claim_seconds`, so a
replica that died holding one does not block the key for good.

The keys live where every replica can see them: Redis when it is the online store, otherwise a
SQLite file beside the data (one machine, which the SQLite online store implies anyway).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from app.config import Settings
from app.serving.decide import Outcome
from app.serving.schemas import DecisionRequest, DecisionResponse

log = logging.getLogger(__name__)

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
PENDING = "pending"


class InProgress(Exception):
    """Another request holding this key has not been answered yet."""


class KeyReused(Exception):
    """The key was first used for a different request."""


def fingerprint(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def _answered(stored: str, request: str) -> str:
    record = json.loads(stored)
    if record["request"] != request:
        raise KeyReused("Idempotency-Key was first used for a different request")
    return record["response"]


class RedisIdempotency:
    def __init__(self, client, ttl_seconds: float, claim_seconds: float, prefix: str) -> None:
        self.client = client
        self.ttl_ms = int(ttl_seconds * 1000)
        self.claim_ms = int(claim_seconds * 1000)
        self.prefix = prefix

    def begin(self, key: str, request: str) -> str | None:
        """The stored answer to replay, or None when this request now holds the key."""
        name = self.prefix + key
        if self.client.set(name, PENDING, nx=True, px=self.claim_ms):
            return None
        stored = self.client.get(name)
        if stored is None:  # expired between the two calls: claim it now
            return self.begin(key, request)
        stored = stored.decode() if isinstance(stored, bytes) else stored
        if stored == PENDING:
            raise InProgress("a request with this Idempotency-Key is still being answered")
        return _answered(stored, request)

    def finish(self, key: str, request: str, response: str) -> None:
        record = json.dumps({"request": request, "response": response})
        self.client.set(self.prefix + key, record, px=self.ttl_ms)

    def abandon(self, key: str) -> None:
        """Release an unanswered claim (the request failed), so a retry can be answered."""
        name = self.prefix + key
        if self.client.get(name) in (PENDING, PENDING.encode()):
            self.client.delete(name)


class SqliteIdempotency:
    def __init__(self, path: Path, ttl_seconds: float, claim_seconds: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(
            str(path), timeout=2.0, check_same_thread=False, isolation_level=None
        )
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute(
            "CREATE TABLE IF NOT EXISTS idempotency "
            "(key TEXT PRIMARY KEY, record TEXT, expires REAL NOT NULL)"
        )
        self.ttl = ttl_seconds
        self.claim = claim_seconds

    def begin(self, key: str, request: str) -> str | None:
        now = time.time()
        db = self.connection
        db.execute("DELETE FROM idempotency WHERE key = ? AND expires < ?", (key, now))
        claimed = db.execute(
            "INSERT OR IGNORE INTO idempotency VALUES (?, NULL, ?)", (key, now + self.claim)
        )
        if claimed.rowcount == 1:
            return None
        row = db.execute("SELECT record FROM idempotency WHERE key = ?", (key,)).fetchone()
        if row is None:
            return self.begin(key, request)
        if row[0] is None:
            raise InProgress("a request with this Idempotency-Key is still being answered")
        return _answered(row[0], request)

    def finish(self, key: str, request: str, response: str) -> None:
        record = json.dumps({"request": request, "response": response})
        self.connection.execute(
            "UPDATE idempotency SET record = ?, expires = ? WHERE key = ?",
            (record, time.time() + self.ttl, key),
        )
        # Expired answers go in passing; the table holds at most a TTL's worth of keys.
        self.connection.execute("DELETE FROM idempotency WHERE expires < ?", (time.time(),))

    def abandon(self, key: str) -> None:
        self.connection.execute("DELETE FROM idempotency WHERE key = ? AND record IS NULL", (key,))


def open_idempotency(settings: Settings):
    """The key store for these settings (Redis online store -> Redis, else SQLite)."""
    ttl, claim = settings.idempotency_ttl_seconds, settings.idempotency_claim_seconds
    if settings.online_store == "redis":
        from app.connections import redis_client

        prefix = f"{settings.feast_project}:idempotency:"
        return RedisIdempotency(redis_client(settings), ttl, claim, prefix)
    return SqliteIdempotency(settings.data_dir / "serving" / "idempotency.db", ttl, claim)


class KeyedDecisions:
    """`decide` at most once per Idempotency-Key; the key store is opened on first use, and
    used from one thread of its own (its SQLite connection must not be shared)."""

    def __init__(
        self,
        settings: Settings,
        opener: Callable[[Settings], Any] = open_idempotency,
        errors=None,  # a metrics counter with an `error` tag, or None
    ) -> None:
        self.settings = settings
        self._opener = opener
        self._errors = errors
        self._store = None
        self._work = ThreadPoolExecutor(1, thread_name_prefix="idempotency")

    async def _call(self, method: str, *args):
        loop = asyncio.get_running_loop()
        if self._store is None:
            self._store = await loop.run_in_executor(self._work, self._opener, self.settings)
        return await loop.run_in_executor(self._work, getattr(self._store, method), *args)

    async def decide(
        self,
        key: str,
        request: DecisionRequest,
        decide: Callable[[DecisionRequest], Awaitable[Outcome]],
    ) -> Outcome:
        body = fingerprint(request.model_dump_json())
        try:
            replay = await self._call("begin", key, body)
        except InProgress as exc:
            return Outcome(409, detail=str(exc))
        except KeyReused as exc:
            return Outcome(422, detail=str(exc))
        except Exception as exc:  # cannot promise "once": refuse rather than risk twice
            if self._errors is not None:
                self._errors.inc(tags={"error": "idempotency"})
            problem = f"idempotency store unavailable: {type(exc).__name__}: {exc}"
            return Outcome(503, detail=problem[:500])
        if replay is not None:
            return Outcome(200, DecisionResponse.model_validate_json(replay), replayed=True)
        outcome = await decide(request)
        try:
            if outcome.status == 200:
                await self._call("finish", key, body, outcome.response.model_dump_json())
            else:
                await self._call("abandon", key)
        except Exception:  # answered already; the claim expires by itself
            log.exception("idempotency record not written for a decision")
        return outcome

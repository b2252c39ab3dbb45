"""Where Idempotency-Keys are stored: Redis (every replica sees it) or a SQLite file (one
machine), behind two operations: claim-if-absent and compare-and-set, each atomic and each one
round trip. The states a key moves through are idempotency.py's."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from app.config import Settings

# One attempt, this long on the socket: the decision path's bound (see idempotency.py).
SOCKET_TIMEOUT_SECONDS = 1.0
PURGE_CHUNK = 1000


@dataclass(frozen=True)
class Swap:
    """Set `key` to `new` (None: delete) for `ttl` seconds, only if it holds one of `expected`."""

    key: str
    expected: tuple[str, ...]
    new: str | None = None
    ttl: float = 0.0


class KeyStore(Protocol):
    def begin(self, key: str, value: str, ttl: float) -> str | None:
        """The live record under `key`, or None after storing `value` there (atomically)."""

    def swap(self, swaps: list[Swap]) -> list[bool]:
        """Each swap applied if its key holds an expected record: one round trip."""

    def purge(self) -> int:
        """Expired records removed (a bounded amount per call)."""


# KEYS[1]: the key; ARGV[1]: the claim, ARGV[2]: its TTL (ms). The live record, or nil once
# the claim is stored: check and claim in one atomic step and one round trip.
BEGIN_LUA = """
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
# ARGV[1]: the new record ('' deletes), ARGV[2]: its TTL (ms), ARGV[3..]: the records it may
# replace. 1 when swapped.
SWAP_LUA = """
local v = redis.call('GET', KEYS[1])
for i = 3, #ARGV do
  if v == ARGV[i] then
    if ARGV[1] == '' then redis.call('DEL', KEYS[1])
    else redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
    return 1
  end
end
return 0
"""


class RedisIdempotency:
    def __init__(self, client, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._begin = client.register_script(BEGIN_LUA)
        self._swap = client.register_script(SWAP_LUA)

    def begin(self, key: str, value: str, ttl: float) -> str | None:
        stored = self._begin(keys=[self.prefix + key], args=[value, _ms(ttl)])
        return stored.decode() if isinstance(stored, bytes) else stored

    def swap(self, swaps: list[Swap]) -> list[bool]:
        pipe = self.client.pipeline(transaction=False)
        for s in swaps:
            self._swap(
                keys=[self.prefix + s.key], args=[s.new or "", _ms(s.ttl), *s.expected], client=pipe
            )
        return [bool(done) for done in pipe.execute()]

    def purge(self) -> int:
        return 0  # Redis expires keys itself


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class SqliteIdempotency:
    """The keys in one SQLite file; each pool thread has its own connection (sqlite3
    connections are not for sharing), and WAL lets them read while one writes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        db = self._db()
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS idempotency "
            "(key TEXT PRIMARY KEY, record TEXT NOT NULL, expires REAL NOT NULL)"
        )
        # The purge's range scan: without it every purge reads the whole table.
        db.execute("CREATE INDEX IF NOT EXISTS idempotency_expires ON idempotency (expires)")

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                str(self.path), timeout=SOCKET_TIMEOUT_SECONDS, isolation_level=None
            )
            self._local.db = db
        return db

    def begin(self, key: str, value: str, ttl: float) -> str | None:
        now = time.time()
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT record FROM idempotency WHERE key = ? AND expires >= ?", (key, now)
            ).fetchone()
            if row is None:
                db.execute(
                    "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?)", (key, value, now + ttl)
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return None if row is None else row[0]

    def swap(self, swaps: list[Swap]) -> list[bool]:
        now = time.time()
        db = self._db()
        done = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for s in swaps:
                marks = ",".join("?" * len(s.expected))
                where = f"key = ? AND expires >= ? AND record IN ({marks})"
                if s.new is None:
                    cursor = db.execute(
                        f"DELETE FROM idempotency WHERE {where}", (s.key, now, *s.expected)
                    )
                else:
                    cursor = db.execute(
                        f"UPDATE idempotency SET record = ?, expires = ? WHERE {where}",
                        (s.new, now + s.ttl, s.key, now, *s.expected),
                    )
                done.append(cursor.rowcount == 1)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return done

    def purge(self) -> int:
        cursor = self._db().execute(
            "DELETE FROM idempotency WHERE rowid IN "
            "(SELECT rowid FROM idempotency WHERE expires < ? LIMIT ?)",
            (time.time(), PURGE_CHUNK),
        )
        return cursor.rowcount


def open_idempotency(settings: Settings) -> KeyStore:
    """The key store for these settings (Redis online store -> Redis, else SQLite)."""
    if settings.online_store == "redis":
        from app.connections import redis_client

        client = redis_client(settings, SOCKET_TIMEOUT_SECONDS, retry=False)
        return RedisIdempotency(client, f"{settings.feast_project}:idempotency:")
    return SqliteIdempotency(settings.data_dir / "serving" / "idempotency.db")

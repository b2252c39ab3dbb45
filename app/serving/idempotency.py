"""Idempotency keys: a retried POST gets the first answer back, never a second decision.

A client that did not see an answer (a timeout, a replica lost mid-request) may send the same
request again with the same `Idempotency-Key` header. A key is one stored record that moves
through three states, each write conditional on the record the writer saw (compare-and-set:
a Lua script in Redis, a conditional UPDATE in SQLite), so a late or stray writer never
overwrites another request's claim or answer:

- **pending** (`owner` = a random token of the request holding it): written when the request
  arrives, kept `claim_seconds`. A retry meanwhile gets 409. A request that got no decision
  (404, 503) deletes it; a replica lost before deciding frees it when it expires.
- **decided**: written after scoring and before the decision is logged or returned, in one
  round trip for the batch; kept `ttl_seconds`. If that write fails, the request gets 503 and
  nothing is logged or answered: no decision exists, and the key frees itself.
- **answered** (the response): written after the decision is logged, kept `ttl_seconds`;
  every retry gets it back unchanged (same request_id, no new prediction-log row).

The rule that follows: a key whose request was decided is never claimed again within the TTL.
If the answer could not be stored (the store failed after the decision, or the replica died
between logging it and storing it), retries get 409 "answer unknown" rather than a second
decision; the replica keeps retrying the write in the background, so a store that comes back
soon replays the answer after all. The decision is in the prediction log under its key.

Every store call runs on a small thread pool (never one thread for every keyed request) with
the decision path's bounds: a 1 s socket timeout, no retries, and a deadline per call after
which the request gets 503 + Retry-After. Where keys live: keystore.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from app.config import Settings
from app.serving.decide import Outcome, Scored
from app.serving.faults import fault
from app.serving.keystore import KeyStore, Swap, open_idempotency
from app.serving.schemas import IDEMPOTENCY_KEY, DecisionRequest, DecisionResponse

log = logging.getLogger(__name__)

KEY_PATTERN = re.compile(IDEMPOTENCY_KEY)
PENDING, DECIDED, ANSWERED = "pending", "decided", "answered"
# The decision path's bounds: one attempt, 1 s on the socket (keystore.py), and no call waits
# longer than this for a thread and an answer (a hung store costs a request this long, not
# Serve's timeout).
DEADLINE_SECONDS = 1.0
THREADS = 4
PURGE_SECONDS = 60.0  # SQLite: expired keys removed this often, off the request path
MAX_RETRIED_WRITES = 10_000  # answers and releases waiting for a store that failed

IN_PROGRESS = "a request with this Idempotency-Key is still being answered; retry after Retry-After"
ANSWER_UNKNOWN = (
    "the request first sent with this Idempotency-Key was decided, but its answer could not be "
    "stored (its replica stopped, or the key store failed): retrying it cannot decide again; "
    "the decision is in the prediction log under this key, and a new key asks for a new decision"
)
REUSED = "Idempotency-Key was first used for a different request"
STORE_DOWN = "idempotency key store unavailable"
CLAIM_LOST = "this request's Idempotency-Key claim expired before it was decided; send it again"


def fingerprint(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def encode(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True)
class Claim:
    """One request's hold on a key: `key` is the caller-scoped store key, `header` what the
    caller sent (logged with the decision)."""

    key: str
    header: str
    request: str  # the request body's fingerprint
    owner: str

    @property
    def pending(self) -> str:
        return encode({"state": PENDING, "owner": self.owner, "request": self.request})

    @property
    def decided(self) -> str:
        return encode({"state": DECIDED, "owner": self.owner, "request": self.request})

    def answered(self, response: str) -> str:
        return encode({"state": ANSWERED, "request": self.request, "response": response})


class InProgress(Exception):
    """Another request holding this key has not been answered yet."""


class AnswerUnknown(Exception):
    """The key's request was decided, but its answer is not stored."""


class KeyReused(Exception):
    """The key was first used for a different request."""


def replay_of(stored: str, request: str) -> str:
    """The stored answer to return for `request`, or the exception saying why there is none."""
    record = json.loads(stored)
    if record.get("request") != request:
        raise KeyReused(REUSED)
    state = record.get("state")
    if state == ANSWERED:
        return record["response"]
    if state == DECIDED:
        raise AnswerUnknown(ANSWER_UNKNOWN)
    raise InProgress(IN_PROGRESS)


class KeyedDecisions:
    """The key store as the decision path uses it: claims, the decided mark, answers and
    releases, each bounded by a deadline; writes that fail after a decision are retried in
    the background until they land or their TTL passes."""

    def __init__(
        self,
        settings: Settings,
        opener: Callable[[Settings], KeyStore] = open_idempotency,
        errors=None,  # a metrics counter with an `error` tag, or None
        deadline: float = DEADLINE_SECONDS,
    ) -> None:
        self.settings = settings
        self.claim_seconds = settings.idempotency_claim_seconds
        self.ttl_seconds = settings.idempotency_ttl_seconds
        self.deadline = deadline
        self._opener = opener
        self._errors = errors
        self._store: KeyStore | None = None
        self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="idempotency")
        self._opening: asyncio.Lock | None = None
        # Writes owed to the store: (swap, when it stops mattering).
        self._owed: deque[tuple[Swap, float]] = deque()
        self._background: asyncio.Task | None = None

    async def _call(self, method: str, *args):
        """One store call on the pool, within the deadline (TimeoutError past it)."""
        loop = asyncio.get_running_loop()
        if self._store is None:
            self._opening = self._opening or asyncio.Lock()
            async with self._opening:
                if self._store is None:
                    opened = loop.run_in_executor(self._pool, self._opener, self.settings)
                    self._store = await asyncio.wait_for(opened, self.deadline)
                    self._ensure_background()
        call = loop.run_in_executor(self._pool, getattr(self._store, method), *args)
        return await asyncio.wait_for(call, self.deadline)

    def _unavailable(self, exc: BaseException, doing: str) -> Outcome:
        if self._errors is not None:
            self._errors.inc(tags={"error": "idempotency"})
        detail, error_id = fault(log, self.settings, STORE_DOWN, exc, doing)
        return Outcome(503, detail=detail, error_id=error_id)

    async def claim(self, key: str, header: str, request: DecisionRequest) -> Claim | Outcome:
        """This request's claim on `key`, or the Outcome to answer instead: the replayed
        answer (200), 409 (in progress, or answer unknown), 422 (reused), 503 (store down)."""
        claim = Claim(key, header, fingerprint(request.model_dump_json()), secrets.token_hex(16))
        try:
            stored = await self._call("begin", key, claim.pending, self.claim_seconds)
            if stored is None:
                return claim
            replay = replay_of(stored, claim.request)
        except (InProgress, AnswerUnknown) as exc:
            return Outcome(409, detail=str(exc))
        except KeyReused as exc:
            return Outcome(422, detail=str(exc))
        except Exception as exc:  # cannot promise "once": refuse rather than risk twice
            return self._unavailable(exc, "claiming a key")
        try:
            response = DecisionResponse.model_validate_json(replay)
        except ValueError as exc:  # one unreadable answer fails only its own key
            return self._unavailable(exc, "reading a stored answer")
        return Outcome(200, response, replayed=True)

    async def mark_decided(self, claims: list[Claim]) -> list[Outcome | None]:
        """Mark each claim decided (one round trip), before the decisions are logged or
        answered; per claim None (go ahead) or the Outcome to answer instead (nothing decided)."""
        if not claims:
            return []
        swaps = [Swap(c.key, (c.pending,), c.decided, self.ttl_seconds) for c in claims]
        try:
            done = await self._call("swap", swaps)
        except Exception as exc:
            # The marks may have landed: release them too, so the keys do not read "decided".
            for claim in claims:
                self._owe(self._release_swap(claim))
            outcome = self._unavailable(exc, "marking decisions")
            return [outcome] * len(claims)
        return [None if ok else Outcome(409, detail=CLAIM_LOST) for ok in done]

    async def mark_batch(self, scored: Scored, claims: list[Claim | None]) -> None:
        """A decided batch's keyed answers marked decided; one whose mark failed is answered
        by its Outcome instead (503, 409), and its records (answer and shadow) are dropped:
        nothing is logged or returned for it."""
        keyed = [
            (i, claim)
            for i, claim in enumerate(claims)
            if claim is not None and scored.outcomes[i].status == 200
        ]
        verdicts = await self.mark_decided([claim for _, claim in keyed])
        dropped: dict[str, int] = {}
        for (i, _), verdict in zip(keyed, verdicts, strict=True):
            if verdict is not None:
                dropped[scored.outcomes[i].response.request_id] = i
                scored.outcomes[i] = verdict
        if dropped:
            scored.records = [r for r in scored.records if r["request_id"] not in dropped]
            rows = set(dropped.values())
            scored.shadow_rows = [i for i in scored.shadow_rows if i not in rows]

    async def finish(self, claim: Claim, response: DecisionResponse) -> None:
        """Store the answer of a logged decision; if that fails, keep trying in the background
        (the key reads "answer unknown" meanwhile, never free). Never raises."""
        swap = Swap(
            claim.key,
            (claim.decided,),
            claim.answered(response.model_dump_json()),
            self.ttl_seconds,
        )
        await self._write(swap, "storing an answer")

    async def release(self, claim: Claim) -> None:
        """Free the key of a request that got no decision (404, 503). Never raises."""
        await self._write(self._release_swap(claim), "releasing a key")

    @staticmethod
    def _release_swap(claim: Claim) -> Swap:
        return Swap(claim.key, (claim.pending, claim.decided))

    async def _write(self, swap: Swap, doing: str) -> None:
        try:
            (done,) = await self._call("swap", [swap])
        except Exception as exc:
            fault(log, self.settings, "idempotency write failed; retrying it", exc, doing)
            self._owe(swap)
            return
        if not done:  # its claim expired and was taken: the record is someone else's now
            log.warning("idempotency: key %s changed hands before %s", swap.key, doing)

    def _owe(self, swap: Swap) -> None:
        if len(self._owed) >= MAX_RETRIED_WRITES:
            dropped, _ = self._owed.popleft()
            log.error("idempotency: gave up retrying a write for key %s", dropped.key)
        self._owed.append((swap, time.monotonic() + max(swap.ttl, self.claim_seconds)))
        self._ensure_background()

    def _ensure_background(self) -> None:
        if self._background is None or self._background.done():
            self._background = asyncio.get_running_loop().create_task(self._maintain())

    async def _maintain(self) -> None:
        """Owed writes retried with backoff, and (SQLite) expired keys purged, forever."""
        wait, last_purge = 0.5, time.monotonic()
        while True:
            await asyncio.sleep(wait if self._owed else 1.0)
            now = time.monotonic()
            while self._owed and self._owed[0][1] < now:
                self._owed.popleft()  # past its TTL: the record it was for is gone anyway
            if self._owed:
                entries = list(self._owed)[:100]
                try:
                    await self._call("swap", [swap for swap, _ in entries])
                except Exception:
                    wait = min(wait * 2, 30.0)
                else:
                    # By identity: _owe may have dropped the oldest meanwhile.
                    landed = {id(entry) for entry in entries}
                    self._owed = deque(e for e in self._owed if id(e) not in landed)
                    wait = 0.5
                    log.info("idempotency: %d owed write(s) stored", len(entries))
            if now - last_purge >= PURGE_SECONDS:
                last_purge = now
                try:
                    await self._call("purge")
                except Exception as exc:
                    fault(log, self.settings, "idempotency purge failed", exc, "purging")

    @property
    def owed(self) -> int:
        """Writes waiting for the store (answers and releases)."""
        return len(self._owed)

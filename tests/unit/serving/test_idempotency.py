"""Idempotency keys over the real SQLite key store (no Ray): the states a key moves through,
owner tokens on every write, a store that fails after a decision, deadlines, and the purge.
Redis (its Lua scripts, a hung server) is tests/integration/test_idempotency.py."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from app.serving.bodies import api_models
from app.serving.idempotency import (
    ANSWER_UNKNOWN,
    IN_PROGRESS,
    Claim,
    KeyedDecisions,
)
from app.serving.keystore import PURGE_CHUNK, SqliteIdempotency, Swap
from app.serving.schemas import DecisionResponse
from tests.utils import isolated_settings
from tests.utils.datasets import german

DecisionRequest = api_models(german()).DecisionRequest

REQUEST = DecisionRequest.model_validate(
    {
        "applicant_id": "A0000001",
        "application": {
            "credit_amount": 1000,
            "duration_in_month": 12,
            "purpose": "car (new)",
            "installment_rate_in_percentage_of_disposable_income": 2,
        },
    }
)
OTHER = REQUEST.model_copy(update={"entity_id": "A0000002"})
ANSWER = DecisionResponse.model_validate(
    {
        "request_id": "r-1",
        "entity_id": "A0000001",
        "probability_of_default": 0.1,
        "decision": "approve",
        "reasons": [],
        "model": {"name": "credit_risk", "version": "1", "variant": "champion"},
        "features_as_of": None,
    }
)


class Faulty:
    """The real SQLite store, whose calls can be made to fail or to block: the outage the
    integration test produces with a hung Redis, here without one."""

    def __init__(self, store: SqliteIdempotency) -> None:
        self.store = store
        self.failing: set[str] = set()
        self.blocked = threading.Event()
        self.blocked.set()
        self.calls = 0

    def __getattr__(self, method: str):
        real = getattr(self.store, method)

        def call(*args):
            self.calls += 1
            self.blocked.wait(30)
            if method in self.failing:
                raise ConnectionError(f"{method}: store at redis://10.1.2.3:6379 is down")
            return real(*args)

        return call


async def until(check, timeout: float = 10) -> None:
    """Poll `check` on the running loop (the background writer runs on it) until true."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def keyed(tmp_path, store=None, **overrides) -> tuple[KeyedDecisions, Faulty]:
    settings = isolated_settings(data_dir=tmp_path, **overrides)
    faulty = store or Faulty(SqliteIdempotency(tmp_path / "keys.db"))
    return KeyedDecisions(settings, lambda _: faulty), faulty


def test_a_key_is_pending_then_decided_then_answered_and_never_claimed_twice(tmp_path):
    async def scenario():
        one, _ = keyed(tmp_path, idempotency_claim_seconds=0.2)
        two, _ = keyed(tmp_path, idempotency_claim_seconds=0.2)  # another replica, same file
        claim = await one.claim("tests/k", "k", REQUEST)
        assert isinstance(claim, Claim)
        in_flight = await two.claim("tests/k", "k", REQUEST)
        assert (in_flight.status, in_flight.detail) == (409, IN_PROGRESS)
        assert (await two.claim("tests/k", "k", OTHER)).status == 422  # another body

        assert await one.mark_decided([claim]) == [None]
        time.sleep(0.3)  # past the claim time: a pending claim would have expired by now
        decided = await two.claim("tests/k", "k", REQUEST)
        assert (decided.status, decided.detail) == (409, ANSWER_UNKNOWN)

        await one.finish(claim, ANSWER)
        replay = await two.claim("tests/k", "k", REQUEST)
        assert replay.status == 200 and replay.replayed and replay.response == ANSWER

    asyncio.run(scenario())


def test_an_unanswered_claim_frees_itself_and_a_failed_request_frees_its_key(tmp_path):
    async def scenario():
        service, _ = keyed(tmp_path, idempotency_claim_seconds=0.2)
        first = await service.claim("tests/k", "k", REQUEST)
        # Its replica died before deciding: the claim expires, and the key is free.
        time.sleep(0.3)
        second = await service.claim("tests/k", "k", REQUEST)
        assert isinstance(second, Claim) and second.owner != first.owner
        await service.release(second)  # 404 or 503: no decision was made
        assert isinstance(await service.claim("tests/k", "k", REQUEST), Claim)

    asyncio.run(scenario())


def test_writes_are_conditional_on_the_owner_token(tmp_path):
    store = SqliteIdempotency(tmp_path / "keys.db")
    late = Claim("tests/k", "k", "fp", "owner-a")
    now = Claim("tests/k", "k", "fp", "owner-b")
    assert store.begin("tests/k", now.pending, 30) is None
    # A late finish or release by another owner (its claim expired and was retaken) is a
    # no-op: it never overwrites or deletes someone else's claim.
    late_finish = Swap(late.key, (late.decided,), late.answered('{"x": 1}'), 60)
    late_release = Swap(late.key, (late.pending, late.decided))
    assert store.swap([late_finish, late_release]) == [False, False]
    assert store.begin("tests/k", "ignored", 30) == now.pending
    assert store.swap([Swap(now.key, (now.pending,), now.decided, 60)]) == [True]
    assert store.begin("tests/k", "ignored", 30) == now.decided


def test_a_store_failing_after_the_decision_never_frees_the_key_and_the_answer_lands_later(
    tmp_path,
):
    async def scenario():
        service, faulty = keyed(tmp_path, idempotency_claim_seconds=0.2)
        claim = await service.claim("tests/k", "k", REQUEST)
        assert await service.mark_decided([claim]) == [None]
        faulty.failing.add("swap")
        await service.finish(claim, ANSWER)  # stalls: the answer cannot be stored
        assert service.owed == 1
        time.sleep(0.3)
        faulty.failing.clear()
        # Not a fresh claim past the claim time: a retry can never be decided again. Once
        # the store answers, the owed write lands and the retry gets the first answer.
        retry = await service.claim("tests/k", "k", REQUEST)
        assert retry.status in (200, 409), retry
        if retry.status == 409:
            assert retry.detail == ANSWER_UNKNOWN
        await until(lambda: service.owed == 0)
        replay = await service.claim("tests/k", "k", REQUEST)
        assert replay.status == 200 and replay.response.request_id == "r-1"

    asyncio.run(scenario())


def test_a_failed_mark_is_503_with_an_error_id_and_nothing_secret(tmp_path, caplog):
    async def scenario():
        service, faulty = keyed(tmp_path)
        claim = await service.claim("tests/k", "k", REQUEST)
        faulty.failing.add("swap")
        (refused,) = await service.mark_decided([claim])
        assert refused.status == 503 and refused.error_id
        assert refused.detail == (
            f"idempotency key store unavailable (error id {refused.error_id})"
        )
        assert "10.1.2.3" not in refused.detail  # the store's address stays in the log
        faulty.failing.clear()
        await until(lambda: service.owed == 0)
        # Nothing was decided: the owed release frees the key for the retry.
        assert isinstance(await service.claim("tests/k", "k", REQUEST), Claim)

    asyncio.run(scenario())
    assert any(
        "10.1.2.3" in r.getMessage() and "error id" in r.getMessage() for r in caplog.records
    )


def test_a_hung_store_costs_a_request_the_deadline_and_holds_up_no_other(tmp_path):
    async def scenario():
        service, faulty = keyed(tmp_path)
        await service.claim("tests/warm", "warm", REQUEST)  # opened
        faulty.blocked.clear()
        started = time.monotonic()
        hung = await service.claim("tests/k1", "k1", REQUEST)
        took = time.monotonic() - started
        assert hung.status == 503 and took < 1.5, took
        faulty.blocked.set()
        # The blocked call held one thread of the pool; the next request is answered at once.
        started = time.monotonic()
        assert isinstance(await service.claim("tests/k2", "k2", REQUEST), Claim)
        assert time.monotonic() - started < 0.5

    asyncio.run(scenario())


def test_concurrent_keyed_requests_share_the_pool_not_one_thread(tmp_path):
    store = SqliteIdempotency(tmp_path / "keys.db")
    inside = threading.Barrier(3, timeout=10)

    class Slow:
        def begin(self, *args):
            inside.wait()  # three calls at once, or this times out
            return store.begin(*args)

    async def scenario():
        service, _ = keyed(tmp_path, store=Slow())
        return await asyncio.gather(
            *(service.claim(f"tests/k{i}", f"k{i}", REQUEST) for i in range(3))
        )

    claims = asyncio.run(scenario())
    assert all(isinstance(c, Claim) for c in claims), claims


def test_expired_keys_are_purged_in_bounded_chunks_by_the_index(tmp_path):
    store = SqliteIdempotency(tmp_path / "keys.db")
    db = store._db()
    db.executemany(
        "INSERT INTO idempotency VALUES (?, 'x', ?)",
        [(f"old-{i}", time.time() - 60) for i in range(PURGE_CHUNK + 10)]
        + [(f"live-{i}", time.time() + 600) for i in range(5)],
    )
    plan = db.execute(
        "EXPLAIN QUERY PLAN SELECT rowid FROM idempotency WHERE expires < ? LIMIT 1", (0,)
    ).fetchall()
    assert "idempotency_expires" in str(plan), plan  # a range scan, not the whole table
    assert store.purge() == PURGE_CHUNK
    assert store.purge() == 10
    assert store.purge() == 0
    assert db.execute("SELECT COUNT(*) FROM idempotency").fetchone() == (5,)


@pytest.mark.parametrize("stored", ["not json", '{"state": "answered", "request": "?"}'])
def test_an_unreadable_stored_record_fails_only_its_own_key(tmp_path, stored):
    async def scenario():
        service, faulty = keyed(tmp_path)
        faulty.store.begin("tests/bad", stored, 60)
        bad = await service.claim("tests/bad", "bad", REQUEST)
        good = await service.claim("tests/good", "good", REQUEST)
        return bad, good

    bad, good = asyncio.run(scenario())
    assert bad.status in (422, 503) and isinstance(good, Claim)


def test_the_background_writer_retries_until_the_store_answers(tmp_path):
    async def scenario():
        service, faulty = keyed(tmp_path)
        claim = await service.claim("tests/k", "k", REQUEST)
        await service.mark_decided([claim])
        faulty.failing.add("swap")
        await service.finish(claim, ANSWER)
        calls = faulty.calls
        await until(lambda: faulty.calls > calls)  # retried during the outage
        assert service.owed == 1
        faulty.failing.clear()
        await until(lambda: service.owed == 0)

    asyncio.run(scenario())

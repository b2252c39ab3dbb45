"""Idempotency keys in a real Redis, shared by every replica when Redis is the online store:
the Lua scripts' claim and compare-and-set, and a hung Redis costing a keyed request the
deadline, not minutes."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.serving.idempotency import ANSWER_UNKNOWN, IN_PROGRESS, Claim, KeyedDecisions
from app.serving.keystore import Swap, open_idempotency
from tests.unit.serving.test_idempotency import ANSWER, REQUEST
from tests.utils import isolated_settings
from tests.utils.netfault import HangingProxy

pytestmark = pytest.mark.integration


def redis_settings(tmp_path, port: int, **extra):
    return isolated_settings(
        data_dir=tmp_path, online_store="redis", redis_port=port, redis_db=4, **extra
    )


def test_replicas_share_keys_through_redis_with_owner_checked_writes(redis_service, tmp_path):
    settings = redis_settings(tmp_path, redis_service.port, idempotency_claim_seconds=30)

    async def scenario():
        one, two = KeyedDecisions(settings), KeyedDecisions(settings)
        claim = await one.claim("tests/loan-1", "loan-1", REQUEST)
        assert isinstance(claim, Claim)
        assert (await two.claim("tests/loan-1", "loan-1", REQUEST)).detail == IN_PROGRESS
        assert await one.mark_decided([claim]) == [None]
        assert (await two.claim("tests/loan-1", "loan-1", REQUEST)).detail == ANSWER_UNKNOWN
        await one.finish(claim, ANSWER)
        replay = await two.claim("tests/loan-1", "loan-1", REQUEST)
        assert replay.replayed and replay.response == ANSWER
        return claim

    claim = asyncio.run(scenario())
    store = open_idempotency(settings)
    ttl_ms = store.client.pttl(store.prefix + claim.key)
    assert 86_000_000 < ttl_ms <= 86_400_000  # answers kept for the TTL, then gone
    # A stray writer holding an old token changes nothing: not the answer, not by deleting.
    stray = Claim(claim.key, claim.header, claim.request, "someone-else")
    assert store.swap(
        [
            Swap(stray.key, (stray.decided,), "x", 60),
            Swap(stray.key, (stray.pending, stray.decided)),
        ]
    ) == [False, False]
    assert "response" in store.begin(claim.key, "ignored", 30)


def test_a_hung_redis_answers_a_keyed_request_503_within_the_deadline(redis_service, tmp_path):
    proxy = HangingProxy(redis_service.port)
    settings = redis_settings(tmp_path, proxy.port)

    async def scenario():
        keyed = KeyedDecisions(settings)
        assert isinstance(await keyed.claim("tests/warm", "warm", REQUEST), Claim)
        proxy.hang()
        started = time.monotonic()
        outcomes = await asyncio.gather(
            *(keyed.claim(f"tests/k{i}", f"k{i}", REQUEST) for i in range(8))
        )
        return outcomes, time.monotonic() - started

    try:
        outcomes, took = asyncio.run(scenario())
    finally:
        proxy.close()
    # Eight keyed requests against a hung Redis: each a 503 in about the 1 s deadline, all
    # together (the pool does not queue them behind one another for a timeout each).
    assert {o.status for o in outcomes} == {503}
    assert took < 2.5, took
    print(f"8 keyed requests against a hung Redis: 503 after {took:.2f} s")

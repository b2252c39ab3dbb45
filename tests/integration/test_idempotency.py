"""Idempotency keys in a real Redis, shared by every replica when Redis is the online store."""

from __future__ import annotations

import pytest
import redis

from app.serving.idempotency import InProgress, KeyReused, open_idempotency
from tests.utils import isolated_settings

pytestmark = pytest.mark.integration


def test_replicas_share_keys_through_redis(redis_service, tmp_path):
    settings = isolated_settings(
        data_dir=tmp_path,
        online_store="redis",
        redis_port=redis_service.port,
        redis_db=4,
        idempotency_claim_seconds=30,
    )
    one, two = open_idempotency(settings), open_idempotency(settings)
    assert one.begin("loan-1", "req-a") is None
    with pytest.raises(InProgress):
        two.begin("loan-1", "req-a")
    one.finish("loan-1", "req-a", '{"request_id": "r1"}')
    assert two.begin("loan-1", "req-a") == '{"request_id": "r1"}'
    with pytest.raises(KeyReused):
        two.begin("loan-1", "req-b")
    ttl_ms = one.client.pttl(one.prefix + "loan-1")
    assert 86_000_000 < ttl_ms <= 86_400_000  # answers kept for the TTL, then gone

    # A failed request releases its claim; an answered key is never released.
    assert one.begin("loan-2", "req") is None
    one.abandon("loan-2")
    assert two.begin("loan-2", "req") is None
    one.abandon("loan-1")
    assert two.begin("loan-1", "req-a") == '{"request_id": "r1"}'


def test_an_unreachable_redis_is_an_error_not_a_fresh_key(tmp_path):
    from app.localservices import free_port

    settings = isolated_settings(data_dir=tmp_path, online_store="redis", redis_port=free_port())
    with pytest.raises(redis.ConnectionError):
        open_idempotency(settings).begin("loan-1", "req")

"""API keys and rate limits as pure logic: the keys file, its reloads, the token bucket."""

from __future__ import annotations

import json

from app.serving.auth import SCOPES, Caller, KeyFile, KeyStore, token_hash
from app.serving.guard import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_keys_file_holds_hashes_and_a_store_follows_its_changes(tmp_path):
    path = tmp_path / "keys.json"
    keys = KeyFile.read(path)
    token = keys.add("ops", ["decisions"])
    keys.write()
    assert token not in path.read_text()
    assert json.loads(path.read_text())["keys"][0]["sha256"] == token_hash(token)

    clock = Clock()
    store = KeyStore(path, clock)
    assert store.lookup(token) == Caller("ops", frozenset({"decisions"}))
    assert store.lookup(token + "x") is None

    path.write_text('{"keys": [')  # a botched hand edit
    clock.now += 2
    assert store.lookup(token) is not None, "an unreadable file must keep the keys read before"
    assert "unreadable" in store.error

    keys.remove("ops")
    keys.write()
    clock.now += 2
    assert store.lookup(token) is None and store.error is None


def test_a_missing_keys_file_admits_no_one(tmp_path):
    store = KeyStore(tmp_path / "absent.json", Clock())
    assert store.lookup("crk_anything") is None and len(store) == 0


def test_unknown_scopes_are_refused(tmp_path):
    import pytest

    from app.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown scope 'admin'"):
        KeyFile(tmp_path / "k.json").add("x", ["decisions", "admin"])
    assert set(SCOPES) == {"decisions", "decisions:batch", "monitoring:read"}


def test_the_bucket_allows_a_burst_then_the_rate_per_caller():
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    alice, bob = Caller("alice", frozenset()), Caller("bob", frozenset())
    assert [limiter.wait_seconds(alice) for _ in range(3)] == [0, 0, 0]
    assert limiter.wait_seconds(alice) == 0.5  # one token at 2/s
    assert limiter.wait_seconds(bob) == 0  # callers have buckets of their own
    clock.now += 0.5
    assert limiter.wait_seconds(alice) == 0
    assert limiter.wait_seconds(alice) > 0
    clock.now += 60  # refills to the burst, not beyond
    assert [limiter.wait_seconds(alice) for _ in range(4)][-1] > 0
    unlimited = Caller("batch-system", frozenset(), rate_per_second=0)
    assert all(limiter.wait_seconds(unlimited) == 0 for _ in range(1000))

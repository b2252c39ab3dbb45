"""API keys and rate limits as pure logic: the keys file, its reloads, the token bucket."""

from __future__ import annotations

import json

from app.serving.auth import Caller, KeyStore
from app.serving.guard import RateLimiter
from app.serving.keys import SCOPES, KeyFile, token_hash


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


def test_jwt_scopes_come_as_a_string_or_a_list_and_nothing_else_grants():
    from app.serving.auth import granted_scopes

    assert granted_scopes({"scp": "decisions monitoring:read"}) == {
        "decisions",
        "monitoring:read",
    }  # Entra ID
    assert granted_scopes({"scp": ["decisions", 7, None]}) == {"decisions"}  # Okta
    assert granted_scopes({"scope": "decisions:batch", "scp": ["decisions"]}) == {
        "decisions",
        "decisions:batch",
    }
    assert granted_scopes({"scp": 7, "scope": {"decisions": True}}) == set()


def test_jwt_callers_have_a_fixed_length_id_per_subject_and_one_metrics_label():
    from app.serving.auth import jwt_caller_id

    shared = "x" * 124
    one, two = (jwt_caller_id("https://id.example", shared + end) for end in ("a", "b"))
    assert one != two and len(one) == len(two) == 4 + 64
    assert jwt_caller_id("https://other.example", shared + "a") != one
    assert Caller(one, frozenset(), subject=shared + "a").label == "jwt"
    assert Caller("ops", frozenset()).label == "ops"


def test_a_revoked_id_is_remembered_and_never_made_again(tmp_path):
    import pytest

    from app.errors import ConfigError

    path = tmp_path / "keys.json"
    keys = KeyFile.read(path)
    keys.add("ops", ["decisions"])
    keys.write()
    keys = KeyFile.read(path)
    assert keys.remove("ops")
    keys.write()
    again = KeyFile.read(path)
    assert again.keys == [] and again.revoked_at("ops")
    with pytest.raises(ConfigError, match="revoked"):
        again.add("ops", ["decisions"])


def test_the_main_jobs_key_is_made_once_and_a_revoked_one_stays_revoked(tmp_path):
    import pytest

    from app.errors import ConfigError
    from app.serving.keys import LOCAL_KEY_ID, local_token
    from tests.utils import isolated_settings

    settings = isolated_settings(data_dir=tmp_path)
    token, made = local_token(settings)
    assert made and local_token(settings) == (token, False)

    keys = KeyFile.read(settings.api_keys_file)
    keys.remove(LOCAL_KEY_ID)  # `python -m jobs.api_keys revoke --id local`
    keys.write()
    with pytest.raises(ConfigError, match="revoked"):
        local_token(settings)  # the next `jobs.pipeline` run
    assert KeyFile.read(settings.api_keys_file).keys == []

    # Another key in the token file (what the error message suggests) is used as it is.
    keys = KeyFile.read(settings.api_keys_file)
    replacement = keys.add("local-2", ["decisions"])
    keys.write()
    (tmp_path / "api_token").write_text(replacement + "\n")
    assert local_token(settings) == (replacement, False)


def test_a_lost_token_file_does_not_rotate_the_main_jobs_key(tmp_path):
    import pytest

    from app.errors import ConfigError
    from app.serving.keys import local_token
    from tests.utils import isolated_settings

    settings = isolated_settings(data_dir=tmp_path)
    token, _ = local_token(settings)
    (tmp_path / "api_token").unlink()
    with pytest.raises(ConfigError, match="is missing"):
        local_token(settings)
    store = KeyStore(settings.api_keys_file, Clock())
    assert store.lookup(token) is not None  # whoever holds it still gets in


def test_changes_to_the_keys_file_wait_for_its_lock(tmp_path):
    import threading

    path = tmp_path / "keys.json"
    second_done = threading.Event()

    def second_writer() -> None:
        with KeyFile.locked(path) as keys:
            keys.add("second", ["decisions"])
            keys.write()
        second_done.set()

    with KeyFile.locked(path) as keys:
        writer = threading.Thread(target=second_writer)
        writer.start()
        # It cannot read until this change is written: its read would miss "first".
        assert not second_done.wait(0.3)
        keys.add("first", ["decisions"])
        keys.write()
    writer.join(10)
    assert {k["id"] for k in KeyFile.read(path).keys} == {"first", "second"}


def test_a_keys_file_that_cannot_be_checked_keeps_the_keys_read(tmp_path):
    path = tmp_path / "keys.json"
    keys = KeyFile.read(path)
    token = keys.add("ops", ["decisions"])
    keys.write()
    clock = Clock()
    store = KeyStore(path, clock)
    assert store.lookup(token) is not None
    path.unlink()
    path.symlink_to(path)  # stat() fails with ELOOP, as NFS trouble fails it with EIO
    clock.now += 2
    assert store.lookup(token) is not None, "a failing stat() must keep the keys read before"
    assert "cannot be checked" in store.error


def test_a_batch_charges_its_caller_one_token_per_decision():
    clock = Clock()
    limiter = RateLimiter(rate=1, burst=5, clock=clock)
    batcher = Caller("batcher", frozenset())
    assert limiter.wait_seconds(batcher) == 0  # the door: the batch's first token
    limiter.charge(batcher, 99)  # the other 99 decisions: into debt
    assert limiter.wait_seconds(batcher) > 90
    clock.now += 100
    assert limiter.wait_seconds(batcher) == 0  # paid off at the rate


def test_the_rate_given_to_a_key_is_a_finite_number_of_at_least_zero():
    import argparse

    import pytest

    from jobs.api_keys import rate_per_second

    assert rate_per_second("0") == 0 and rate_per_second("12.5") == 12.5
    for bad in ("nan", "inf", "-1", "fast"):
        with pytest.raises(argparse.ArgumentTypeError):
            rate_per_second(bad)

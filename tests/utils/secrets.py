"""Planted credentials: every test that checks secrets never leak uses these values."""

from __future__ import annotations

SF_PASSWORD = "planted-sf-pw-7f3a"
SF_PASSPHRASE = "planted-sf-passphrase-5d1e"
REDIS_PASSWORD = "planted-redis-pw-91c2"
PG_PASSWORD = "planted-pg-pw-c0de"
SECRETS = (SF_PASSWORD, SF_PASSPHRASE, REDIS_PASSWORD, PG_PASSWORD)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret} leaked into: {text[:400]}"

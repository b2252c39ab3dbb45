"""The API keys file as `python -m jobs.api_keys` and the main job change it: keys stored as
SHA-256 hashes with their scopes, revoked ids remembered, every change read-modified-written under
an advisory lock; and the main job's own key.

A key is 32 random bytes, so one unsalted SHA-256 is the right store for it (as for GitHub or
Stripe tokens): nothing to brute-force, and a lookup is one dict access. Replicas read the file
(auth.KeyStore); only these writers change it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.config import Settings
from app.errors import ConfigError
from app.fs import atomic_write

SCOPES = ("decisions", "decisions:batch", "monitoring:read")
TOKEN_PREFIX = "crk_"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_scopes(scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ConfigError(f"unknown scope {unknown[0]!r}: use {', '.join(SCOPES)}")
    return sorted(set(scopes))


@dataclass
class KeyFile:
    """The keys file: `{"keys": [{"id", "sha256", "scopes", "created", "rate_per_second"}],
    "revoked": [{"id", "revoked"}]}`. Revoked ids are kept so they are never used again: the
    prediction log names callers by id, and an id must mean one key holder for good."""

    path: Path
    keys: list[dict[str, Any]] = field(default_factory=list)
    revoked: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> KeyFile:
        try:
            text = path.read_text()
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            raise ConfigError(f"API keys file {path} is unreadable: {exc}") from None
        try:
            data = json.loads(text)
            keys = list(data["keys"])
            for key in keys:
                missing = {"id", "sha256", "scopes"} - set(key)
                if missing:
                    raise KeyError(f"a key without {sorted(missing)[0]!r}")
            revoked = [r for r in data.get("revoked", []) if isinstance(r, dict) and "id" in r]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"API keys file {path} is unreadable: {exc}") from None
        return cls(path, keys, revoked)

    @classmethod
    @contextmanager
    def locked(cls, path: Path) -> Iterator[KeyFile]:
        """The file read under an exclusive advisory lock held until the block ends (the caller
        writes inside it): two `jobs.api_keys` runs never lose each other's change."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield cls.read(path)
        finally:
            os.close(fd)  # releases the lock

    def revoked_at(self, key_id: str) -> str | None:
        return next((r.get("revoked", "?") for r in self.revoked if r["id"] == key_id), None)

    def add(self, key_id: str, scopes: list[str], rate: float | None = None) -> str:
        """A new key with this id (replacing one of the same id); returns its token."""
        when = self.revoked_at(key_id)
        if when is not None:
            raise ConfigError(
                f"key id {key_id!r} was revoked ({when}) and is never used again, so the "
                "decision record's caller ids stay unambiguous: choose a new id"
            )
        token = new_token()
        self.keys = [k for k in self.keys if k["id"] != key_id]
        self.keys.append(
            {
                "id": key_id,
                "sha256": token_hash(token),
                "scopes": check_scopes(scopes),
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "rate_per_second": rate,
            }
        )
        return token

    def remove(self, key_id: str) -> bool:
        """Revoke the key with this id, remembering the id; False when there is none."""
        before = len(self.keys)
        self.keys = [k for k in self.keys if k["id"] != key_id]
        if len(self.keys) == before:
            return False
        now = datetime.now(UTC).isoformat(timespec="seconds")
        self.revoked.append({"id": key_id, "revoked": now})
        return True

    def write(self) -> None:
        """Atomically (temp file + rename, both fsynced), owner-only: a reader never sees half
        a file, and a machine crash never brings back a revoked key."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"keys": self.keys, "revoked": self.revoked}, indent=2)
        atomic_write(self.path, body, fsync=True, mode=0o600)


LOCAL_KEY_ID = "local"


def write_token(path: Path, token: str) -> None:
    """A token file readable by its owner only (and whole: a client never reads half a token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, token + "\n", mode=0o600)


def local_token(settings: Settings) -> tuple[str, bool]:
    """The main job's key: the token in `<data_dir>/api_token` when the keys file knows it;
    on a fresh install (no key `local` ever made) a key `local` with every scope, its token
    written there. Returns the token and whether it was just made.

    Never made again once it existed: a revoked `local` stays revoked, and a lost token file
    is not a reason to rotate a key someone else may hold (ConfigError saying what to do)."""
    token_path = settings.data_dir / "api_token"

    def usable(keys: KeyFile) -> str | None:
        token = token_path.read_text().strip() if token_path.exists() else ""
        return token if token and any(k["sha256"] == token_hash(token) for k in keys.keys) else None

    # The usual case reads only (a keys file mounted read-only on a cluster is fine).
    if token := usable(KeyFile.read(settings.api_keys_file)):
        return token, False
    with KeyFile.locked(settings.api_keys_file) as keys:
        if token := usable(keys):
            return token, False
        make = f"python -m jobs.api_keys create --id NAME --token-file {token_path}"
        when = keys.revoked_at(LOCAL_KEY_ID)
        if when is not None:
            raise ConfigError(
                f"the main job's API key {LOCAL_KEY_ID!r} was revoked ({when}); give it another: "
                + make
            )
        if any(k["id"] == LOCAL_KEY_ID for k in keys.keys):
            problem = "holds no key's token" if token_path.exists() else "is missing"
            raise ConfigError(
                f"{token_path} {problem}, so the main job cannot use key {LOCAL_KEY_ID!r} "
                f"(not rotated on its own: someone may hold it); rotate it with `python -m "
                f"jobs.api_keys create --id {LOCAL_KEY_ID} --token-file {token_path}`, or: " + make
            )
        token = keys.add(LOCAL_KEY_ID, list(SCOPES))
        write_token(token_path, token)
        keys.write()
    return token, True

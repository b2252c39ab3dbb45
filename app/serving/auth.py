"""Who may call the decision API: bearer API keys (stored as SHA-256 hashes) and JWTs, each
with scopes.

Keys live in a JSON file (`python -m jobs.api_keys` writes it); the file is re-read when it
changes, so a key is added, rotated or revoked without a restart. A key is 32 random bytes, so
one unsalted SHA-256 is the right store for it (as for GitHub or Stripe tokens): nothing to
brute-force, and a lookup is one dict access.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.config import Settings
from app.errors import ConfigError
from app.fs import atomic_write

log = logging.getLogger(__name__)

SCOPES = ("decisions", "decisions:batch", "monitoring:read")
TOKEN_PREFIX = "crk_"
RELOAD_SECONDS = 1.0


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: its key id (or `jwt:<subject>`), scopes and rate limit."""

    id: str
    scopes: frozenset[str]
    rate_per_second: float | None = None


ANONYMOUS = Caller("anonymous", frozenset(SCOPES))


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
    """The keys file: `{"keys": [{"id", "sha256", "scopes", "created", "rate_per_second"}]}`."""

    path: Path
    keys: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> KeyFile:
        if not path.exists():
            return cls(path)
        try:
            data = json.loads(path.read_text())
            keys = list(data["keys"])
            for key in keys:
                missing = {"id", "sha256", "scopes"} - set(key)
                if missing:
                    raise KeyError(f"a key without {sorted(missing)[0]!r}")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"API keys file {path} is unreadable: {exc}") from None
        return cls(path, keys)

    def add(self, key_id: str, scopes: list[str], rate: float | None = None) -> str:
        """A new key with this id (replacing one of the same id); returns its token."""
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
        before = len(self.keys)
        self.keys = [k for k in self.keys if k["id"] != key_id]
        return len(self.keys) < before

    def write(self) -> None:
        """Atomically (temp file + rename), owner-only: a reader never sees half a file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps({"keys": self.keys}, indent=2), fsync=True, mode=0o600)


LOCAL_KEY_ID = "local"


def write_token(path: Path, token: str) -> None:
    """A token file readable by its owner only (and whole: a client never reads half a token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, token + "\n", mode=0o600)


def local_token(settings: Settings) -> tuple[str, bool]:
    """The embedded default's key: `<data_dir>/api_token`, made (all scopes) when missing or
    no longer in the keys file. Returns the token and whether it was just made."""
    token_path = settings.data_dir / "api_token"
    keys = KeyFile.read(settings.api_keys_file)
    if token_path.exists():
        token = token_path.read_text().strip()
        if any(k["sha256"] == token_hash(token) for k in keys.keys):
            return token, False
    token = keys.add(LOCAL_KEY_ID, list(SCOPES))
    keys.write()
    write_token(token_path, token)
    return token, True


class KeyStore:
    """Hash -> Caller, re-read from the keys file when its size or mtime changes (checked at
    most once a second). An unreadable file keeps the keys last read and logs why."""

    def __init__(self, path: Path, clock=time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._by_hash: dict[str, Caller] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked = float("-inf")
        self._lock = threading.Lock()
        self.error: str | None = None

    def lookup(self, token: str) -> Caller | None:
        self._maybe_reload()
        return self._by_hash.get(token_hash(token))

    def __len__(self) -> int:
        self._maybe_reload()
        return len(self._by_hash)

    def _maybe_reload(self) -> None:
        now = self._clock()
        if now - self._checked < RELOAD_SECONDS:
            return
        with self._lock:
            self._checked = now
            try:
                stat = self.path.stat()
                stamp = (stat.st_mtime_ns, stat.st_size)
            except FileNotFoundError:
                stamp = None
            if stamp == self._stamp:
                return
            try:
                keys = KeyFile.read(self.path).keys
            except ConfigError as exc:
                self.error = str(exc)
                log.error("%s; keeping the %d keys read before", exc, len(self._by_hash))
                return
            self._by_hash = {
                k["sha256"]: Caller(k["id"], frozenset(k["scopes"]), k.get("rate_per_second"))
                for k in keys
            }
            self._stamp, self.error = stamp, None
            log.info("API keys: %d read from %s", len(self._by_hash), self.path)


class JwtVerifier:
    """JWTs signed by the configured issuer's key (PEM public key or HMAC secret file)."""

    def __init__(self, settings: Settings) -> None:
        self.issuer = settings.api_jwt_issuer
        self.audience = settings.api_jwt_audience
        self.algorithms = list(settings.api_jwt_algorithms)
        self.key_file = settings.api_jwt_key_file
        self._key: str | None = None
        self._stamp: int | None = None

    def _signing_key(self) -> str:
        # Re-read when the file changes: the issuer's key rotates without a restart.
        stamp = self.key_file.stat().st_mtime_ns
        if stamp != self._stamp:
            self._key, self._stamp = self.key_file.read_text().strip(), stamp
        return self._key

    def verify(self, token: str) -> Caller | None:
        import jwt

        try:
            claims = jwt.decode(
                token,
                self._signing_key(),
                algorithms=self.algorithms,
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp", "iss", "sub"]},
            )
        except (jwt.PyJWTError, OSError) as exc:
            log.debug("JWT refused: %s", exc)
            return None
        granted = claims.get("scope", "")
        scopes = granted.split() if isinstance(granted, str) else list(granted)
        scopes += list(claims.get("scp", []) or [])
        return Caller(f"jwt:{claims['sub']}"[:128], frozenset(scopes) & frozenset(SCOPES))


class Authenticator:
    """Bearer token -> Caller (None: refused). API keys first, then JWT if configured."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.api_auth == "enabled"
        self.keys = KeyStore(settings.api_keys_file)
        self.jwt = JwtVerifier(settings) if settings.api_jwt_issuer else None

    def describe(self) -> str:
        if not self.enabled:
            return (
                "API authentication is DISABLED (CREDIT_API_AUTH=disabled): anyone who can "
                "reach the port gets decisions; for development only"
            )
        methods = [f"API keys from {self.keys.path} ({len(self.keys)} now)"]
        if self.jwt:
            methods.append(f"JWTs from issuer {self.jwt.issuer}")
        return "API authentication: " + " and ".join(methods)

    def authenticate(self, token: str | None) -> Caller | None:
        if not self.enabled:
            return ANONYMOUS
        if not token:
            return None
        caller = self.keys.lookup(token)
        if caller is None and self.jwt is not None and token.count(".") == 2:
            caller = self.jwt.verify(token)
        return caller

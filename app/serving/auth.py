"""Who may call the decision API: bearer API keys (stored as SHA-256 hashes) and JWTs, each
with scopes.

Keys live in a JSON file (`python -m jobs.api_keys` writes it, keys.py); the file is re-read
when it changes, so a key is added, rotated or revoked without a restart.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.config import Settings
from app.errors import ConfigError
from app.serving.keys import SCOPES, KeyFile, token_hash

log = logging.getLogger(__name__)

RELOAD_SECONDS = 1.0
JWT_LABEL = "jwt"


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: its id, scopes and rate limit. For an API key the id is the
    key's id; for a JWT it is `jwt:` + a SHA-256 of issuer and subject (fixed length, one per
    subject: the idempotency namespace and the rate bucket), and `subject` keeps the subject
    itself for the prediction log."""

    id: str
    scopes: frozenset[str]
    rate_per_second: float | None = None
    subject: str | None = None

    @property
    def label(self) -> str:
        """The metrics' `caller` tag: the key id, or `jwt` for every JWT caller (subjects are
        unbounded, and often e-mail addresses)."""
        return JWT_LABEL if self.subject is not None else self.id

    def asker(self, idempotency_key: str | None) -> dict[str, str | None]:
        """What a decision's record says of who asked: the caller's id, a JWT's full subject,
        and the Idempotency-Key it was sent with."""
        return {
            "caller": self.id,
            "caller_subject": self.subject,
            "idempotency_key": idempotency_key,
        }


ANONYMOUS = Caller("anonymous", frozenset(SCOPES))


def jwt_caller_id(issuer: str | None, subject: str) -> str:
    return "jwt:" + hashlib.sha256(f"{issuer or ''}\n{subject}".encode()).hexdigest()


def granted_scopes(claims: dict[str, Any]) -> set[str]:
    """The scopes a JWT grants: `scope` and `scp`, each a space-separated string (OAuth 2.0,
    Entra ID) or a list of strings (Okta); anything else grants nothing."""
    scopes: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            scopes.update(value.split())
        elif isinstance(value, list):
            scopes.update(v for v in value if isinstance(v, str))
    return scopes


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
            except OSError as exc:  # NFS trouble, permissions: not "no keys"
                self.error = f"API keys file {self.path} cannot be checked: {exc}"
                log.error("%s; keeping the %d keys read before", self.error, len(self._by_hash))
                return
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
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            return None
        return Caller(
            jwt_caller_id(self.issuer, subject),
            frozenset(granted_scopes(claims) & set(SCOPES)),
            subject=subject,
        )


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

    def announce(self, log: logging.Logger) -> None:
        """Say at start who may call, and loudly when nobody can or everybody may."""
        if not self.enabled:
            log.warning("%s", self.describe())
            return
        log.info("%s", self.describe())
        if not len(self.keys) and self.jwt is None:
            log.error(
                "no API key in %s and no JWT issuer: every /v1 request will get 401 "
                "(create a key: python -m jobs.api_keys create --id NAME)",
                self.keys.path,
            )

    def authenticate(self, token: str | None) -> Caller | None:
        if not self.enabled:
            return ANONYMOUS
        if not token:
            return None
        caller = self.keys.lookup(token)
        if caller is None and self.jwt is not None and token.count(".") == 2:
            caller = self.jwt.verify(token)
        return caller

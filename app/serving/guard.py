"""The API's front door, before any work: authentication, per-caller rate limit, body size.

An ASGI middleware rather than FastAPI dependencies because FastAPI reads and parses the body
before it runs a route's dependencies: an unauthenticated or oversized request must cost no
parsing and learn nothing (a 422 or 404 tells a stranger about the API or its applicants).
Routes still declare their scope (api.py) so /docs shows the security scheme; the scope check
(403) runs there, on the caller this middleware put in the request state.
"""

from __future__ import annotations

import json
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from app.config import Settings
from app.serving.auth import Authenticator, Caller

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Deny by default: only the probes and the API's own documentation are open.
OPEN_PATHS = frozenset(
    {"/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/openapi.json"}
    | {"/v2", "/v2/health/live", "/v2/health/ready"}  # the Open Inference Protocol's probes
)
REALM = 'Bearer realm="credit-decisions"'
OPEN_CALLER = Caller("open-paths", frozenset())
MAX_TRACKED_CALLERS = 10_000


class RateLimiter:
    """A token bucket per caller: `rate` requests a second on average, bursts of `burst`.

    Per replica: with N replicas a caller gets up to N x the rate in total (README).
    """

    def __init__(self, rate: float, burst: int, clock=time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def wait_seconds(self, caller: Caller) -> float:
        """0 when the request may go ahead (and is counted), else seconds until it may."""
        rate = self.rate if caller.rate_per_second is None else caller.rate_per_second
        if rate <= 0:  # 0: no limit for this caller (a benchmark's or a batch system's key)
            return 0.0
        burst = max(self.burst, 1)
        now = self._clock()
        tokens, last = self._buckets.pop(caller.id, (float(burst), now))
        tokens = min(float(burst), tokens + (now - last) * rate)
        if tokens >= 1:
            tokens -= 1
            wait = 0.0
        else:
            wait = (1 - tokens) / rate
        self._buckets[caller.id] = (tokens, now)
        if len(self._buckets) > MAX_TRACKED_CALLERS:  # JWT subjects are unbounded
            self._buckets.popitem(last=False)
        return wait

    def charge(self, caller: Caller, tokens: float) -> None:
        """Take `tokens` more from an admitted caller's bucket, into debt if need be: a batch
        of N decisions costs N, and its caller waits until the debt is paid off. Admitting the
        batch on its first token (rather than refusing one larger than the burst) keeps every
        batch possible while the average stays at the rate."""
        rate = self.rate if caller.rate_per_second is None else caller.rate_per_second
        if rate <= 0 or tokens <= 0:
            return
        now = self._clock()
        left, last = self._buckets.pop(caller.id, (float(max(self.burst, 1)), now))
        left = min(float(max(self.burst, 1)), left + (now - last) * rate)
        self._buckets[caller.id] = (left - tokens, now)


class Refusal(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers or {}


def bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            kind, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if kind.lower() == "bearer" else None
    return None


def content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class Gate:
    """What a request must pass: one per service, so keys, buckets and counts outlive an app."""

    def __init__(self, settings: Settings, on_refusal: Callable[[int], None] | None = None) -> None:
        self.authenticator = Authenticator(settings)
        self.limiter = RateLimiter(settings.api_rate_per_second, settings.api_rate_burst)
        # One bucket for every caller of the open paths together: they need no token, so a
        # per-caller limit would be a limit per made-up caller.
        open_rate = settings.api_open_rate_per_second
        self.open_limiter = RateLimiter(open_rate, max(1, round(2 * open_rate)))
        self.max_body = settings.api_max_body_bytes
        # Counts refusals by status (metrics); must never raise.
        self.on_refusal = on_refusal or (lambda status: None)

    def admit(self, token: str | None) -> Caller:
        """The caller a bearer token names, within its rate limit (else a 401 or 429 Refusal);
        the REST guard and the gRPC servicer both ask."""
        caller = self.authenticator.authenticate(token)
        if caller is None:
            error = ', error="invalid_token"' if token else ""
            detail = "invalid or revoked bearer token" if token else "bearer token required"
            raise Refusal(401, detail, {"WWW-Authenticate": REALM + error})
        wait = self.limiter.wait_seconds(caller)
        if wait > 0:
            raise Refusal(
                429,
                f"rate limit of this caller exceeded; retry in {wait:.2f} s",
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )
        return caller

    def admit_open(self) -> None:
        """The open paths' global rate limit (429 past it)."""
        wait = self.open_limiter.wait_seconds(OPEN_CALLER)
        if wait > 0:
            raise Refusal(
                429,
                "too many requests to this path; retry later",
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )

    async def bounded_body(self, scope: Scope, receive: Receive) -> Receive:
        """Refuse a body over the limit before anything parses it: by Content-Length when sent,
        else by counting the chunks as they arrive (chunked transfer)."""
        declared = content_length(scope)
        if declared is not None and declared > self.max_body:
            raise Refusal(413, f"body of {declared} bytes; the limit is {self.max_body}")
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            return receive
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return _replay([message], receive)
            size += len(message.get("body", b""))
            if size > self.max_body:
                raise Refusal(413, f"body over the limit of {self.max_body} bytes")
            chunks.append(message)
            if not message.get("more_body", False):
                return _replay(chunks, receive)


class Guard:
    """ASGI middleware: a request for anything but OPEN_PATHS reaches the app only when the
    gate admits it (an unknown path too: a stranger learns nothing of the routes)."""

    def __init__(self, app: ASGIApp, gate: Gate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_open = _route_path(scope) in OPEN_PATHS
        try:
            if is_open:
                self.gate.admit_open()
            else:
                caller = self.gate.admit(bearer_token(scope))
                receive = await self.gate.bounded_body(scope, receive)
        except Refusal as refusal:
            self.gate.on_refusal(refusal.status)
            await _refuse(send, refusal, _route_path(scope).startswith("/v2"))
            return
        if not is_open:
            scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)


def _replay(messages: list[Message], then: Receive) -> Receive:
    """The body read here, then the connection's own messages (a disconnect, when it comes)."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return await then()

    return receive


def _route_path(scope: Scope) -> str:
    # Behind Serve's route prefix the path still carries it; root_path names it.
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def _refuse(send: Send, refusal: Refusal, v2: bool) -> None:
    # The Open Inference Protocol's clients read {"error": ...}; /v1's ErrorBody is {"detail"}.
    body = json.dumps({"error" if v2 else "detail": refusal.detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in refusal.headers.items()]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

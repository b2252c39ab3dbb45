"""Clients of the services the settings name, each with a timeout on every network call."""

from __future__ import annotations

from app.config import Settings


def redis_client(settings: Settings, timeout: float = 2.0, retry: bool = True):
    """A Redis client for the configured server; `retry=False` makes one attempt only
    (redis-py otherwise retries a refused connection for ~3 s)."""
    import redis

    options = {}
    if not retry:
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        options["retry"] = Retry(NoBackoff(), 0)
    return redis.Redis(
        host=settings.redis_host,
        port=settings.redis_port,
        db=settings.redis_db,
        password=settings.redis_password.get_secret_value() if settings.redis_password else None,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        **options,
    )

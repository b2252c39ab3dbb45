"""What a caller is told when a dependency fails: a fixed message and an error id; the full
error, secrets masked, goes to the replica's log under the same id.

Exception text from redis-py, Feast, SQLAlchemy or MLflow names internal hosts, ports and
URLs, and a malformed database URL carries its password: none of it reaches a caller.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import OrderedDict

from app.config import Settings


def new_error_id() -> str:
    return uuid.uuid4().hex[:12]


def fault(
    log: logging.Logger,
    settings: Settings,
    message: str,
    exc: BaseException,
    doing: str = "",
    traceback: bool = False,
) -> tuple[str, str]:
    """Log `exc` (redacted) under a new error id; returns the caller's detail and the id."""
    error_id = new_error_id()
    text = settings.redact(f"{type(exc).__name__}: {exc}")[:2000]
    log.error(
        "%s%s [error id %s]: %s",
        message,
        f" while {doing}" if doing else "",
        error_id,
        text,
        exc_info=exc if traceback else None,
    )
    return f"{message} (error id {error_id})", error_id


class Incidents:
    """One error id per distinct failure, logged once: an outage that answers 10,000 requests
    with 503 is one log line, and every one of those answers names it."""

    def __init__(self, log: logging.Logger, settings: Settings, remember: int = 256) -> None:
        self.log = log
        self.settings = settings
        self.remember = remember
        self._ids: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._lock = threading.Lock()

    def report(self, message: str, text: str) -> tuple[str, str]:
        """The caller's detail for `message` and the id of the log line holding `text`."""
        key = (message, text)
        with self._lock:
            error_id = self._ids.get(key)
            if error_id is None:
                error_id = self._ids[key] = new_error_id()
                if len(self._ids) > self.remember:
                    self._ids.popitem(last=False)
                fresh = True
            else:
                self._ids.move_to_end(key)
                fresh = False
        if fresh:
            redacted = self.settings.redact(text)[:2000]
            self.log.error("%s [error id %s]: %s", message, error_id, redacted)
        return f"{message} (error id {error_id})", error_id

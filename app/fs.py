"""Writing a file so that a reader sees the old one or the new one, never half of either."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path, *, fsync: bool = False) -> Iterator[Path]:
    """A hidden temporary name beside `path` to write to; renamed over `path` when the block
    ends, removed if it raises. `fsync` makes the content durable before the rename and the
    rename durable after it (for records that must survive a machine crash, not only a process
    crash)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        if fsync and tmp.is_file():
            with open(tmp, "rb") as written:
                os.fsync(written.fileno())
        os.replace(tmp, path)
        if fsync:  # the rename itself is durable only once the folder is
            fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: str | bytes, *, fsync: bool = False, mode: int = 0o666) -> None:
    """`data` as the whole content of `path`, atomically; `mode` applies from creation (0o600
    keeps a secret unreadable by others at every instant)."""
    raw = data.encode() if isinstance(data, str) else data
    with atomic_path(path, fsync=fsync) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(raw)

"""Peak memory of the driver (this process) and of the Ray tree it started, around one stage."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import time
from collections.abc import Callable
from typing import Any

import psutil

from benchmarks.harness.machine import GONE, Sampling

INTERVAL = 0.2  # s between samples: a peak shorter than this can be missed


def release_memory() -> None:
    """Give freed memory back to the OS between stages, so one stage's garbage is not counted
    as the next one's peak (the allocators keep freed pages otherwise)."""
    gc.collect()
    with contextlib.suppress(ImportError):
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _ray_tree_rss(me: psutil.Process, skip: set[int]) -> int:
    total = 0
    for child in me.children(recursive=True):
        if child.pid in skip:
            continue
        try:
            total += child.memory_info().rss
        except GONE:
            continue
    return total


class PeakMemory(Sampling):
    """Samples, every INTERVAL s while a stage runs, the driver's RSS and the summed RSS of
    its descendants (`ray.init(address="local")` starts the GCS and raylet as children, and
    the raylet the workers)."""

    interval = INTERVAL

    def __init__(self, skip: set[int]) -> None:
        self.me = psutil.Process(os.getpid())
        self.skip = skip  # children that are not Ray (the private redis-server)
        self.driver = 0
        self.ray = 0
        super().__init__()

    def sample(self) -> None:
        self.driver = max(self.driver, self.me.memory_info().rss)
        self.ray = max(self.ray, _ray_tree_rss(self.me, self.skip))


def measure(work: Callable[[], Any], skip: set[int]) -> tuple[Any, float, PeakMemory]:
    """`work()`'s result, its wall time and its peak memory (children in `skip` not counted),
    after releasing what earlier stages freed."""
    release_memory()
    with PeakMemory(skip) as peak:
        started = time.perf_counter()
        result = work()
        seconds = time.perf_counter() - started
    return result, seconds, peak

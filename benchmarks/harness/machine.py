"""What the machine does meanwhile: CPU used by us, our children and everyone else, the memory
of a process tree, and waiting for a quiet machine before measuring."""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

from app.waiting import WaitTimeout, poll

MIB = 1024 * 1024
# CPU used by other processes during a measurement above which its figures are disturbed.
NOISY_CORES = 0.25
GONE = (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess)


def busy_seconds() -> float:
    """CPU seconds the whole machine has been busy since boot (all cores)."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + t.steal


def children_seconds() -> float:
    """CPU seconds of this process's reaped children (wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_seconds() -> float:
    times = os.times()
    return times.user + times.system


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def other_cores(busy: float, wall: float, *known: float) -> float:
    """Cores the rest of the machine used: busy CPU seconds less the `known` ones, per second."""
    return max(busy - sum(known), 0.0) / wall if wall > 0 else float("nan")


@dataclass(frozen=True)
class Proc:
    """One process of a tree as sampled: who it is, its memory and CPU so far."""

    pid: int
    key: tuple[int, float]  # (pid, create time): a reused pid is another process
    title: str  # the command line (Ray's workers set it to "ray::<Actor>...")
    program: str  # the executable's file name
    rss: int
    uss: int | None
    cpu: float  # own user + system seconds, not reaped children
    # Proportional set size: shared pages divided among the processes mapping them, so a
    # tree's sum is what it occupies (summed RSS counts Ray's libraries once per worker).
    pss: int | None = None


def tree(pid: int) -> list[psutil.Process]:
    """The process and all its descendants, [] once it is gone."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def sample(procs: Iterable[psutil.Process], uss: bool = False) -> list[Proc]:
    """Each live process of `procs` (USS and PSS too when asked: a read of its memory map)."""
    seen = []
    for proc in procs:
        try:
            with proc.oneshot():
                memory = proc.memory_full_info() if uss else proc.memory_info()
                command, times = proc.cmdline(), proc.cpu_times()
                key = (proc.pid, proc.create_time())
        except GONE:
            continue
        program = Path(command[0]).name if command else ""
        private = memory.uss if uss else None
        cpu = times.user + times.system
        proportional = memory.pss if uss else None
        title = " ".join(command)
        seen.append(Proc(proc.pid, key, title, program, memory.rss, private, cpu, proportional))
    return seen


def wait_quiet(limit: float, window: float = 5.0, idle_below: float = 0.3) -> None:
    """Wait (at most `limit` s) for a `window` in which the whole machine used less than
    `idle_below` cores: someone else's job would slow every figure measured."""
    if limit <= 0:
        return
    started, last = time.monotonic(), [0.0]

    def quiet() -> float | None:
        before = busy_seconds()
        time.sleep(window)
        last[0] = (busy_seconds() - before) / window
        return last[0] if last[0] < idle_below else None

    try:
        poll(quiet, "an idle machine", limit, interval=0)
    except WaitTimeout:
        waited = time.monotonic() - started
        print(f"  machine still busy ({last[0]:.2f} cores) after {waited:.0f} s: measuring")
        return
    if (waited := time.monotonic() - started) > window * 1.5:
        print(f"  machine quiet after {waited:.0f} s")


class Sampling:
    """Calls `sample()` from a thread every `interval` seconds between entering and leaving,
    and once at each end."""

    interval = 1.0

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self) -> None:
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> Sampling:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


class Meter(Sampling):
    """Around one run: the peak RSS of a process tree, sampled every second (the processes
    `counts` accepts, and all of them), and the cores used by the tree, by our reaped children
    (wrk) and by everything else on the machine."""

    def __init__(self, procs: Callable[[], list[psutil.Process]], counts: Callable[[Proc], bool]):
        self.procs, self.counts = procs, counts
        self.peak = (0, 0)
        self.cores: dict[str, float] = {}
        self._first: dict[tuple[int, float], float] = {}
        self._last: dict[tuple[int, float], float] = {}
        self._started = False
        super().__init__()

    def sample(self) -> None:
        procs = sample(self.procs())
        counted = sum(p.rss for p in procs if self.counts(p))
        self.peak = (max(self.peak[0], counted), max(self.peak[1], sum(p.rss for p in procs)))
        for p in procs:
            # A process born during the run counts from zero.
            self._first.setdefault(p.key, 0.0 if self._started else p.cpu)
            self._last[p.key] = p.cpu
        self._started = True

    def __enter__(self) -> Meter:
        self._start = (time.monotonic(), busy_seconds(), children_seconds())
        super().__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        wall = time.monotonic() - self._start[0]
        busy = busy_seconds() - self._start[1]
        wrk = children_seconds() - self._start[2]  # wrk is the only child reaped meanwhile
        service = sum(self._last[k] - self._first[k] for k in self._last)
        self.cores = {
            "service": service / wall,
            "wrk": wrk / wall,
            "other": other_cores(busy, wall, service, wrk),
        }

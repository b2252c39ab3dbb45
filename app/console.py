"""What the main job shows its user: stage lines on the terminal, everything else in a log file."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TextIO


@contextmanager
def output_to_log(log_path: Path) -> Iterator[TextIO]:
    """Send everything written to this process's stdout and stderr to `log_path` and yield a
    stream to the terminal.

    At the descriptor level, not sys.stdout: Ray's driver logging, the output its workers
    forward, Feast's and MLflow's prints and progress bars, and the processes a local Ray
    starts all write to descriptors 1 and 2. On an error both are restored, so the error line
    reaches the terminal; on success only stdout is: what libraries write to stderr as the
    process exits (Ray's driver closing its workers' progress bars) still goes to the log.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    terminal = os.fdopen(os.dup(saved_out), "w", buffering=1, errors="replace")
    failed = False
    try:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        yield terminal
    except BaseException:
        failed = True
        raise
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        if failed:
            os.dup2(saved_err, 2)
        for fd in (saved_out, saved_err, log_fd):
            os.close(fd)
        terminal.close()


# Seconds between progress lines when the output is not a terminal.
PROGRESS_EVERY = 10.0


class ProgressLines:
    """An `on_progress(done, total)` for long work: rows done, the rate so far and the time
    left, said every PROGRESS_EVERY seconds and once at the end."""

    def __init__(self, say: Callable[[str], None] = print, unit: str = "rows") -> None:
        self.say, self.unit = say, unit
        self.started = self.said = time.perf_counter()

    def text(self, done: int, total: int) -> str:
        elapsed = time.perf_counter() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        left = f", ~{(total - done) / rate:,.0f} s left" if rate > 0 and done < total else ""
        return f"{done:,}/{total:,} {self.unit}, {rate:,.0f} {self.unit}/s{left}"

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if done >= total or now - self.said >= PROGRESS_EVERY:
            self.said = now
            self.say(f"    {self.text(done, total)}")


class Stages:
    """Runs stages in order, printing what each did, how long it took and where to look; on a
    terminal a spinner with the elapsed time runs while a stage works."""

    def __init__(self, out: TextIO | None = None) -> None:
        from rich.console import Console

        # soft_wrap: a long detail line (a URL, a path) stays one line for grep and for tests.
        self.console = Console(
            file=out or sys.stdout, highlight=False, soft_wrap=True, emoji=False, markup=False
        )
        self.rows: list[tuple[str, float, str]] = []
        self._name, self._task = "", None
        self._lines = ProgressLines(self.say)

    def say(self, line: str = "") -> None:
        self.console.print(line)

    def _progress(self, name: str):
        if not self.console.is_terminal:
            return nullcontext()
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self._task = (progress, progress.add_task(f"{name} ...", total=None))
        return progress

    def progress(self, done: int, total: int) -> None:
        """How far the running stage is: rows done, the rate so far and the time left. On a
        terminal the spinner line shows it; elsewhere (a log, CI) a line every
        PROGRESS_EVERY seconds and one at the end."""
        if self._task is None:
            self._lines(done, total)
            return
        progress, task = self._task
        progress.update(task, description=f"{self._name} ... {self._lines.text(done, total)}")

    def run(self, name: str, step: Callable[[], str]) -> None:
        self.say(f"\n==> {name}")
        self._name, self._task = name, None
        self._lines = ProgressLines(self.say)
        started = time.perf_counter()
        with self._progress(name):
            detail = step()
        self._task = None
        elapsed = time.perf_counter() - started
        self.rows.append((name, elapsed, detail))
        self.say(f"    done in {elapsed:.1f} s: {detail}")

    def summary(self) -> None:
        width = max(len(name) for name, _, _ in self.rows)
        self.say("\nSummary")
        for name, elapsed, detail in self.rows:
            self.say(f"  {name:<{width}}  {elapsed:>6.1f} s  {detail}")

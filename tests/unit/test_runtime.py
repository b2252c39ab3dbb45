"""Jobs stop in order on SIGTERM (`ray job stop`, systemd, Kubernetes), as on Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

from tests.utils import ROOT, wait_for

JOB = textwrap.dedent(
    """
    import pathlib, sys, time
    from app.runtime import run_job

    marker = pathlib.Path(sys.argv[1])

    def main():
        try:
            marker.write_text("working")
            time.sleep(120)
        finally:
            marker.write_text("cleaned up")  # what a job's shutdown path does

    run_job(main)
    """
)


def test_sigterm_runs_the_shutdown_path_and_exits_with_one_line(tmp_path):
    marker = tmp_path / "state"
    job = subprocess.Popen(
        [sys.executable, "-c", JOB, str(marker)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: marker.exists() and marker.read_text() == "working", "the job", 30, 0.05)
        job.send_signal(signal.SIGTERM)
        _, stderr = job.communicate(timeout=30)
    finally:
        job.kill()
    assert job.returncode == 128 + signal.SIGTERM
    assert stderr.strip() == "stopped: SIGTERM received"
    assert marker.read_text() == "cleaned up"

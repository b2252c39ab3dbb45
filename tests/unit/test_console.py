"""The main job's terminal: stage lines on the terminal, everything else in the log file."""

import subprocess
import sys
import textwrap

from tests.utils import ROOT

SCRIPT = textwrap.dedent(
    """
    import logging, subprocess, sys
    from pathlib import Path
    from app.console import Stages, output_to_log

    logging.basicConfig()
    with output_to_log(Path(sys.argv[1])) as out:
        stages = Stages(out)
        def noisy():
            print("library print")
            logging.getLogger("ray").warning("library warning")
            subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('child noise')"])
            stages.say("    a detail line " + "x" * 150)
            return "did it"
        stages.run("stage one", noisy)
        stages.summary()
    print("after the block")
    sys.stderr.write("exit-time noise")
    """
)


def test_only_stage_lines_reach_the_terminal_and_the_rest_is_logged(tmp_path):
    log_path = tmp_path / "logs" / "job.log"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(log_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "==> stage one" in lines
    assert any(line.startswith("    done in ") and line.endswith("s: did it") for line in lines)
    # A long line stays one line (no wrapping at 80 columns) for grep and for log readers.
    assert "    a detail line " + "x" * 150 in lines
    assert "Summary" in lines
    # Restored after the block: an error printed after it is seen.
    assert lines[-1] == "after the block"
    noises = ("library print", "library warning", "child noise", "exit-time noise")
    for noise in noises:
        assert noise not in done.stdout + done.stderr
    logged = log_path.read_text()
    for noise in noises:
        assert noise in logged
    assert "==> stage one" not in logged
    assert oct(log_path.stat().st_mode & 0o777) == "0o600"


def test_an_error_leaving_the_block_reaches_the_terminal(tmp_path):
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from app.console import output_to_log\n"
        "try:\n"
        "    with output_to_log(Path(sys.argv[1])):\n"
        "        raise ValueError('boom')\n"
        "except ValueError as exc:\n"
        "    print(f'error: {exc}', file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "job.log")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stderr.strip() == "error: boom"


def test_progress_off_a_terminal_prints_rows_rate_and_time_left():
    import io

    from app import console
    from app.console import Stages

    out = io.StringIO()
    stages = Stages(out)

    def work():
        stages.progress(0, 1000)  # within PROGRESS_EVERY of the start: not printed
        stages._lines.said -= console.PROGRESS_EVERY  # as if PROGRESS_EVERY seconds had passed
        stages.progress(250, 1000)
        stages.progress(500, 1000)  # within PROGRESS_EVERY of the last line: not printed
        stages.progress(1000, 1000)  # the end is always printed
        return "loaded"

    stages.run("load", work)
    lines = [line.strip() for line in out.getvalue().splitlines() if "/1,000 rows" in line]
    assert len(lines) == 2, out.getvalue()
    assert lines[0].startswith("250/1,000 rows, ") and "rows/s" in lines[0]
    assert "s left" in lines[0]
    assert lines[1].startswith("1,000/1,000 rows, ") and "left" not in lines[1]

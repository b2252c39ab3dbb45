"""The jobs as a user runs them: exit codes, one-line errors, the main pipeline end to end."""

import os
import signal
import subprocess
import sys
import threading

import pytest
import requests

from app.predictions.log import read_prediction_log
from tests.utils import ROOT, free_port, run_job, wait_for
from tests.utils.serving import application

pytestmark = pytest.mark.integration


def test_ingest_without_a_source_exits_2_with_one_line(tmp_path):
    done = run_job("jobs.ingest", env={"CREDIT_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("error: local source table 'applicant_profile' not found")
    )


def test_bad_setting_exits_2_naming_it(tmp_path):
    done = run_job(
        "jobs.ingest", env={"CREDIT_DATA_DIR": str(tmp_path), "CREDIT_ONLINE_STORE": "memcached"}
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "error: invalid settings: online_store" in done.stderr


def test_materialize_before_ingest_says_what_to_run(tmp_path):
    done = run_job("jobs.materialize", env={"CREDIT_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2
    assert "run `python -m jobs.ingest` first" in done.stderr


def test_snowflake_without_credentials_names_the_settings(tmp_path):
    done = run_job(
        "jobs.ingest", env={"CREDIT_DATA_DIR": str(tmp_path), "CREDIT_SOURCE": "snowflake"}
    )
    assert done.returncode == 2
    assert "CREDIT_SNOWFLAKE_ACCOUNT" in done.stderr
    assert "Traceback" not in done.stderr


def serve_until_sigterm(port: str, env: dict[str, str], data_dir) -> subprocess.CompletedProcess:
    """The main job with --keep-serving, as a service manager runs it: once it serves, the
    API answers only with the local key, and SIGTERM (not Ctrl-C) stops it in order."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_")}
    command = ["jobs.pipeline", "--port", port, "--decisions", "120", "--keep-serving"]
    process = subprocess.Popen(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        env={**clean, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    errors: list[str] = []
    readers = [
        threading.Thread(target=lines.extend, args=(process.stdout,), daemon=True),
        threading.Thread(target=errors.extend, args=(process.stderr,), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        wait_for(
            lambda: process.poll() is not None or any("serving at" in x for x in lines),
            "the main job to serve",
            600,
            0.5,
        )
        assert process.poll() is None, "".join(errors)[-3000:]
        url = f"http://127.0.0.1:{port}/v1/decisions"
        payload = {"applicant_id": "A0000001", "application": application(0)}
        assert requests.post(url, json=payload, timeout=30).status_code == 401
        token = (data_dir / "api_token").read_text().strip()
        assert oct((data_dir / "api_token").stat().st_mode & 0o777) == "0o600"
        auth = {"Authorization": f"Bearer {token}"}
        assert requests.post(url, json=payload, headers=auth, timeout=30).status_code == 200
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    for reader in readers:
        reader.join(timeout=30)
    return subprocess.CompletedProcess(
        process.args, process.returncode, "".join(lines), "".join(errors)
    )


@pytest.mark.own_ray
def test_main_pipeline_runs_end_to_end_and_again(tmp_path):
    env = {"CREDIT_DATA_DIR": str(tmp_path)}
    port = str(free_port())
    first = serve_until_sigterm(port, env, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Traceback" not in first.stderr, first.stderr[-3000:]
    assert "API key created, token in" in first.stdout
    assert "Summary" in first.stdout
    assert "19 features for A0000001 from the online store" in first.stdout
    assert "full load of applicant_financials, applicant_profile" in first.stdout
    assert "credit_risk v1 (champion), test AUC" in first.stdout
    assert f"app 'credit' at http://127.0.0.1:{port} (2 replicas), champion v1" in first.stdout
    assert "120/120 answered" in first.stdout
    # The decisions reached the live drift monitor and it checked them against training data.
    assert "over 120 decisions vs champion v1's training data" in first.stdout
    reports = list((tmp_path / "monitoring" / "reports").glob("drift-*.html"))
    assert len(reports) == 1
    assert "Serve app, drift monitor and the local Ray stopped" in first.stdout
    assert (tmp_path / "monitoring" / "report.html").is_file()
    assert f"written to {tmp_path / 'monitoring' / 'report.html'}" in first.stdout
    # Only the job's own lines on the terminal; Ray's and the libraries' output in the log.
    assert not [line for line in first.stdout.splitlines() if "INFO" in line or "pid=" in line]
    assert "Warning" not in first.stdout + first.stderr
    (log_path,) = (tmp_path / "logs").glob("pipeline-*.log")
    assert f"full log          {log_path}" in first.stdout
    assert "Started a local Ray instance" in log_path.read_text()
    # Every answered decision is in the prediction log once the app has shut down cleanly.
    log = read_prediction_log(tmp_path / "predictions").to_pandas()
    assert len(log) == 121  # the 120 of the job and the one sent above
    assert set(log["caller"]) == {"local"}

    # The re-run's data stages are what idempotence is about; the serving path above is the
    # same on every run, so it is skipped here (`--decisions 0`).
    second = run_job("jobs.pipeline", "--port", port, "--decisions", "0", env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "using existing tables" in second.stdout
    assert "incremental load" in second.stdout
    assert "champion v1 was trained on snapshot" in second.stdout
    assert "local Ray stopped" in second.stdout

    def snapshot_ids(out: str) -> list[str]:
        return [line.split()[1] for line in out.splitlines() if line.startswith("snapshot ")]

    # Same input, same snapshot: re-running is idempotent.
    assert snapshot_ids(first.stdout) == snapshot_ids(second.stdout) != []

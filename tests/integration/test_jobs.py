"""The jobs as a user runs them: exit codes, one-line errors, the main pipeline end to end."""

import os
import subprocess
import sys

import pandas as pd
import pytest

from tests.utils import ROOT, free_port

pytestmark = pytest.mark.integration


def run_job(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_")}
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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


@pytest.mark.own_ray
def test_main_pipeline_runs_end_to_end_and_again(tmp_path):
    env = {"CREDIT_DATA_DIR": str(tmp_path)}
    port = str(free_port())
    first = run_job("jobs.pipeline", "--port", port, "--decisions", "120", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Summary" in first.stdout
    assert "19 features for A0000001 from the online store" in first.stdout
    assert "full load of applicant_profile, applicant_financials" in first.stdout
    assert "credit_risk v1 (champion), test AUC" in first.stdout
    assert f"app 'credit' at http://127.0.0.1:{port} (2 replicas), champion v1" in first.stdout
    assert "120/120 answered" in first.stdout
    # The decisions reached the live drift monitor and it checked them against training data.
    assert "over 120 decisions vs champion v1's training data" in first.stdout
    reports = list((tmp_path / "monitoring" / "reports").glob("drift-*.html"))
    assert len(reports) == 1
    assert "Serve app, drift monitor and the local Ray stopped" in first.stdout
    # Every answered decision is in the prediction log once the app has shut down cleanly.
    log = pd.concat(pd.read_parquet(p) for p in (tmp_path / "predictions").rglob("*.parquet"))
    assert len(log) == 120

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

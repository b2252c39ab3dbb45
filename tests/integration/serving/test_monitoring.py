"""Drift monitoring on live traffic: the Serve app feeds the monitor actor, which checks with
Evidently, reports through the API, metrics, files and MLflow, survives a restart without
losing rows, and submits retraining through the Ray Jobs API once drift holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import requests

from app.data.warehouse import source_tables
from app.domain import CHALLENGER, CHAMPION
from app.predictions.schema import schema_for
from app.training import registry
from tests.utils import ROOT
from tests.utils.datasets import german, validated
from tests.utils.serving import APPLICANTS, WINDOW, kill_monitor, reset_monitor, wait_for

REQUEST_COLUMNS = german().request_columns

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]


def requests_for(settings, shift: str | None = None) -> list[dict]:
    """Each applicant's own application (as in the training data), optionally shifted."""
    table = source_tables(settings, rows=APPLICANTS, shift=shift)
    applications = table["loan_applications"].sort_values("applicant_id")
    return [
        {
            "applicant_id": row["applicant_id"],
            "application": {c: row[c] if c == "purpose" else int(row[c]) for c in REQUEST_COLUMNS},
        }
        for row in applications.to_dict("records")
    ]


def send(served, bodies: list[dict]) -> None:
    for start in range(0, len(bodies), 100):
        out = served.post("/v1/decisions/batch", {"requests": bodies[start : start + 100]})
        assert out.status_code == 200 and not out.json()["errors"], out.text[:500]


def monitor_of(settings):
    from app.monitoring.monitor import find_monitor

    return wait_for(lambda: find_monitor(settings), "the drift monitor actor", 60)


def status(settings) -> dict:
    import ray

    return ray.get(monitor_of(settings).status.remote(), timeout=30)


def drift_check(served, number: int) -> dict:
    def latest():
        response = served.get("/v1/monitoring/drift")
        if response.status_code != 200:
            return None
        out = response.json()
        return out if out["extra"]["check"] >= number else None

    # Generous: from the third check on, the retraining job shares the 2 CPUs.
    return wait_for(latest, f"drift check {number}", 300, 0.5)


@pytest.fixture
def monitored(served):
    """The package's app with its drift monitor on (reconfigured in place), from a fresh
    monitor that checks every WINDOW rows; off again and the registry restored afterwards."""
    reset_monitor(served.settings)
    client = registry.client(served.settings)
    name = served.settings.model_name
    aliases = {a: registry.alias_version(client, name, a) for a in registry_aliases()}
    served.deploy(drift_monitor=True)
    yield served.settings
    served.deploy()
    reset_monitor(served.settings)
    # Whatever the test did (a retrained challenger), the other tests expect the registry
    # as the package fixture left it.
    for alias, version in aliases.items():
        if version and registry.alias_version(client, name, alias) != version:
            registry.move_alias(client, name, alias, version, "test", "restore")


def registry_aliases() -> tuple[str, str]:
    return (CHAMPION, CHALLENGER)


def test_monitor_restart_loses_no_rows(served, monitored):
    import ray

    response = served.get("/v1/monitoring/drift")
    assert response.status_code in (404, 503), response.text
    bodies = requests_for(served.settings)[:200]
    send(served, bodies)
    before = wait_for(
        lambda: (s := status(monitored))["buffered_rows"] == 200 and s, "200 rows in the monitor"
    )
    assert served.get("/v1/monitoring/drift").status_code == 404  # no check yet: 200 < 500

    ray.kill(monitor_of(monitored), no_restart=False)  # the process dies; Ray restarts it

    def restarted():
        try:
            now = status(monitored)
        except Exception:  # restarting
            return None
        return now if now["pid"] != before["pid"] else None

    after = wait_for(restarted, "the monitor to come back", 120, 0.5)
    assert (after["recovered_rows"], after["buffered_rows"]) == (200, 200)
    result = ray.get(monitor_of(monitored).check_now.remote(), timeout=120)
    assert result["rows"] == 200
    assert status(monitored)["buffered_rows"] == 0


def test_rows_a_dead_monitor_never_took_reach_the_next_monitor(served, monitored):
    bodies = requests_for(served.settings)[:300]
    send(served, bodies[:100])
    first = wait_for(
        lambda: (s := status(monitored))["buffered_rows"] == 100 and s, "100 rows in the monitor"
    )
    # Gone for good (no Ray restart), as with a lost node: the replica still holds a handle to
    # it, so its next call fails and the replica must keep those rows and send them again.
    kill_monitor(monitored)
    send(served, bodies[100:])  # answered while no monitor exists

    def successor():
        try:
            now = status(monitored)
        except Exception:  # not created yet, or starting
            return None
        return now if now["pid"] != first["pid"] and now["buffered_rows"] >= 300 else None

    after = wait_for(successor, "the rows to reach a new monitor", 120, 0.5)
    # The spooled 100 recovered from disk, the 200 the replica re-sent: none lost, none twice.
    assert (after["recovered_rows"], after["received_rows"]) == (100, 200), after
    assert after["buffered_rows"] == 300 and after["dropped_rows"] == 0


def test_drift_is_flagged_reported_and_retrains_once(served, monitored):
    import ray
    from ray.job_submission import JobSubmissionClient

    from app.monitoring.retrain import dashboard_url

    same = requests_for(served.settings)
    shifted = requests_for(served.settings, shift="larger_loans")

    send(served, same[:WINDOW])
    first = drift_check(served, 1)
    assert not first["dataset_drift"], first["drifted_features"]
    assert first["rows"] == WINDOW and first["model_version"] == "1"
    assert first["extra"]["sample_rate"] == 1.0  # every answered row was fed
    assert len(first["features"]) == 21
    assert first["prediction"]["column"] == "probability_of_default"
    # Approvals per age band as answered, with the adverse impact ratio (age is a model
    # column, so it is in the window; sex is protected and never logged, so not here).
    assert set(first["fairness"]) == {"age_band"}
    bands = {row["group"]: row for row in first["fairness"]["age_band"]}
    assert sum(row["n"] for row in bands.values()) == WINDOW
    assert max(row["approval_rate_ratio"] for row in bands.values()) == 1.0
    assert first["stability"]["probability_of_default"]["band"] == "stable"

    send(served, shifted[WINDOW : 2 * WINDOW])
    second = drift_check(served, 2)
    assert second["dataset_drift"]
    assert {"credit_amount", "duration_in_month"} <= set(second["drifted_features"])
    assert "trigger" not in second["extra"]  # one drifted check is not enough

    send(served, shifted[2 * WINDOW : 3 * WINDOW])
    third = drift_check(served, 3)
    trigger = third["extra"]["trigger"]
    assert trigger["action"] == "submitted", trigger
    assert "2 consecutive checks" in trigger["reason"] and "credit_amount" in trigger["reason"]

    # Drift keeps holding while the job runs: two more drifted checks do not submit again.
    # (One window at a time: rows that arrive together are checked together.)
    send(served, shifted[3 * WINDOW : 4 * WINDOW])
    assert drift_check(served, 4)["dataset_drift"]
    send(served, shifted[:WINDOW])
    fifth = drift_check(served, 5)
    assert fifth["extra"]["trigger"]["action"] == "suppressed", fifth["extra"]["trigger"]
    assert fifth["extra"]["trigger"]["job"] == trigger["job"]

    jobs = JobSubmissionClient(dashboard_url())
    done = wait_for(
        lambda: (s := jobs.get_job_status(trigger["job"]).value) in ("SUCCEEDED", "FAILED") and s,
        "the retraining job",
        900,
        2.0,
    )
    logs = jobs.get_job_logs(trigger["job"])
    assert done == "SUCCEEDED", logs[-3000:]
    assert "registered credit_risk v3 (challenger)" in logs, logs[-3000:]
    submitted = [t for t in status(monitored)["triggers"] if t["action"] == "submitted"]
    assert [t["job"] for t in submitted] == [trigger["job"]]

    # The new version enters as a shadow challenger (its registry tag), never as champion.
    client = registry.client(monitored)
    version = client.get_model_version(monitored.model_name, "3")
    assert version.tags["traffic"] == "shadow" and "consecutive" in version.tags["retrain_reason"]
    assert registry.alias_version(client, monitored.model_name, CHAMPION) == "1"
    wait_for(lambda: served.status()["challenger"] == "3", "the replica to load v3")

    # Results everywhere a user looks: the stored JSON records, bounded HTML reports, the
    # champion run's metric history, Prometheus.
    root = monitored.monitor_dir
    records = sorted((root / "results").glob("drift-*.json"))
    assert len(records) >= 5 and json.loads(records[1].read_text())["dataset_drift"]
    # Five checks wrote a report each; only the newest monitor_keep_reports (2) are kept.
    kept = sorted((root / "reports").glob("drift-*.html"))
    assert len(kept) == monitored.monitor_keep_reports
    # Each check's Evidently page ends with what Evidently lacks: PSI/CSI and approvals.
    page = kept[-1].read_text()
    assert "Population and characteristic stability" in page and "Approvals by age_band" in page
    run_id = client.get_model_version(monitored.model_name, "1").run_id
    history = client.get_metric_history(run_id, "drift_share")
    assert len(history) >= 5 and max(m.value for m in history) > 0
    port = ray._private.worker.global_worker.node.metrics_export_port

    def scraped():
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        lines = [line for line in text.splitlines() if line.startswith("ray_credit_drift")]
        names = {line.split("{")[0].split(" ")[0] for line in lines}
        wanted = {
            "ray_credit_drift_detected",
            "ray_credit_drift_share",
            "ray_credit_drift_feature_score",
            "ray_credit_drift_checks_total",
        }
        # Ray's exporter may suffix a counter's name with `_total` again.
        return lines if all(any(n.startswith(w) for n in names) for w in wanted) else None

    lines = wait_for(scraped, "the drift metrics on Ray's Prometheus endpoint", 90, 1.0)
    detected = [line for line in lines if line.startswith("ray_credit_drift_detected")]
    assert any(line.endswith(" 1.0") for line in detected), detected


def run_job(settings, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_")}
    env |= {
        "CREDIT_DATA_DIR": str(settings.data_dir),
        "CREDIT_MONITOR_DIR": str(settings.monitor_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "jobs.monitor", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_batch_monitor_reports_drift_and_performance_from_the_log(served, tmp_path):
    import numpy as np
    import pandas as pd

    from app.predictions.log import read_prediction_log

    started = pd.Timestamp.now(tz="UTC")
    send(served, requests_for(served.settings, shift="purpose_mix")[:300])

    def logged():
        frame = read_prediction_log(
            served.settings.prediction_log_dir, schema_for(german())
        ).to_pandas()
        recent = frame[(frame["logged_at"] >= started) & ~frame["shadow"]]
        return frame if len(recent) >= 300 else None

    log = wait_for(logged, "the decisions in the prediction log")
    settings = served.settings.model_copy(update={"monitor_dir": tmp_path / "monitoring"})

    drift = run_job(settings, "drift", "--since", started.isoformat(), "--fail-on-drift")
    assert drift.returncode == 3, drift.stdout + drift.stderr  # drift found: the cron exit
    assert "DRIFT" in drift.stdout
    (record,) = (tmp_path / "monitoring" / "batch").glob("drift-*.json")
    found = json.loads(record.read_text())
    assert found["rows"] == 300 and "purpose" in found["drifted_features"]
    (page,) = (tmp_path / "monitoring" / "batch").glob("drift-*.html")
    assert "Population and characteristic stability" in page.read_text()
    assert found["stability"]["probability_of_default"]["band"] in ("stable", "watch", "act")
    assert {row["group"] for row in found["fairness"]["age_band"]} >= {"26-35", "36-50"}
    empty = run_job(settings, "drift", "--since", "2000-01-01", "--until", "2000-01-02")
    assert empty.returncode == 2 and "no decisions logged" in empty.stderr
    assert "Traceback" not in empty.stderr

    # Outcomes for every applicant seen: the synthetic data's own labels.
    table = validated(source_tables(served.settings, rows=APPLICANTS))
    labels = table["loan_applications"][["applicant_id", "is_default"]]
    labels = labels.rename(columns={"is_default": "defaulted"})
    labels = labels[labels["applicant_id"].isin(set(log["applicant_id"]))]
    labels.to_parquet(tmp_path / "outcomes.parquet", index=False)
    out = tmp_path / "performance.csv"
    perf = run_job(
        settings,
        "performance",
        "--labels",
        str(tmp_path / "outcomes.parquet"),
        "--period",
        "D",
        "--output",
        str(out),
    )
    assert perf.returncode == 0, perf.stdout + perf.stderr
    # The report beside the table: its path printed; scores, approval, AUC, calibration by
    # grade and the drift check above charted, all inline.
    report = tmp_path / "monitoring" / "report.html"
    assert f"report: {report}" in perf.stdout
    page = report.read_text()
    assert page.count("data:image/png;base64,") == 5
    assert "no outcomes recorded yet" not in page and "no drift checks" not in page
    rows = pd.read_csv(out)
    champion = rows[rows["variant"] == "champion"].iloc[-1]
    # The same figures computed here from the log: each label goes to its applicant's latest
    # answered decision; a join that mismatched applicants and outcomes would move the AUC.
    from sklearn.metrics import roc_auc_score

    answered = read_prediction_log(
        served.settings.prediction_log_dir, schema_for(german())
    ).to_pandas()
    answered = answered[answered["shadow"].eq(False)].sort_values(["logged_at", "request_id"])
    latest = answered.drop_duplicates("applicant_id", keep="last").merge(labels, on="applicant_id")

    def champion_on_the_day(frame: pd.DataFrame) -> pd.DataFrame:
        day = pd.to_datetime(frame["logged_at"], utc=True).dt.strftime("%Y-%m-%d")
        return frame[(frame["variant"] == "champion") & (day == champion["period"])]

    mine = champion_on_the_day(latest)
    assert champion["labelled"] == len(mine) >= 100
    assert champion["auc"] == pytest.approx(
        roc_auc_score(mine["defaulted"], mine["probability_of_default"]), abs=1e-9
    )
    decided = champion_on_the_day(answered)
    assert champion["decisions"] == len(decided)
    assert champion["approval_rate"] == pytest.approx(
        (decided["decision"] == "approve").mean(), abs=1e-9
    )
    assert "auc_delta" in rows.columns
    # Calibration by PD grade over the same labelled decisions, grades on the shipped scale.
    assert "calibration by PD grade (95% Jeffreys intervals" in perf.stdout
    grades = pd.read_csv(tmp_path / "performance_calibration.csv")
    champion_grades = grades[grades["variant"] == "champion"]
    labelled = latest[latest["variant"] == "champion"]
    assert champion_grades["outcomes"].sum() == len(labelled)
    assert champion_grades["defaults"].sum() == labelled["defaulted"].sum()
    cuts = np.array(served.settings.calibration_grades)
    grade = np.searchsorted(cuts, labelled["probability_of_default"].to_numpy(), side="left") + 1
    mean_pd = labelled.groupby(grade)["probability_of_default"].mean()
    assert champion_grades.set_index("grade")["predicted_pd"].to_dict() == pytest.approx(
        mean_pd.to_dict(), abs=1e-12
    )

    bad = tmp_path / "bad.csv"
    bad.write_text("applicant_id,defaulted\nS0000001,2\n")
    refused = run_job(settings, "performance", "--labels", str(bad))
    assert refused.returncode == 2 and "defaulted" in refused.stderr

    # Before any outcome arrives: approval rates, and a report that says why there is no AUC.
    unlabelled = run_job(settings, "performance", "--period", "D")
    assert unlabelled.returncode == 0, unlabelled.stdout + unlabelled.stderr
    assert "no outcomes recorded yet" in unlabelled.stdout
    assert f"report: {report}" in unlabelled.stdout
    assert "no outcomes recorded yet" in report.read_text()

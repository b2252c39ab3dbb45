"""Ingest from local files through the real local Ray: snapshot, rejects, bad sources."""

from pathlib import Path

import pandas as pd
import pytest

from app.data.ingest import ingest
from app.data.snapshot import (
    CURRENT,
    HOLD_ENV,
    current_snapshot,
    load_snapshot,
    read_manifest,
)
from app.data.warehouse import source_tables, write_local_tables
from app.errors import SourceError

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]


@pytest.fixture
def settings(make_settings):
    settings = make_settings()
    write_local_tables(source_tables(settings), settings)
    return settings


def snapshot_bytes(path):
    return {p.name: p.read_bytes() for p in path.iterdir()}


def test_ingest_writes_a_reproducible_snapshot(settings):
    report = ingest(settings)
    assert [(t.name, t.read, t.valid, t.rejected) for t in report.tables] == [
        ("applicant_profile", 1000, 1000, 0),
        ("applicant_financials", 1000, 1000, 0),
        ("loan_applications", 1000, 1000, 0),
    ]
    first = snapshot_bytes(current_snapshot(settings.offline_dir))
    again = ingest(settings)
    assert again.snapshot_id == report.snapshot_id
    assert snapshot_bytes(current_snapshot(settings.offline_dir)) == first
    apps = load_snapshot(settings.offline_dir, "loan_applications")
    assert apps["is_default"].sum() == 300
    assert read_manifest(settings.offline_dir)["source"] == {
        "type": "local",
        "path": str(settings.local_source_dir),
    }


def test_bad_rows_are_rejected_with_reasons(settings):
    path = settings.local_source_dir / "loan_applications.parquet"
    apps = pd.read_parquet(path).astype({"credit_amount": object, "duration_in_month": object})
    apps.loc[0, "credit_amount"] = "lots"
    apps.loc[1, "purpose"] = "yacht"
    apps.loc[2, "duration_in_month"] = None
    apps = pd.concat([apps, apps.iloc[[3]]], ignore_index=True)  # duplicate application id
    path.unlink()
    apps.to_csv(settings.local_source_dir / "loan_applications.csv", index=False)

    report = ingest(settings)

    table = {t.name: t for t in report.tables}["loan_applications"]
    assert (table.read, table.valid, table.rejected) == (1001, 996, 5)
    rejects = pd.read_csv(current_snapshot(settings.offline_dir) / "rejects_loan_applications.csv")
    reasons = set(rejects["reason"])
    assert "credit_amount='lots' is not a number" in reasons
    assert "purpose='yacht' is not an allowed category" in reasons
    assert "duration_in_month is null" in reasons
    assert sum(r.startswith("duplicate key application_id=LA0000004") for r in reasons) == 1
    assert (rejects["reason"].str.startswith("duplicate key")).sum() == 2
    valid = load_snapshot(settings.offline_dir, "loan_applications")
    assert len(valid) == 996
    assert (
        not valid["application_id"].isin(["LA0000001", "LA0000002", "LA0000003", "LA0000004"]).any()
    )


def test_wrongly_shaped_source_is_named_and_keeps_previous_snapshot(settings):
    first = ingest(settings)
    path = settings.local_source_dir / "applicant_profile.parquet"
    pd.read_parquet(path).drop(columns=["housing"]).to_parquet(path)
    with pytest.raises(SourceError, match="missing columns housing"):
        ingest(settings)
    assert current_snapshot(settings.offline_dir).name == first.snapshot_id


def test_missing_source_is_named(make_settings):
    settings = make_settings()
    with pytest.raises(SourceError, match="local source table 'applicant_profile' not found"):
        ingest(settings)
    assert not (settings.offline_dir / CURRENT).exists()


def test_all_rows_rejected_publishes_nothing(settings):
    path = settings.local_source_dir / "applicant_financials.parquet"
    pd.read_parquet(path).assign(credit_history="unheard of").to_parquet(path)
    with pytest.raises(SourceError, match="all 1000 rows were rejected"):
        ingest(settings)
    assert not (settings.offline_dir / CURRENT).exists()


def test_ingest_killed_mid_write_leaves_the_previous_snapshot_intact(settings):
    """SIGKILL the ingest job while it writes its snapshot folder: readers keep the old one."""
    import os
    import signal
    import subprocess
    import sys

    import ray

    from tests.utils import ROOT, wait_for

    first = ingest(settings)
    before = snapshot_bytes(current_snapshot(settings.offline_dir))
    # A different source, so there is a new snapshot to write.
    write_local_tables(
        source_tables(settings, seed=settings.seed + 1, rows=2000),
        settings,
    )
    snapshots = settings.offline_dir / "snapshots"
    marker = settings.data_dir / "writing"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_")}
    env.update(
        CREDIT_DATA_DIR=str(settings.data_dir),
        RAY_ADDRESS=ray.get_runtime_context().gcs_address,  # the session's Ray, no new one
        # The writer stops once its folder is written but not yet published, and says where.
        **{HOLD_ENV: str(marker)},
    )
    job = subprocess.Popen(
        [sys.executable, "-m", "jobs.ingest"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        writing = wait_for(
            lambda: (marker.exists() and marker.read_text()) or job.poll() is not None,
            "the ingest job to write its snapshot folder",
            600,
        )
    finally:
        job.send_signal(signal.SIGKILL)
        job.wait(60)
    assert job.returncode == -signal.SIGKILL, "the job ended before it could be killed mid-write"
    half = Path(writing)
    assert half.parent == snapshots and (half / "loan_applications.parquet").exists()

    assert read_manifest(settings.offline_dir)["snapshot_id"] == first.snapshot_id
    assert snapshot_bytes(current_snapshot(settings.offline_dir)) == before
    assert len(load_snapshot(settings.offline_dir, "loan_applications")) == 1000

    # The next run publishes the new snapshot and clears the killed run's half-written folder.
    again = ingest(settings)
    assert again.snapshot_id != first.snapshot_id
    assert len(load_snapshot(settings.offline_dir, "loan_applications")) == 2000
    assert not half.exists()
    assert not any(p.name.startswith(".tmp-") for p in snapshots.iterdir())

"""Snowflake path with the real connector against fakesnow's server: seed, parallel read, errors."""

import subprocess
import sys

import pandas as pd
import pytest

from app.data.ingest import ingest
from app.data.snapshot import current_snapshot
from app.data.snowflake import seed_snowflake
from app.data.warehouse import write_local_tables
from app.errors import SourceError
from tests.utils import ROOT, free_port, snowflake_overrides
from tests.utils.datasets import german

TABLES = german().tables

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]


@pytest.fixture(scope="module")
def shipped_tables():
    from app.config import SHIPPED_DATA_PATH
    from app.data.warehouse import build_warehouse_tables, load_raw

    return build_warehouse_tables(load_raw(SHIPPED_DATA_PATH, german()), german(), seed=42)


@pytest.fixture(scope="module")
def seeded(fakesnow_service, shipped_tables, tmp_path_factory):
    """The shipped data loaded into fakesnow through stage + PUT + COPY INTO."""
    from app.config import load_settings

    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("seed"),
        _env_file=None,
        **snowflake_overrides(fakesnow_service.port, snowflake_schema="SHIPPED"),
    )
    counts = seed_snowflake(shipped_tables, german().tables, settings)
    return counts


@pytest.fixture
def sf_settings(make_settings, fakesnow_service, seeded):
    def make(**extra):
        extra.setdefault("snowflake_schema", "SHIPPED")
        return make_settings(
            source="snowflake", **snowflake_overrides(fakesnow_service.port, **extra)
        )

    return make


def test_seed_loads_every_table(seeded):
    assert seeded == {name: 1000 for name in TABLES}


@pytest.mark.parametrize("partitions", [1, 3])
def test_snowflake_ingest_equals_local_ingest(
    sf_settings, make_settings, shipped_tables, partitions
):
    local = make_settings(data_dir=sf_settings().data_dir / "local")
    write_local_tables(shipped_tables, local)
    local_report = ingest(local)

    report = ingest(sf_settings(snowflake_read_partitions=partitions))

    # Same rows, same types: the content-addressed snapshot is byte-for-byte the same.
    assert report.snapshot_id == local_report.snapshot_id
    assert [t.valid for t in report.tables] == [1000, 1000, 1000]


def test_builtin_read_snowflake_mode_gives_the_same_snapshot(sf_settings):
    fast = ingest(sf_settings())
    builtin = ingest(sf_settings(snowflake_read_mode="read_snowflake"))
    assert builtin.snapshot_id == fast.snapshot_id


def test_bad_warehouse_rows_are_rejected(sf_settings, fakesnow_service, shipped_tables):
    tables = dict(shipped_tables)
    apps = tables["loan_applications"].copy()
    apps.loc[0, "purpose"] = "yacht"
    apps.loc[1, "installment_rate_in_percentage_of_disposable_income"] = 9
    tables["loan_applications"] = apps
    settings = sf_settings(snowflake_schema="DIRTY")
    seed_snowflake(tables, german().tables, settings)

    report = ingest(settings)

    table = {t.name: t for t in report.tables}["loan_applications"]
    assert (table.valid, table.rejected) == (998, 2)
    rejects = pd.read_csv(current_snapshot(settings.offline_dir) / "rejects_loan_applications.csv")
    assert sorted(rejects["reason"]) == [
        "installment_rate_in_percentage_of_disposable_income=9 outside [1, 4]",
        "purpose='yacht' is not an allowed category",
    ]


def test_unreachable_snowflake_is_named_without_the_password(make_settings):
    port = free_port()  # nothing listens here
    settings = make_settings(
        source="snowflake", **snowflake_overrides(port, snowflake_login_timeout=3)
    )
    with pytest.raises(SourceError) as info:
        ingest(settings)
    message = str(info.value)
    assert f"cannot connect to Snowflake at 127.0.0.1:{port}" in message
    assert "planted-secret-pw" not in message
    assert not (settings.offline_dir / "current").exists()


def test_missing_table_is_named(sf_settings):
    with pytest.raises(SourceError, match="APPLICANT_PROFILE does not exist"):
        ingest(sf_settings(snowflake_schema="EMPTY_SCHEMA_" + str(free_port())))


def test_wrongly_shaped_query_is_named(sf_settings):
    query = 'SELECT "APPLICANT_ID", "EVENT_TIMESTAMP" FROM "CREDIT"."SHIPPED"."APPLICANT_PROFILE"'
    settings = sf_settings(snowflake_queries={"applicant_profile": query})
    with pytest.raises(SourceError, match="query result lacks columns age_in_years"):
        ingest(settings)


def test_seed_job_loads_synthetic_rows(fakesnow_service, tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "CREDIT_DATA_DIR": str(tmp_path),
        "CREDIT_SNOWFLAKE_SCHEMA": "SYNTH",
        **{
            f"CREDIT_{k.upper()}": str(v)
            for k, v in snowflake_overrides(fakesnow_service.port).items()
        },
    }
    done = subprocess.run(
        [sys.executable, "-m", "jobs.seed", "--target", "snowflake", "--rows", "5000"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "seeded loan_applications: 5,000 rows" in done.stdout
    assert "planted-secret-pw" not in done.stdout + done.stderr

"""Feast on the real snapshot: materialize (SQLite and Redis), online reads, point-in-time joins."""

import shutil
from datetime import UTC, datetime

import pandas as pd
import pytest

from app.connections import redis_client
from app.data.ingest import ingest
from app.data.snapshot import load_snapshot
from app.data.warehouse import source_tables, write_local_tables
from app.errors import FeatureStoreError
from app.features.store import (
    get_online_features,
    get_store,
    get_training_frame,
    materialize,
    request_row,
)
from tests.utils import isolated_settings, start_redis
from tests.utils.datasets import german

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]

SERVICE = "credit_risk_v1"


@pytest.fixture(scope="module")
def shipped_snapshot(tmp_path_factory, ray_session):
    """The shipped data ingested once for the module; tests start from a copy of it."""
    settings = isolated_settings(data_dir=tmp_path_factory.mktemp("shipped") / "data")
    write_local_tables(source_tables(settings), settings)
    ingest(settings)
    return settings.data_dir


@pytest.fixture
def ingested(make_settings, shipped_snapshot):
    """Settings whose data directory holds an ingested snapshot: a copy of the shipped one,
    or `tables` ingested afresh."""

    def make(tables=None, **overrides):
        settings = make_settings(**overrides)
        if tables is None:
            # The snapshot's `current` link is relative: the copy is self-contained.
            shutil.copytree(shipped_snapshot, settings.data_dir, symlinks=True)
        else:
            write_local_tables(tables, settings)
            ingest(settings)
        return settings

    return make


def test_online_features_match_the_snapshot(ingested):
    settings = ingested()
    report = materialize(settings)
    assert not report.incremental
    apps = load_snapshot(settings.offline_dir, "loan_applications")
    profile = load_snapshot(settings.offline_dir, "applicant_profile").set_index("applicant_id")
    financials = load_snapshot(settings.offline_dir, "applicant_financials").set_index(
        "applicant_id"
    )
    rows = [request_row(apps.iloc[i], german()) for i in (0, 41, 999)]
    online = get_online_features(get_store(settings), SERVICE, rows).set_index("applicant_id")
    for row in rows:
        got = online.loc[row["applicant_id"]]
        assert got["age_in_years"] == profile.loc[row["applicant_id"], "age_in_years"]
        assert got["housing"] == profile.loc[row["applicant_id"], "housing"]
        assert got["credit_history"] == financials.loc[row["applicant_id"], "credit_history"]
        expected = (
            german()
            .derive_frame(pd.DataFrame([{**row, "age_in_years": got["age_in_years"]}]))
            .iloc[0]
        )
        assert got["monthly_installment"] == pytest.approx(expected["monthly_installment"])
        assert got["credit_amount_per_age_year"] == pytest.approx(
            expected["credit_amount_per_age_year"]
        )


def test_second_run_is_incremental_and_picks_up_new_rows(ingested):
    settings = ingested()
    materialize(settings, end=datetime(2026, 1, 1, tzinfo=UTC))
    # A profile update arrives after the first materialization window.
    profile_path = settings.local_source_dir / "applicant_profile.parquet"
    profile = pd.read_parquet(profile_path)
    update = profile.iloc[[0]].assign(
        event_timestamp=pd.Timestamp("2026-03-01", tz="UTC"), housing="rent", age_in_years=70
    )
    pd.concat([profile, update]).to_parquet(profile_path)
    ingest(settings)

    report = materialize(settings)

    assert report.incremental
    apps = load_snapshot(settings.offline_dir, "loan_applications")
    online = get_online_features(
        get_store(settings), SERVICE, [request_row(apps.iloc[0], german())]
    )
    assert online.loc[0, "housing"] == "rent"
    assert online.loc[0, "age_in_years"] == 70


JOINS = ["duckdb", "feast"]


@pytest.mark.parametrize("join", JOINS)
def test_training_rows_never_see_later_values(ingested, make_settings, join):
    settings = make_settings()
    tables = source_tables(settings)
    apps = tables["loan_applications"]
    target = apps.iloc[4]
    profile = tables["applicant_profile"]
    original_age = int(
        profile.loc[profile["applicant_id"] == target["applicant_id"], "age_in_years"].iloc[0]
    )
    # The same applicant's profile changes one day AFTER the application was made.
    later = profile[profile["applicant_id"] == target["applicant_id"]].assign(
        event_timestamp=target["application_timestamp"] + pd.Timedelta("1D"),
        age_in_years=99,
        housing="for free",
    )
    tables["applicant_profile"] = pd.concat([profile, later], ignore_index=True)
    settings = ingested(tables=tables).model_copy(update={"training_join": join})
    store = get_store(settings)
    materialize(settings)
    snapshot_apps = load_snapshot(settings.offline_dir, "loan_applications")

    frame = get_training_frame(settings, snapshot_apps)

    row = frame.loc[frame["application_id"] == target["application_id"]].iloc[0]
    assert row["age_in_years"] == original_age != 99
    assert row["credit_amount_per_age_year"] == pytest.approx(
        target["credit_amount"] / original_age
    )
    assert len(frame) == 1000
    # The later value is real and is what an application made after it sees.
    reapplied = snapshot_apps[snapshot_apps["application_id"] == target["application_id"]].assign(
        application_timestamp=target["application_timestamp"] + pd.Timedelta("2D")
    )
    assert get_training_frame(settings, reapplied).loc[0, "age_in_years"] == 99
    # Online serving has the latest value.
    online = get_online_features(store, SERVICE, [request_row(target, german())])
    assert online.loc[0, "age_in_years"] == 99


@pytest.mark.parametrize("join", JOINS)
def test_financial_records_older_than_their_ttl_are_not_used(ingested, make_settings, join):
    settings = make_settings()
    tables = source_tables(settings)
    target = tables["loan_applications"].iloc[7]
    fin = tables["applicant_financials"]
    fin.loc[fin["applicant_id"] == target["applicant_id"], "event_timestamp"] = target[
        "application_timestamp"
    ] - pd.Timedelta("200D")
    settings = ingested(tables=tables).model_copy(update={"training_join": join})
    frame = get_training_frame(settings).set_index("application_id")
    assert pd.isna(frame.loc[target["application_id"], "credit_history"])
    assert frame["credit_history"].notna().sum() == 999
    if join == "duckdb":
        # Only the stale view's features are missing; Feast's file store drops the whole
        # application (every view's features missing after the merge back).
        assert frame.loc[target["application_id"], "age_in_years"] == pytest.approx(
            tables["applicant_profile"]
            .set_index("applicant_id")
            .loc[target["applicant_id"], "age_in_years"]
        )


def test_the_duckdb_join_gives_feasts_training_set(ingested):
    settings = ingested()
    ours = get_training_frame(settings.model_copy(update={"training_join": "duckdb"}))
    feast = get_training_frame(settings.model_copy(update={"training_join": "feast"}))
    assert len(ours) == 1000
    pd.testing.assert_frame_equal(ours, feast, check_exact=True)


def test_redis_online_store_serves_the_same_features(ingested, redis_service):
    sqlite_settings = ingested()
    materialize(sqlite_settings)
    redis_settings = sqlite_settings.model_copy(
        update={"online_store": "redis", "redis_port": redis_service.port}
    )
    report = materialize(redis_settings)
    assert f"Redis online store at 127.0.0.1:{redis_service.port}" == report.online_store
    apps = load_snapshot(sqlite_settings.offline_dir, "loan_applications")
    rows = [request_row(apps.iloc[i], german()) for i in range(0, 1000, 97)]
    from_redis = get_online_features(get_store(redis_settings), SERVICE, rows)
    from_sqlite = get_online_features(get_store(sqlite_settings), SERVICE, rows)
    pd.testing.assert_frame_equal(
        from_redis[sorted(from_redis.columns)], from_sqlite[sorted(from_sqlite.columns)]
    )


def test_redis_down_is_a_clear_error_and_changes_nothing(ingested):
    redis = start_redis()
    redis.stop()
    settings = ingested(online_store="redis", redis_port=redis.port)
    with pytest.raises(
        FeatureStoreError, match=f"Redis online store at 127.0.0.1:{redis.port} is unreachable"
    ):
        materialize(settings)
    assert not (settings.feast_dir / "registry_redis.db").exists()


@pytest.mark.parametrize("store_kind", ["sqlite", "redis"])
def test_the_ray_data_load_writes_what_feasts_materialize_writes(
    ingested, redis_service, store_kind
):
    """The streamed load (forced onto Ray Data tasks here: the shipped data is small enough to
    be written in process) against Feast's own `materialize`, in two projects of one store."""
    from app.features.online_load import load_views
    from app.features.repo import write_feature_repo
    from app.features.store import apply_definitions, earliest_event

    redis = {"redis_port": redis_service.port} if store_kind == "redis" else {}
    ours = ingested(online_store=store_kind, **redis)
    feast = ours.model_copy(
        update={"feast_project": "feast_own", "feast_dir": ours.data_dir / "feast_own"}
    )
    stores = {}
    for settings in (ours, feast):
        write_feature_repo(settings)
        stores[settings.feast_project] = store = get_store(settings)
        apply_definitions(store, settings)
    start, end = earliest_event(ours), datetime.now(UTC)
    ours_store, feast_store = stores[ours.feast_project], stores["feast_own"]
    views = [v for v in ours_store.list_feature_views() if v.online]
    ticks = []
    written = load_views(
        ours_store,
        views,
        end,
        start,
        on_progress=lambda done, total: ticks.append((done, total)),
        batch_rows=300,
        in_process_rows=0,
    )
    feast_store.materialize(start_date=start, end_date=end)
    assert written == 2000  # two views of 1,000 applicants, one row each
    assert ticks[-1] == (2000, 2000) and len(ticks) > 2
    apps = load_snapshot(ours.offline_dir, "loan_applications")
    rows = [request_row(apps.iloc[i], german()) for i in range(0, 1000, 37)]
    mine = get_online_features(ours_store, SERVICE, rows)
    theirs = get_online_features(feast_store, SERVICE, rows)
    pd.testing.assert_frame_equal(mine, theirs)
    assert mine["age_in_years"].notna().all()
    if store_kind == "redis":
        # Byte for byte: every entity's hash holds what Feast's own write put in its project.
        client = redis_client(ours.model_copy(update={"redis_port": redis_service.port}))
        theirs_keys = [k for k in client.scan_iter(count=5000) if k.endswith(b"feast_own")]
        assert len(theirs_keys) == 1000
        mine_project = ours.feast_project.encode()
        for key in theirs_keys:
            assert client.hgetall(key[: -len(b"feast_own")] + mine_project) == client.hgetall(key)
    # The interval is in the registry, as Feast's materialize records it: the next run is
    # incremental from `end`.
    for view in ours_store.list_feature_views():
        recorded = view.most_recent_end_time.replace(tzinfo=UTC)
        assert abs((recorded - end).total_seconds()) < 1

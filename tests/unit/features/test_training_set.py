"""The training set's point-in-time join: latest row at or before each application, within the
view's TTL, every application kept, one view's gap never blanking another's."""

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from feast import FeatureView

from app.dataset.expressions import derive_frame
from app.errors import FeatureStoreError
from app.features.definitions import build_definitions
from app.features.training_set import ViewSource, point_in_time_frame, view_sources
from tests.utils.datasets import german

T = pd.Timestamp("2025-01-01 12:00", tz="UTC")
US = pd.Timedelta(microseconds=1)
DAY = pd.Timedelta(days=1)


def write(path: Path, rows: list[tuple], columns: list[str], types: list[pa.DataType]) -> Path:
    schema = pa.schema(list(zip(columns, types, strict=True)))
    frame = pd.DataFrame(rows, columns=columns)
    pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path)
    return path


@pytest.fixture
def views(tmp_path) -> list[ViewSource]:
    stamp = pa.timestamp("us", tz="UTC")
    profile = [
        ("p1", T - 400 * DAY, 30, "old"),
        ("p1", T - 100 * DAY, 31, "mid"),
        ("p1", T + DAY, 32, "future"),
        ("p2", T, 40, "at the time"),
        ("p2", T + US, 41, "just after"),
        ("p3", T - 10 * DAY, 50, "edge"),
        ("p4", T - 10 * DAY - US, 60, "stale"),
        ("p5", T - DAY, 70, "shared"),
    ]
    history = [("p1", T - 5000 * DAY, 1), ("p3", T - 9 * DAY, 3), ("p5", T - DAY, 5)]
    return [
        ViewSource(
            name="profile",
            path=write(
                tmp_path / "profile.parquet",
                profile,
                ["who", "ts", "age", "note"],
                [pa.string(), stamp, pa.int64(), pa.string()],
            ),
            timestamp="ts",
            features=("age", "note"),
            ttl=timedelta(days=10),
        ),
        ViewSource(
            name="history",
            path=write(
                tmp_path / "history.parquet",
                history,
                ["who", "ts", "loans"],
                [pa.string(), stamp, pa.int64()],
            ),
            timestamp="ts",
            features=("loans",),
            ttl=None,
        ),
    ]


def applications(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["app", "who", "event_timestamp", "amount"])
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return frame


def joined(entity_df: pd.DataFrame, views: list[ViewSource]) -> pd.DataFrame:
    return point_in_time_frame(
        entity_df,
        key="app",
        entity_key="who",
        views=views,
        derive=lambda frame: derive_frame(frame, (("per_age", "amount / age"),)),
    )


def test_latest_row_at_or_before_the_time_within_the_ttl(views):
    frame = joined(
        applications(
            [
                ("a1", "p1", T - 99 * DAY, 100),  # p1's middle row, a day old
                ("a2", "p2", T, 100),  # a row at exactly the time counts, a later one not
                ("a3", "p3", T, 100),  # exactly the TTL old still counts
                ("a4", "p4", T, 100),  # a microsecond older than the TTL does not
            ]
        ),
        views,
    )
    assert frame["note"].tolist()[:3] == ["mid", "at the time", "edge"]
    assert np.isnan(frame["note"].iloc[3])
    # No TTL on history: p1's row thirteen years earlier is still its latest.
    assert frame["loans"].iloc[0] == 1 and frame["loans"].iloc[2] == 3


def test_one_views_gap_leaves_the_others_features(views):
    frame = joined(applications([("a1", "p1", T, 100)]), views)
    # p1's profile rows are too old or later: only the profile features are missing.
    assert np.isnan(frame["age"].iloc[0]) and np.isnan(frame["note"].iloc[0])
    assert frame["loans"].iloc[0] == 1
    assert np.isnan(frame["per_age"].iloc[0])


def test_every_application_kept_sorted_by_key_with_missing_as_a_merge_leaves_them(views):
    entity_df = applications(
        [
            ("a3", "nobody", T, 50),
            ("a1", "p5", T, 140),
            ("a2", "p5", T, 70),  # the same applicant at the same time: both get the row
        ]
    )
    entity_df["channel"] = ["web", "branch", "web"]
    frame = joined(entity_df, views)
    assert frame["app"].tolist() == ["a1", "a2", "a3"]
    assert list(frame.columns) == [
        *["app", "who", "event_timestamp", "amount", "channel"],
        *["age", "note", "loans", "per_age"],
    ]
    assert frame.index.equals(pd.RangeIndex(3))
    assert frame["age"].tolist()[:2] == [70, 70] and frame["per_age"].tolist()[:2] == [2.0, 1.0]
    # Integer features with a gap are float64 with NaN, text ones NaN (not None).
    assert frame["age"].dtype == "float64" and frame["loans"].dtype == "float64"
    assert frame["note"].iloc[2] is not None and np.isnan(frame["note"].iloc[2])


def test_complete_features_keep_their_types(views):
    frame = joined(applications([("a1", "p5", T, 140)]), views)
    assert frame["age"].dtype == "int64" and frame["note"].dtype == object
    assert frame["event_timestamp"].dtype == "datetime64[ns, UTC]"


def test_naive_times_are_utc(views):
    entity_df = applications([("a1", "p2", T, 100)])
    entity_df["event_timestamp"] = entity_df["event_timestamp"].dt.tz_localize(None)
    assert joined(entity_df, views)["note"].iloc[0] == "at the time"


def test_repeated_application_keys_are_refused(views):
    with pytest.raises(FeatureStoreError, match="repeat app"):
        joined(applications([("a1", "p1", T, 1), ("a1", "p2", T, 1)]), views)


def test_no_applications_give_an_empty_frame(views):
    frame = joined(applications([]), views)
    assert frame.empty and "per_age" in frame.columns


def test_views_are_the_feast_definitions_views(tmp_path):
    dataset = german()
    feast_views = [o for o in build_definitions(dataset, tmp_path, "svc") if type(o) is FeatureView]
    ours = view_sources(dataset, tmp_path)
    assert [v.name for v in ours] == [v.name for v in feast_views]
    for view, feast_view in zip(ours, feast_views, strict=True):
        assert list(view.features) == [f.name for f in feast_view.features]
        assert view.ttl == (feast_view.ttl or None)
        assert view.timestamp == feast_view.batch_source.timestamp_field
        assert str(view.path) == str(Path(feast_view.batch_source.path).resolve())

"""Turn the flat German credit file into the tables a warehouse holds, with ids and event times."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from app.data.schema import (
    APPLICATIONS,
    FINANCIALS,
    LABEL,
    PROFILE,
    RAW_COLUMNS,
    RAW_LABEL,
    TABLES,
    TableSpec,
)
from app.data.synthetic import generate_raw
from app.errors import SourceError

# Applications fall in a fixed two-year window so snapshots are reproducible and an
# out-of-time split (older vs newer applications) is possible.
APPLICATION_WINDOW_START = datetime(2024, 1, 1, tzinfo=UTC)
APPLICATION_WINDOW_DAYS = 730
# The profile and financial records were last updated some days before the application.
MAX_PROFILE_AGE_DAYS = 180
MAX_FINANCIALS_AGE_DAYS = 90


def load_raw(path: Path) -> pd.DataFrame:
    """Read the shipped CSV (or one in the same format) and check its columns."""
    if not path.is_file():
        raise SourceError(f"raw data file not found: {path}")
    raw_df = pd.read_csv(path)
    missing = [c for c in RAW_COLUMNS if c not in raw_df.columns]
    if missing:
        raise SourceError(f"{path} lacks columns: {', '.join(missing)}")
    return raw_df


def _seconds(rng: np.random.Generator, n: int, low_days: float, high_days: float) -> np.ndarray:
    return rng.integers(int(low_days * 86400), int(high_days * 86400), size=n)


def assign_ids_and_times(raw_df: pd.DataFrame, seed: int, id_prefix: str = "A") -> pd.DataFrame:
    """Add stable ids (by row position) and event times (seeded, so identical on every run)."""
    n = len(raw_df)
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(APPLICATION_WINDOW_START)
    app_ts = start + pd.to_timedelta(_seconds(rng, n, 0, APPLICATION_WINDOW_DAYS), unit="s")
    profile_age = pd.to_timedelta(_seconds(rng, n, 1, MAX_PROFILE_AGE_DAYS), unit="s")
    financials_age = pd.to_timedelta(_seconds(rng, n, 1, MAX_FINANCIALS_AGE_DAYS), unit="s")
    width = max(7, len(str(n)))
    numbers = pd.Series(np.arange(1, n + 1)).astype(str).str.zfill(width)

    df = raw_df.reset_index(drop=True).copy()
    df["applicant_id"] = id_prefix + numbers
    df["application_id"] = "L" + id_prefix + numbers
    df["application_timestamp"] = app_ts
    df["profile_timestamp"] = app_ts - profile_age
    df["financials_timestamp"] = app_ts - financials_age
    df[LABEL] = (df[RAW_LABEL] == "bad").astype("int64")
    return df


def _project(df: pd.DataFrame, spec: TableSpec, timestamp_source: str) -> pd.DataFrame:
    out = df.rename(columns={timestamp_source: spec.timestamp})[list(spec.columns)]
    return out.astype({c: "int64" for c, t in spec.columns.items() if str(t) == "int64"})


def split_tables(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Profile, financial history and loan applications, as three warehouse tables."""
    return {
        PROFILE.name: _project(df, PROFILE, "profile_timestamp"),
        FINANCIALS.name: _project(df, FINANCIALS, "financials_timestamp"),
        APPLICATIONS.name: _project(df, APPLICATIONS, "application_timestamp"),
    }


def build_warehouse_tables(
    raw_df: pd.DataFrame, seed: int, id_prefix: str = "A"
) -> dict[str, pd.DataFrame]:
    """Raw German-credit-shaped rows to the three warehouse tables."""
    return split_tables(assign_ids_and_times(raw_df, seed=seed, id_prefix=id_prefix))


def source_tables(
    raw_path: Path, seed: int, rows: int | None = None, shift: str | None = None
) -> dict[str, pd.DataFrame]:
    """The shipped data as warehouse tables, or `rows` synthetic applicants shaped like it."""
    real_df = load_raw(raw_path)
    if rows is None and shift is None:
        return build_warehouse_tables(real_df, seed=seed, id_prefix="A")
    synthetic_df = generate_raw(real_df, n=rows or len(real_df), seed=seed, shift=shift)
    return build_warehouse_tables(synthetic_df, seed=seed, id_prefix="S")


def write_local_tables(tables: dict[str, pd.DataFrame], source_dir: Path) -> dict[str, Path]:
    """Write tables as `<name>.parquet`, each replaced atomically (no half-written file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, df in tables.items():
        final = source_dir / f"{name}.parquet"
        tmp = source_dir / f".{name}.parquet.tmp"
        pq.write_table(
            pa.Table.from_pandas(df, schema=TABLES[name].arrow_schema, preserve_index=False), tmp
        )
        tmp.replace(final)
        written[name] = final
    return written

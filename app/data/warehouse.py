"""Turn a dataset's flat file into the tables a warehouse holds, with ids and event times.

The tables keep the warehouse's own (source) column names and the label's raw values: they
stand for the user's warehouse, and ingest maps them to the spec's canonical names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from app.config import Settings
from app.data.synthetic import generate_raw
from app.dataset import Dataset, TableSpec
from app.errors import SourceError

# A feature table's rows are stamped up to this many days before the application when the
# spec's `flat_file.lag_days` does not say.
DEFAULT_LAG_DAYS = 90


def load_raw(path: Path, dataset: Dataset) -> pd.DataFrame:
    """Read a flat file (CSV or Parquet) of the dataset and check its columns."""
    if not path.is_file():
        raise SourceError(f"raw data file not found: {path}")
    try:
        raw_df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot read {path}: {exc}") from None
    flat = dataset.spec.sources.flat_file
    needed = [*dataset.raw_columns, *(c for c in _flat_sources(flat) if c)]
    missing = [c for c in needed if c not in raw_df.columns]
    if missing:
        raise SourceError(f"{path} lacks columns: {', '.join(missing)}")
    return raw_df


def _flat_sources(flat) -> tuple[str | None, str | None]:
    return (flat.entity_source, flat.timestamp_source) if flat else (None, None)


def _seconds(rng: np.random.Generator, n: int, low_days: float, high_days: float) -> np.ndarray:
    return rng.integers(int(low_days * 86400), int(high_days * 86400), size=n)


def assign_ids_and_times(
    raw_df: pd.DataFrame, dataset: Dataset, seed: int, id_prefix: str | None = None
) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """Stable ids (by row position, unless the file has them) and event times (seeded, so
    identical on every run): the rows with their ids, and each table's event times."""
    flat = dataset.spec.sources.flat_file
    prefix = id_prefix or (flat.id_prefix if flat else "A")
    entity_source, time_source = _flat_sources(flat)
    n = len(raw_df)
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(flat.window_start if flat else "2024-01-01", tz="UTC")
    days = flat.window_days if flat else 730
    drawn = start + pd.to_timedelta(_seconds(rng, n, 0, days), unit="s")
    df = raw_df.reset_index(drop=True).copy()
    if time_source:
        drawn = pd.to_datetime(df[time_source], utc=True, errors="coerce")
    stamps = {dataset.spine.name: pd.Series(drawn)}
    for table in dataset.feature_tables:
        lag = (flat.lag_days if flat else {}).get(table.name, DEFAULT_LAG_DAYS)
        stamps[table.name] = stamps[dataset.spine.name] - pd.to_timedelta(
            _seconds(rng, n, 1, lag), unit="s"
        )
    width = max(7, len(str(n)))
    numbers = pd.Series(np.arange(1, n + 1)).astype(str).str.zfill(width)
    key = dataset.entity_key
    df[key] = df[entity_source].astype(str) if entity_source else prefix + numbers
    df[dataset.spine.key] = "L" + prefix + numbers
    return df, stamps


def _project(df: pd.DataFrame, spec: TableSpec, stamps: pd.Series) -> pd.DataFrame:
    out = df.assign(**{spec.source_of(spec.timestamp): stamps})[spec.source_columns]
    schema = spec.source_schema
    integers = {f.name: "Int64" for f in schema if str(f.type) == "int64"}
    return out.astype(integers)


def split_tables(df: pd.DataFrame, stamps: dict[str, pd.Series], dataset: Dataset):
    """One warehouse table per table of the spec, in the warehouse's names."""
    return {name: _project(df, spec, stamps[name]) for name, spec in dataset.tables.items()}


def build_warehouse_tables(
    raw_df: pd.DataFrame, dataset: Dataset, seed: int, id_prefix: str | None = None
) -> dict[str, pd.DataFrame]:
    """Flat rows of the dataset to its warehouse tables."""
    df, stamps = assign_ids_and_times(raw_df, dataset, seed=seed, id_prefix=id_prefix)
    return split_tables(df, stamps, dataset)


def flat_rows(
    raw_df: pd.DataFrame, dataset: Dataset, seed: int, id_prefix: str | None = None
) -> pd.DataFrame:
    """Flat rows as one frame of canonical columns, one row per application: the tables
    validated (rejects dropped) and joined on the entity key, plus the derived features. What
    a training frame holds, without Feast (tests, benchmarks); memory grows with the rows."""
    from app.data.ingest_table import validate_frame

    tables = build_warehouse_tables(raw_df, dataset, seed=seed, id_prefix=id_prefix)
    valid = {name: validate_frame(df, dataset.tables[name])[0] for name, df in tables.items()}
    return joined_rows(valid, dataset)


def joined_rows(valid: dict[str, pd.DataFrame], dataset: Dataset) -> pd.DataFrame:
    """Validated tables as one row per application: the spine with each entity's attributes
    (missing where a table has no row for it) and the derived features."""
    frame = valid[dataset.spine.name]
    for table in dataset.feature_tables:
        attributes = valid[table.name].drop(columns=[table.timestamp])
        frame = frame.merge(attributes, on=dataset.entity_key, how="left")
    inputs = {
        c: pd.to_numeric(frame[c], errors="coerce").to_numpy("float64", na_value=np.nan)
        for c in dataset.derived_inputs
    }
    with np.errstate(all="ignore"):
        derived = dataset.derive(inputs) if len(frame) else {}
    return frame.assign(**derived)


def source_tables(
    settings: Settings,
    *,
    rows: int | None = None,
    shift: str | None = None,
    seed: int | None = None,
) -> dict[str, pd.DataFrame]:
    """The settings' dataset as warehouse tables from its flat file, or `rows` synthetic
    entities shaped like it."""
    dataset = settings.load_dataset()
    seed = settings.seed if seed is None else seed
    real_df = load_raw(settings.raw_data_file(), dataset)
    if rows is None and shift is None:
        return build_warehouse_tables(real_df, dataset, seed=seed)
    synthetic_df = generate_raw(
        real_df, n=rows or len(real_df), seed=seed, shift=shift, dataset=dataset
    )
    return build_warehouse_tables(synthetic_df, dataset, seed=seed, id_prefix="S")


def write_local_tables(tables: dict[str, pd.DataFrame], settings: Settings) -> dict[str, Path]:
    """Write tables to the local source as `<source name>.parquet`, each replaced atomically
    (no half-written file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dataset, source_dir = settings.load_dataset(), settings.local_source_dir
    source_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, df in tables.items():
        spec = dataset.tables[name]
        final = source_dir / f"{spec.source_name}.parquet"
        tmp = source_dir / f".{spec.source_name}.parquet.tmp"
        table = pa.Table.from_pandas(df, schema=spec.source_schema, preserve_index=False)
        pq.write_table(table, tmp)
        tmp.replace(final)
        written[name] = final
    return written


def prepare_local_tables(settings: Settings, rows: int | None = None) -> str:
    """Write the shipped data (or `rows` synthetic applicants from the spec's generator) as
    local warehouse tables unless they are already there."""
    from app.data.sources import local_table_path

    try:
        for spec in settings.load_dataset().tables.values():
            local_table_path(settings.local_source_dir, spec)
        return f"using existing tables in {settings.local_source_dir}"
    except SourceError:
        tables = source_tables(settings, rows=rows)
        write_local_tables(tables, settings)
        count = len(next(iter(tables.values())))
        kind = "synthetic applicants" if rows else "rows"
        return f"wrote {count:,} {kind} as {len(tables)} tables to {settings.local_source_dir}"


def synthetic_source(settings: Settings, rows: int) -> Settings:
    """Settings reading `rows` synthetic applicants from a folder of their own, so a run at
    another size never overwrites the shipped (or the user's) local tables."""
    if settings.source != "local":
        raise SourceError(
            "--rows writes local tables; to load synthetic applicants into Snowflake run "
            f"`python -m jobs.seed --target snowflake --rows {rows}`"
        )
    return settings.model_copy(
        update={"local_source_dir": settings.data_dir / f"source-synthetic-{rows}"}
    )

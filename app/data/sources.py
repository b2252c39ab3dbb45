"""Where ingest reads: local files (the embedded default) or Snowflake, as Ray Datasets."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import ray
from ray.data import Dataset

from app.config import Settings
from app.dataset import TableSpec
from app.errors import SourceError
from app.runtime import read_args


def local_table_path(source_dir: Path, spec: TableSpec) -> Path:
    """`<name>.parquet`, `<name>.csv` or a directory `<name>/` of Parquet files, under the
    table's warehouse (source) name."""
    name = spec.source_name
    for candidate in (
        source_dir / f"{name}.parquet",
        source_dir / f"{name}.csv",
        source_dir / name,
    ):
        if candidate.exists():
            return candidate
    raise SourceError(
        f"local source table {name!r} not found in {source_dir} "
        f"(expected {name}.parquet, {name}.csv or a {name}/ folder); "
        "create it with `python -m jobs.seed --target local`"
    )


def _local_columns(path: Path) -> list[str]:
    try:
        if path.suffix == ".csv":
            with pacsv.open_csv(path) as reader:
                return reader.schema.names
        return pq.ParquetDataset(path).schema.names
    except (pa.ArrowInvalid, OSError) as exc:
        raise SourceError(f"cannot read {path}: {exc}") from None


def check_columns(found: list[str], spec: TableSpec, where: str) -> None:
    missing = [c for c in spec.source_columns if c not in found]
    if missing:
        raise SourceError(
            f"{where} is not shaped like table {spec.source_name!r}: missing columns "
            f"{', '.join(missing)} (found {', '.join(found) or 'none'})"
        )


def read_local_table(
    spec: TableSpec, source_dir: Path, parallelism: int = -1, resources: dict | None = None
) -> Dataset:
    path = local_table_path(source_dir, spec)
    remote = read_args(resources)
    check_columns(_local_columns(path), spec, str(path))
    if path.suffix == ".csv":
        # Everything as text: validation parses it and names each bad value, instead of
        # Arrow's inference failing on the first one.
        convert = pacsv.ConvertOptions(
            column_types={c: pa.string() for c in spec.source_columns}, strings_can_be_null=True
        )
        ds = ray.data.read_csv(
            str(path),
            convert_options=convert,
            override_num_blocks=_blocks(parallelism),
            ray_remote_args=remote,
        )
    else:
        ds = ray.data.read_parquet(
            str(path), override_num_blocks=_blocks(parallelism), ray_remote_args=remote
        )
    return ds


def _blocks(parallelism: int) -> int | None:
    return parallelism if parallelism > 0 else None


def check_source(settings: Settings) -> None:
    """Cheap checks before any Ray work: local tables exist and have the columns, or the
    Snowflake settings are complete."""
    if settings.source == "snowflake":
        from app.data.snowflake import connection_parameters

        connection_parameters(settings)
        return
    for spec in settings.load_dataset().tables.values():
        path = local_table_path(settings.local_source_dir, spec)
        check_columns(_local_columns(path), spec, str(path))


def read_table(spec: TableSpec, settings: Settings) -> Dataset:
    """One warehouse table from the configured source."""
    if settings.source == "snowflake":
        from app.data.snowflake_reader import read_snowflake_table

        return read_snowflake_table(spec, settings)
    return read_local_table(
        spec,
        settings.local_source_dir,
        settings.ingest_parallelism,
        settings.ingest_read_resources,
    )

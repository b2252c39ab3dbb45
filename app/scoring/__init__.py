"""Batch decisions: a whole table scored with Ray Data, the same artifact and reasons as serving."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from app.config import Settings
from app.dataset import Dataset, TableSpec
from app.errors import CreditRiskError
from app.predictions.schema import offer_columns
from app.scoring.batch import decision_columns, memoise_decoding, read_rows
from app.scoring.output import count_scores, replace_dir

_TS = pa.timestamp("us", tz="UTC")


def input_columns(dataset: Dataset) -> tuple[str, ...]:
    """What a table to score must hold: the entity key and the request fields."""
    return (dataset.entity_key, *dataset.request_columns)


def scores_spec(dataset: Dataset, name: str = "credit_decisions") -> TableSpec:
    """The result table: one row per input row, its decision, reasons and counter-offer."""
    offers = {
        c: pa.float64() if c.endswith("probability_of_default") else pa.int64()
        for c in offer_columns(dataset)
    }
    return TableSpec(
        name=name,
        key="row_id",
        timestamp="scored_at",
        unique_key=("row_id",),
        columns={
            "row_id": pa.string(),  # the spine's key when the input has it, else the entity id
            dataset.entity_key: pa.string(),
            "status": pa.string(),  # scored | unknown_applicant
            "probability_of_default": pa.float64(),
            "decision": pa.string(),
            "reasons": pa.string(),  # JSON list, as in the API response
            "model_name": pa.string(),
            "model_version": pa.string(),
            "features_as_of": _TS,
            "scored_at": _TS,
            # A decline's counter-offer (app/training/offers.py); null: approved, none, or off.
            **offers,
        },
    )


class ScoringError(CreditRiskError):
    """The input table or the model to score with is missing or unusable."""


@dataclass
class ScoreReport:
    rows: int
    scored: int
    unknown: int
    declined: int
    model_version: str
    output: str
    offered: int = 0  # declines with a counter-offer


class BatchScorer:
    """A Ray Data actor: online features, then the registered model's decision and reasons."""

    def __init__(
        self,
        settings: Settings,
        version: str,
        decision_threshold: float | None,
        counter_offers: bool = True,
    ):
        from app.features.online import open_reader
        from app.training.offers import OfferBounds
        from app.training.source import RegistryModelSource

        self.reader = open_reader(settings)
        memoise_decoding(self.reader)
        self.served = RegistryModelSource(settings).load(version)
        self.threshold = decision_threshold
        self.offers = OfferBounds.from_settings(settings) if counter_offers else None

    def __call__(self, batch: pd.DataFrame) -> pa.Table:
        frame = score_frame(batch, self.reader, self.served, self.threshold, self.offers)
        # Arrow in the result table's own schema: every block written alike, whatever its
        # batch held (all unknown applicants, no declines).
        spec = scores_spec(self.reader.dataset)
        return pa.Table.from_pandas(
            frame[list(spec.columns)], schema=spec.arrow_schema, preserve_index=False
        )


def score_frame(
    batch: pd.DataFrame, reader, served, threshold: float | None, offers=None
) -> pd.DataFrame:
    """Decisions for one batch of applications (pure apart from the online-store read), on the
    request path's code: the same features, encoding, score and reasons as the API, and with
    `offers` (OfferBounds) each decline's counter-offer, as the API makes them."""
    from app.features.online import model_inputs

    dataset = reader.dataset
    key, row_key = dataset.entity_key, dataset.spine.key
    ids = batch[key].astype(str).tolist()
    rows = read_rows(reader, ids)
    request_columns = {c: batch[c].tolist() for c in dataset.request_columns}
    columns = model_inputs(rows, request_columns, dataset)
    known = rows.known
    decided = decision_columns(columns, known, served, threshold, offers)
    return pd.DataFrame(
        {
            "row_id": batch[row_key if row_key in batch else "row_id"].astype(str).to_numpy(),
            key: ids,
            "status": np.where(known, "scored", "unknown_applicant").astype(object),
            "probability_of_default": decided.pop("probability_of_default"),
            "decision": decided.pop("decision"),
            "reasons": decided.pop("reasons"),
            "model_name": served.name,
            "model_version": served.version,
            "features_as_of": pd.to_datetime(rows.as_of, utc=True),
            "scored_at": pd.Timestamp.now(tz="UTC"),
            **decided,  # the offer columns, in offer_columns' order
        }
    )


def _check_columns(columns: list[str], where: str, dataset: Dataset) -> None:
    missing = [c for c in input_columns(dataset) if c not in columns]
    if missing:
        raise ScoringError(f"{where} lacks column(s) {', '.join(missing)}")


def read_input(settings: Settings, input_path: Path | None, snowflake_table: str | None):
    """The applications to score as a Ray Dataset: a Parquet file/dir, a Snowflake table (with
    the spine's key, the entity key and the request fields), or the snapshot's spine table."""
    import ray

    dataset = settings.load_dataset()
    spine = dataset.spine
    if snowflake_table:
        from app.data.snowflake_reader import read_snowflake_table

        wanted = [spine.key, *input_columns(dataset)]
        spec = TableSpec(
            name=snowflake_table,
            key=dataset.entity_key,
            timestamp="",
            columns={c: spine.columns[c] for c in wanted},
            unique_key=(spine.key,),
        )
        return read_snowflake_table(spec, settings)
    if input_path is None:
        from app.data.snapshot import table_path

        input_path = table_path(settings.offline_dir, spine.name)
        if not input_path.exists():
            raise ScoringError(f"no snapshot at {input_path}: run `python -m jobs.ingest` first")
    elif not Path(input_path).exists():
        raise ScoringError(f"input {input_path} does not exist")
    table = ray.data.read_parquet(str(input_path))
    _check_columns(table.schema().names, str(input_path), dataset)
    return table


def score_table(
    settings: Settings,
    output_path: Path | None = None,
    input_path: Path | None = None,
    snowflake_table: str | None = None,
    snowflake_output: str | None = None,
    alias: str = "champion",
    decision_threshold: float | None = None,
    concurrency: int = 2,
    batch_size: int = 16384,
    cpus_per_actor: float = 0.5,
    counter_offers: bool = True,
) -> ScoreReport:
    """Score every row, streaming: Ray Data writes the results as they come (Parquet parts,
    renamed into place once complete), or loads them into a Snowflake table; the driver never
    holds the table. Declines get the scoring model's counter-offer unless `counter_offers`
    is off."""
    import ray

    from app.training.source import RegistryModelSource

    version = RegistryModelSource(settings).aliases().get(alias)
    if version is None:
        raise ScoringError(f"no model version holds the alias {alias!r} of {settings.model_name}")
    spec = settings.load_dataset()
    dataset = read_input(settings, input_path, snowflake_table)
    if spec.spine.key not in dataset.schema().names:  # rows are named by their entity then
        dataset = dataset.map_batches(_with_row_id, fn_kwargs={"key": spec.entity_key})
    # A snapshot table is one Parquet row group, one read block: split it, streaming, or one
    # actor would score every row while the others wait.
    dataset = dataset.repartition(target_num_rows_per_block=batch_size)
    scored = dataset.map_batches(
        BatchScorer,
        fn_constructor_kwargs={
            "settings": settings,
            "version": version,
            "decision_threshold": decision_threshold,
            "counter_offers": counter_offers,
        },
        batch_format="pandas",
        # Large batches: the per-batch costs (model call set-up, one read per slice, the
        # result's Arrow conversion) vanish next to the rows' own.
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        # Below 1 where the scoring actors share a node with Serve replicas: an actor holding
        # the last whole CPU would starve the read tasks that feed it.
        num_cpus=cpus_per_actor,
    )
    # The result in the input's order, whichever actor finished first.
    scored.context.execution_options.preserve_order = True
    output_path = Path(output_path or settings.data_dir / "scores")
    if snowflake_output:
        counts = _to_snowflake(scored, settings, scores_spec(spec, snowflake_output))
        where = f"Snowflake table {snowflake_output}"
    else:
        counts, where = _to_parquet(scored, output_path, spec)
    return ScoreReport(**counts, model_version=version, output=where)


def _with_row_id(batch: dict[str, np.ndarray], key: str) -> dict[str, np.ndarray]:
    return {**batch, "row_id": batch[key].astype(str)}


def _to_parquet(scored, output_path: Path, dataset: Dataset) -> tuple[dict[str, int], str]:
    """Ray Data writes the parts under a temporary name, renamed into place once all are
    written: never a half-written result."""
    output_path.mkdir(parents=True, exist_ok=True)
    staging = output_path / f".decisions.parquet.tmp-{uuid.uuid4().hex}"
    try:
        # `local://`: the write tasks run on this (the driver's) node, whose disk the path is
        # on; on a cluster they would otherwise write parts onto other nodes' disks.
        scored.write_parquet(f"local://{staging}")
        counts = count_scores(staging, scores_spec(dataset))
        final = scores_path(output_path)
        replace_dir(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return counts, str(final)


def _to_snowflake(scored, settings: Settings, table: TableSpec) -> dict[str, int]:
    """Parts written locally by Ray Data, then loaded as one table (staging name, swapped in:
    `seed_snowflake`), which takes the rows as one frame."""
    from app.data.snowflake import seed_snowflake

    with tempfile.TemporaryDirectory(prefix="scores-") as tmp:
        scored.write_parquet(f"local://{tmp}")
        counts = count_scores(Path(tmp), table)
        frame = pq.read_table(tmp, schema=table.arrow_schema).to_pandas()
    seed_snowflake({table.name: frame}, {table.name: table}, settings)
    return counts


def scores_path(output_path: Path) -> Path:
    """Where `score_table` leaves the results in `output_path`: a directory of Parquet parts
    (`pd.read_parquet` and `pq.ParquetDataset` read it as one table)."""
    return Path(output_path) / "decisions.parquet"

"""Batch decisions: a whole table scored with Ray Data, the same artifact and reasons as serving."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from app.config import Settings
from app.dataset import Dataset, TableSpec
from app.errors import CreditRiskError
from app.predictions.schema import offer_columns

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
        self.served = RegistryModelSource(settings).load(version)
        self.threshold = decision_threshold
        self.offers = OfferBounds.from_settings(settings) if counter_offers else None

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return score_frame(batch, self.reader, self.served, self.threshold, self.offers)


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
    rows = reader.read(ids)
    request_columns = {c: batch[c].tolist() for c in dataset.request_columns}
    columns = model_inputs(rows, request_columns, dataset)
    known = rows.known
    out = pd.DataFrame(
        {
            "row_id": batch[row_key if row_key in batch else "row_id"].astype(str).to_numpy(),
            key: ids,
            "status": ["scored" if k else "unknown_applicant" for k in known],
            "probability_of_default": float("nan"),
            "decision": None,
            "reasons": None,
            "model_name": served.name,
            "model_version": served.version,
            "features_as_of": pd.to_datetime(rows.as_of, utc=True),
            "scored_at": pd.Timestamp.now(tz="UTC"),
        }
    )
    for column in offer_columns(dataset):
        out[column] = pd.array(
            [None] * len(out), dtype="Float64" if "probab" in column else "Int64"
        )
    if known.any():
        idx = np.flatnonzero(known).tolist()
        subset = {name: [values[i] for i in idx] for name, values in columns.items()}
        scores = served.compiled.score(subset, len(idx), threshold)
        out.loc[known, "probability_of_default"] = scores.probability_of_default
        out.loc[known, "decision"] = scores.decisions
        out.loc[known, "reasons"] = [json.dumps(r) for r in scores.reasons]
        if offers is not None:
            _add_offers(out, idx, subset, scores.decisions, served, threshold, offers)
    return out


def _add_offers(out, idx, subset, decisions, served, threshold, offers) -> None:
    """Fill the offer columns of the declined rows (`idx[k]` is subset row k's row in `out`)."""
    from app.training.offers import counter_offers

    declined = [k for k, decision in enumerate(decisions) if decision == "decline"]
    if not declined:
        return
    made = counter_offers(served.compiled, subset, declined, threshold, offers)
    for k, offer in zip(declined, made, strict=True):
        if offer is not None:
            for name, value in offer.as_dict().items():
                out.at[idx[k], f"counter_offer_{name}"] = value


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
    concurrency: int = 1,
    batch_size: int = 1024,
    cpus_per_actor: float = 1.0,
    counter_offers: bool = True,
) -> ScoreReport:
    """Score every row, then write all results at once (Parquet directory or Snowflake table);
    declines get the scoring model's counter-offer unless `counter_offers` is off."""
    from app.training.source import RegistryModelSource

    version = RegistryModelSource(settings).aliases().get(alias)
    if version is None:
        raise ScoringError(f"no model version holds the alias {alias!r} of {settings.model_name}")
    spec = settings.load_dataset()
    dataset = read_input(settings, input_path, snowflake_table)
    if spec.spine.key not in dataset.schema().names:  # rows are named by their entity then
        dataset = dataset.map_batches(_with_row_id, fn_kwargs={"key": spec.entity_key})
    scored = dataset.map_batches(
        BatchScorer,
        fn_constructor_kwargs={
            "settings": settings,
            "version": version,
            "decision_threshold": decision_threshold,
            "counter_offers": counter_offers,
        },
        batch_format="pandas",
        batch_size=batch_size,
        concurrency=concurrency,
        # Below 1 where the scoring actors share a node with Serve replicas: an actor holding
        # the last whole CPU would starve the read tasks that feed it.
        num_cpus=cpus_per_actor,
    )
    result_df = scored.to_pandas()
    result_df = result_df.sort_values("row_id", kind="mergesort").reset_index(drop=True)
    if snowflake_output:
        from app.data.snowflake import seed_snowflake

        table = scores_spec(spec, snowflake_output)
        seed_snowflake({snowflake_output: result_df}, {snowflake_output: table}, settings)
        where = f"Snowflake table {snowflake_output}"
    else:
        output_path = output_path or settings.data_dir / "scores"
        where = str(write_scores(result_df, output_path, scores_spec(spec)))
    return ScoreReport(
        rows=len(result_df),
        scored=int((result_df["status"] == "scored").sum()),
        unknown=int((result_df["status"] == "unknown_applicant").sum()),
        declined=int((result_df["decision"] == "decline").sum()),
        offered=_offered(result_df, spec),
        model_version=version,
        output=where,
    )


def _offered(result_df: pd.DataFrame, dataset: Dataset) -> int:
    """Declines with a counter-offer (none without levers)."""
    columns = offer_columns(dataset)
    return int(result_df[columns[0]].notna().sum()) if columns else 0


def _with_row_id(batch: dict[str, np.ndarray], key: str) -> dict[str, np.ndarray]:
    return {**batch, "row_id": batch[key].astype(str)}


def write_scores(result_df: pd.DataFrame, output_path: Path, spec: TableSpec) -> Path:
    """One Parquet file (`spec`: scores_spec), written to a temp name and renamed: never a
    half-written result."""
    import pyarrow.parquet as pq

    output_path = Path(output_path)
    output_path.mkdir(parents=True, exist_ok=True)
    final = scores_path(output_path)
    tmp = output_path / ".decisions.parquet.tmp"
    table = pa.Table.from_pandas(
        result_df[list(spec.columns)], schema=spec.arrow_schema, preserve_index=False
    )
    pq.write_table(table, tmp)
    tmp.replace(final)
    return final


def scores_path(output_path: Path) -> Path:
    """The file `write_scores` leaves in `output_path`."""
    return Path(output_path) / "decisions.parquet"

"""Outcomes joined to the decisions they are about: the prediction log's answered decisions
(never shadow scores: those were not what the applicant got), each with its outcome once known.

Pure pandas: no Ray, no MLflow, nothing runs on import.
"""

from __future__ import annotations

import pandas as pd

from app.domain import PREDICTION
from app.monitoring.labels import LabelsError, validate_labels
from app.predictions.schema import answered as answered_only

PREDICTION_REQUIRED = (
    "request_id",
    "logged_at",
    "applicant_id",
    "variant",
    "shadow",
    "model_version",
    PREDICTION,
    "decision",
)
JOINED_COLUMNS = [
    "request_id",
    "applicant_id",
    "logged_at",
    "variant",
    "model_version",
    PREDICTION,
    "decision",
    "defaulted",
]


def _answered(predictions: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in PREDICTION_REQUIRED if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions are missing column(s): {', '.join(missing)}")
    answered = answered_only(predictions)[list(PREDICTION_REQUIRED)].drop(columns="shadow")
    answered["logged_at"] = pd.to_datetime(answered["logged_at"], utc=True)
    for column in ("request_id", "applicant_id", "model_version"):
        answered[column] = answered[column].astype(str)
    return answered.reset_index(drop=True)


def _join_on_request(answered: pd.DataFrame, labels: pd.DataFrame) -> pd.Series:
    merged = answered[["request_id", "applicant_id"]].merge(
        labels[["request_id", "applicant_id", "defaulted"]],
        on="request_id",
        how="left",
        suffixes=("", "_label"),
    )
    # A request_id whose applicant differs is a labels file built for another log (or a typo);
    # attaching its outcome would silently score the wrong person.
    clash = merged["applicant_id_label"].notna() & (
        merged["applicant_id_label"] != merged["applicant_id"]
    )
    if clash.any():
        row = merged[clash].iloc[0]
        raise LabelsError(
            f"labels: {int(clash.sum())} request_id(s) belong to a different applicant in the "
            f"prediction log, e.g. {row['request_id']!r}: log {row['applicant_id']!r}, "
            f"labels {row['applicant_id_label']!r}"
        )
    # The merge is one-to-one (labels are unique per request_id), so positions line up.
    return merged["defaulted"]


def _join_on_applicant(answered: pd.DataFrame, labels: pd.DataFrame) -> pd.Series:
    label_columns = ["applicant_id", "defaulted"]
    if "observed_at" in labels.columns:
        label_columns.append("observed_at")
    candidates = labels[label_columns].merge(
        answered[["applicant_id", "logged_at", "request_id"]].reset_index(names="_row"),
        on="applicant_id",
    )
    if "observed_at" in candidates.columns:
        # An outcome known at observed_at cannot be about a decision made after it (e.g. a
        # reapplication after the default); a missing observed_at puts no limit.
        known = candidates["observed_at"]
        candidates = candidates[known.isna() | (candidates["logged_at"] <= known)]
    # request_id breaks logged_at ties so the choice does not depend on row order.
    latest = candidates.sort_values(["logged_at", "request_id"]).drop_duplicates(
        "applicant_id", keep="last"
    )
    outcome = pd.Series(pd.NA, index=answered.index, dtype="Int64")
    outcome.loc[latest["_row"].to_numpy()] = latest["defaulted"].to_numpy()
    return outcome


def join_outcomes(predictions: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Every answered decision (shadow == False) with its outcome, if one has arrived.

    Joins on request_id when the labels have it, else on applicant_id: each label goes to
    that applicant's latest answered decision (logged at or before observed_at, when given);
    the applicant's earlier decisions stay unlabelled. Columns: request_id, applicant_id,
    logged_at (UTC), variant, model_version, probability_of_default, decision and defaulted
    (nullable Int64, <NA> = no outcome yet), sorted by logged_at. attrs["unmatched_labels"]
    counts labels that matched no answered decision.
    """
    labels = validate_labels(labels, "labels")
    answered = _answered(predictions)
    if "request_id" in labels.columns:
        defaulted = _join_on_request(answered, labels)
    else:
        defaulted = _join_on_applicant(answered, labels)
    joined = answered.assign(defaulted=defaulted.astype("Int64").to_numpy())[JOINED_COLUMNS]
    joined = joined.sort_values(["logged_at", "request_id"], kind="stable").reset_index(drop=True)
    joined.attrs["unmatched_labels"] = int(len(labels) - joined["defaulted"].notna().sum())
    return joined

"""Outcomes joined to the decisions they are about: the prediction log's answered decisions
(never shadow scores: those were not what the applicant got), each with its outcome once known.

Pure pandas: no Ray, no MLflow, nothing runs on import.
"""

from __future__ import annotations

import pandas as pd

from app.domain import PREDICTION
from app.monitoring.labels import LabelsError, validate_labels
from app.predictions.schema import answered as answered_only


def prediction_columns(key: str) -> list[str]:
    """What the join reads of the prediction log (`key`: the dataset's entity key)."""
    return [
        "request_id",
        "logged_at",
        key,
        "variant",
        "shadow",
        "model_version",
        PREDICTION,
        "decision",
    ]


def joined_columns(key: str) -> list[str]:
    """The joined frame's columns."""
    columns = [c for c in prediction_columns(key) if c != "shadow"]
    columns.insert(2, columns.pop(columns.index("logged_at")))  # request_id, key, logged_at
    return [*columns, "defaulted"]


def _answered(predictions: pd.DataFrame, key: str) -> pd.DataFrame:
    required = prediction_columns(key)
    missing = [c for c in required if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions are missing column(s): {', '.join(missing)}")
    answered = answered_only(predictions)[required].drop(columns="shadow")
    answered["logged_at"] = pd.to_datetime(answered["logged_at"], utc=True)
    for column in ("request_id", key, "model_version"):
        answered[column] = answered[column].astype(str)
    return answered.reset_index(drop=True)


def _join_on_request(answered: pd.DataFrame, labels: pd.DataFrame, key: str) -> pd.Series:
    merged = answered[["request_id", key]].merge(
        labels[["request_id", key, "defaulted"]],
        on="request_id",
        how="left",
        suffixes=("", "_label"),
    )
    # A request_id whose applicant differs is a labels file built for another log (or a typo);
    # attaching its outcome would silently score the wrong person.
    theirs = f"{key}_label"
    clash = merged[theirs].notna() & (merged[theirs] != merged[key])
    if clash.any():
        row = merged[clash].iloc[0]
        raise LabelsError(
            f"labels: {int(clash.sum())} request_id(s) belong to a different {key} in the "
            f"prediction log, e.g. {row['request_id']!r}: log {row[key]!r}, "
            f"labels {row[theirs]!r}"
        )
    # The merge is one-to-one (labels are unique per request_id), so positions line up.
    return merged["defaulted"]


def _join_on_entity(answered: pd.DataFrame, labels: pd.DataFrame, key: str) -> pd.Series:
    label_columns = [key, "defaulted"]
    if "observed_at" in labels.columns:
        label_columns.append("observed_at")
    candidates = labels[label_columns].merge(
        answered[[key, "logged_at", "request_id"]].reset_index(names="_row"), on=key
    )
    if "observed_at" in candidates.columns:
        # An outcome known at observed_at cannot be about a decision made after it (e.g. a
        # reapplication after the default); a missing observed_at puts no limit.
        known = candidates["observed_at"]
        candidates = candidates[known.isna() | (candidates["logged_at"] <= known)]
    # request_id breaks logged_at ties so the choice does not depend on row order.
    ordered = candidates.sort_values(["logged_at", "request_id"])
    latest = ordered.drop_duplicates(key, keep="last")
    outcome = pd.Series(pd.NA, index=answered.index, dtype="Int64")
    outcome.loc[latest["_row"].to_numpy()] = latest["defaulted"].to_numpy()
    return outcome


def join_outcomes(predictions: pd.DataFrame, labels: pd.DataFrame, key: str) -> pd.DataFrame:
    """Every answered decision (shadow == False) with its outcome, if one has arrived.

    Joins on request_id when the labels have it, else on `key` (the dataset's entity
    key): each label goes to that applicant's latest answered decision (logged at or
    before observed_at, when given); the applicant's earlier decisions stay unlabelled.
    Columns: request_id, `key`, logged_at (UTC), variant, model_version,
    probability_of_default, decision and defaulted (nullable Int64, <NA> = no outcome yet),
    sorted by logged_at. attrs["unmatched_labels"] counts labels that matched no answered
    decision.
    """
    labels = validate_labels(labels, "labels", key)
    answered = _answered(predictions, key)
    if "request_id" in labels.columns:
        defaulted = _join_on_request(answered, labels, key)
    else:
        defaulted = _join_on_entity(answered, labels, key)
    joined = answered.assign(defaulted=defaulted.astype("Int64").to_numpy())
    joined = joined[joined_columns(key)]
    joined = joined.sort_values(["logged_at", "request_id"], kind="stable").reset_index(drop=True)
    joined.attrs["unmatched_labels"] = int(len(labels) - joined["defaulted"].notna().sum())
    return joined

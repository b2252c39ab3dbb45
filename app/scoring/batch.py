"""One batch of batch-scoring work as whole columns: online features read in slices, one
model pass, then the result frame assembled from arrays (no per-row frame writes)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from app.domain import APPROVE, DECLINE
from app.features.layout import decode_value
from app.features.online import OnlineReader, OnlineRows
from app.predictions.schema import offer_columns
from app.scoring.offers import batch_offers
from app.scoring.reasons import score_json

# Applicants per online-store read: SQLite caps the parameters of one statement (32766), and
# the read binds every key once per view.
READ_SLICE = 4096


def read_rows(reader: OnlineReader, ids: Sequence[str]) -> OnlineRows:
    """`reader.read(ids)` for any number of ids, in slices the store accepts."""
    if len(ids) <= READ_SLICE:
        return reader.read(ids)
    parts = [reader.read(ids[i : i + READ_SLICE]) for i in range(0, len(ids), READ_SLICE)]
    return OnlineRows(
        {c: [v for p in parts for v in p.columns[c]] for c in parts[0].columns},
        np.concatenate([p.known for p in parts]),
        [t for p in parts for t in p.as_of],
        [u for p in parts for u in p.unreadable],
    )


def memoise_decoding(reader: OnlineReader) -> None:
    """Decode each distinct stored value once per reader: a batch job reads the same few
    values (categories, small whole numbers) millions of times, and decoding is most of a
    read's cost. Errors are not cached, so a bad record still fails only its applicant."""
    decode = functools.lru_cache(maxsize=1 << 16)(decode_value)
    kinds = reader.kinds
    reader._decode = lambda raw: {f: decode(v, kinds.get(f)) for f, v in raw.items()}


def decision_columns(columns: dict[str, list], known: np.ndarray, served, threshold, offers):
    """PD, decision, reasons (JSON) and offer columns for every row; only `known` rows are
    scored, the others stay null."""
    n = len(known)
    out: dict[str, object] = {
        "probability_of_default": np.full(n, np.nan),
        "decision": np.full(n, None, dtype="object"),
        "reasons": np.full(n, None, dtype="object"),
    }
    idx = np.flatnonzero(known)
    offer_names = offer_columns(served.model.dataset)
    if not idx.size:
        out.update(_no_offers(offer_names, n))
        return out
    subset = columns if idx.size == n else _take(columns, idx.tolist())
    pd_scores, declines, reasons = score_json(served.compiled, subset, idx.size, threshold)
    out["probability_of_default"][idx] = pd_scores
    out["decision"][idx] = np.where(declines, DECLINE, APPROVE)
    out["reasons"][idx] = reasons
    declined = np.flatnonzero(declines).tolist()
    if offers is None or not offer_names or not declined:
        out.update(_no_offers(offer_names, n))
        return out
    made = batch_offers(served.compiled, subset, declined, threshold, offers)
    where = idx[np.asarray(declined, dtype="int64")[made.made]]
    values = (made.amount, made.term, made.probability_of_default)
    for name, value in zip(offer_names, values, strict=True):
        full = np.zeros(n, dtype=value.dtype)
        full[where] = value[made.made]
        mask = np.ones(n, dtype=bool)
        mask[where] = False
        out[name] = _masked(full, mask, name)
    return out


def _take(columns: dict[str, list], idx: list[int]) -> dict[str, list]:
    return {name: [values[i] for i in idx] for name, values in columns.items()}


def _masked(values: np.ndarray, mask: np.ndarray, name: str):
    """A nullable column, as the per-row path typed it (Float64 for the PD, else Int64)."""
    if "probab" in name:
        return pd.arrays.FloatingArray(values.astype("float64"), mask)
    return pd.arrays.IntegerArray(values.astype("int64"), mask)


def _no_offers(names: list[str], n: int) -> dict[str, object]:
    mask = np.ones(n, dtype=bool)
    return {name: _masked(np.zeros(n), mask, name) for name in names}

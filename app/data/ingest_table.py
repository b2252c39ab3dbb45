"""One validated table in Arrow: duplicate keys, key order and rejects, computed without a
pandas copy of the table (only the rejected rows become pandas)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from app.data.validation import RAW, REASON, annotate_batch, duplicate_reasons, rejects_frame
from app.dataset import TableSpec


def _same_as_next(keys: pa.Table) -> np.ndarray:
    """For sorted keys: whether each row's key equals the next row's. Nulls (and NaN) equal
    each other, as pandas' groupby(dropna=False) counts them as one key."""
    n = keys.num_rows
    same = np.ones(max(n - 1, 0), dtype=bool)
    if n < 2:
        return same
    for column in keys.columns:
        values = column.combine_chunks()
        this, after = values.slice(0, n - 1), values.slice(1)
        equal = pc.fill_null(pc.equal(this, after), False)
        if values.null_count or pa.types.is_floating(values.type):
            both = pc.and_(pc.is_null(this, nan_is_null=True), pc.is_null(after, nan_is_null=True))
            equal = pc.or_(equal, both)
        same &= equal.to_numpy(zero_copy_only=False)
    return same


def key_order(table: pa.Table, spec: TableSpec) -> tuple[np.ndarray, np.ndarray]:
    """(positions of the rows that stay valid, in key order; positions of the valid-so-far
    rows whose key occurs more than once, in row order)."""
    key = list(spec.unique_key)
    candidates = np.flatnonzero(table[REASON].is_null().to_numpy(zero_copy_only=False))
    keys = table.select(key).take(candidates)
    # Stable, nulls last: the order pandas' mergesort by key gave.
    order = pc.sort_indices(keys, sort_keys=[(k, "ascending", "at_end") for k in key]).to_numpy()
    same = _same_as_next(keys.take(order))
    repeated = np.zeros(len(order), dtype=bool)
    repeated[:-1] |= same
    repeated[1:] |= same
    ordered = candidates[order]
    return ordered[~repeated], np.sort(ordered[repeated])


@dataclass
class Checked:
    """A table split into its valid rows (as positions, in key order) and its rejects."""

    table: pa.Table
    spec: TableSpec
    valid: np.ndarray
    rejects: pd.DataFrame

    def valid_parts(self, rows: int) -> Iterator[pa.Table]:
        """The valid rows in key order, `rows` at a time, in the table's typed columns."""
        columns = self.table.select(list(self.spec.columns))
        for start in range(0, len(self.valid), rows):
            yield columns.take(self.valid[start : start + rows])


def check_table(table: pa.Table, spec: TableSpec) -> Checked:
    """Reject every valid row whose unique key repeats (which copy is right is unknowable, so
    none is trusted); the rejects keep the table's row order."""
    valid, repeated = key_order(table, spec)
    bad = np.flatnonzero(table[REASON].is_valid().to_numpy(zero_copy_only=False))
    # Rows named by the validation keep its reason; duplicates get theirs from the same
    # pandas values the validation showed, so both kinds read alike.
    reasons = table[REASON].take(bad).to_pylist()
    raws = table[RAW].take(bad).to_pylist()
    if len(repeated):
        more_reasons, more_raws = duplicate_reasons(table.take(repeated).to_pandas(), spec)
        reasons, raws = reasons + more_reasons, raws + more_raws
    order = np.argsort(np.concatenate([bad, repeated]), kind="stable")
    rejects = rejects_frame([reasons[i] for i in order], [raws[i] for i in order])
    return Checked(table, spec, valid, rejects)


def validate_frame(df: pd.DataFrame, spec: TableSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One table validated in this process, as ingest validates it: (valid rows typed and in
    key order, rejects with reason and original values). For a table that fits in memory
    (a check, a local split, tests); ingest streams the same checks through Ray tasks."""
    checked = check_table(annotate_batch(df, spec), spec)
    columns = checked.table.select(list(spec.columns))
    return columns.take(checked.valid).to_pandas(), checked.rejects

"""One column's values as the synthetic generator reads and writes them.

Shared by the base rows (app.data.synthetic) and the named shifts (app.data.synthetic_shifts),
which must agree on what counts as a number to move and on the type a moved column keeps; the
reading side also serves the fit of the real rows (app.data.synthetic_fit).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from app.dataset.spec import Column
from app.dataset.types import Scalar


def as_text(values: np.ndarray | pd.Series) -> pd.Series:
    """Values as stripped text, as validation compares categories (a CSV may hand over codes
    such as 1, 2 as numbers); missing stays missing."""
    return pd.Series(values, dtype=object).astype("string").str.strip()


def matches(values: np.ndarray | pd.Series, raw: Scalar) -> np.ndarray:
    """Where the label holds `raw`, compared as validation does (text stripped, numbers as
    numbers)."""
    if isinstance(raw, str):
        return as_text(values).eq(raw).fillna(False).to_numpy(dtype=bool)
    numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
    return numbers.eq(float(raw)).fillna(False).to_numpy(dtype=bool)


def as_numbers(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "iuf":
        return values.astype("float64")
    return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy("float64")


def is_special(values: np.ndarray, numbers: np.ndarray, spec: Column) -> np.ndarray:
    """Rows holding no number to move: missing, a missing code, or outside the range where the
    spec keeps such values (ingest makes them missing or clips them, as in the real file)."""
    out = np.isnan(numbers)
    codes = [c for c in spec.missing_codes if not isinstance(c, bool)]
    numeric = [float(c) for c in codes if isinstance(c, int | float)]
    if numeric:
        out |= np.isin(numbers, numeric)
    texts = [str(c) for c in codes if isinstance(c, str)]
    if texts:
        out |= as_text(values).isin(texts).fillna(False).to_numpy(dtype=bool)
    if spec.range is not None and spec.out_of_range != "reject":
        low, high = spec.range
        out |= (numbers < low) | (numbers > high)
    return out


def is_unknown(values: np.ndarray, spec: Column) -> np.ndarray:
    """Missing values and missing codes (and, for numbers, what `is_special` says)."""
    if spec.type in ("int", "float"):
        return is_special(values, as_numbers(values), spec)
    out = pd.isna(values)
    if spec.missing_codes:
        codes = [str(c) for c in spec.missing_codes]
        out |= as_text(values).isin(codes).fillna(False).to_numpy(dtype=bool)
    return out


# --- moving numbers ----------------------------------------------------------------------------


def snap(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Each value replaced by the nearest grid value (grid sorted ascending)."""
    if grid.size == 1:
        return np.full(values.shape, grid[0])
    right = np.clip(np.searchsorted(grid, values), 1, grid.size - 1)
    left = right - 1
    nearer_left = np.abs(values - grid[left]) <= np.abs(grid[right] - values)
    return np.where(nearer_left, grid[left], grid[right])


def offsets(rng: np.random.Generator, offset: int, n: int) -> np.ndarray:
    return rng.integers(-offset, offset + 1, n)


def whole(values: np.ndarray, spec: Column) -> np.ndarray:
    return np.rint(values) if spec.type == "int" else values


def typed(
    original: np.ndarray, numbers: np.ndarray, special: np.ndarray, spec: Column
) -> np.ndarray:
    """Moved numbers in the type the column had: int64, float64, or (a file holding text codes)
    object with the special values as they were."""
    if spec.type == "float":
        if original.dtype.kind != "O":
            return numbers.astype("float64")
    elif original.dtype.kind in "iu":
        return numbers.astype(np.int64)
    elif original.dtype.kind == "f":
        return numbers
    out = original.astype(object)  # a copy
    ordinary = np.flatnonzero(~special)
    kind = int if spec.type == "int" else float
    out[ordinary] = [kind(v) for v in numbers[ordinary]]
    return out

"""Adverse-action reason codes: the raw columns that push an applicant's score towards default,
ranked from per-feature contributions and phrased through the catalogue (reason_catalog)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from app.training.preprocess import FeatureEncoder
from app.training.reason_catalog import Reason, catalogue

BIAS = "bias"


def citable_columns(encoder: FeatureEncoder) -> list[str]:
    """Encoder columns a reason may name: protected ones never, unknown ones are a bug."""
    protected = set(encoder.dataset.protected_columns)
    columns = [c for c in encoder.raw_columns if c not in protected]
    reasons = catalogue(encoder.dataset)
    unknown = [c for c in columns if c not in reasons]
    if unknown:
        raise KeyError(f"no reason code for column(s): {', '.join(unknown)}")
    return columns


def aggregate_contributions(contribs: pd.DataFrame, encoder: FeatureEncoder) -> pd.DataFrame:
    """Per-raw-column contributions: one-hot contributions summed, the bias column dropped.

    Every encoded feature must be present: a partial frame means contributions from another
    encoder, and filling the gap with zeros would silently give the wrong reasons.
    """
    features = [c for c in contribs.columns if c != BIAS]
    known = set(encoder.feature_names)
    missing = sorted(known - set(features))
    unknown = [c for c in features if c not in known]
    if missing or unknown:
        raise KeyError(
            f"contribution columns do not match the encoder: missing {missing}, unknown {unknown}"
        )
    raw_columns = encoder.raw_columns
    position = {column: j for j, column in enumerate(raw_columns)}
    # A feature x raw-column 0/1 matrix turns the grouping into one matrix product.
    membership = np.zeros((len(features), len(raw_columns)))
    for i, name in enumerate(features):
        membership[i, position[encoder.source_of(name)[0]]] = 1.0
    values = contribs[features].to_numpy(dtype="float64") @ membership
    return pd.DataFrame(values, index=contribs.index, columns=raw_columns)


def reason_codes(
    contribs: pd.DataFrame,
    raw: pd.DataFrame,
    encoder: FeatureEncoder,
    max_reasons: int = 4,
    used_columns: set[str] | None = None,
    require: np.ndarray | None = None,
) -> list[list[dict]]:
    """Per row, the raw columns pushing hardest towards default (contribution > 0), largest first.

    Rows of `contribs` and `raw` are matched by position. Each reason is
    `{"code", "feature", "description", "contribution"}`; at most `max_reasons` per row; only
    columns in `used_columns` (when given) and never protected columns are cited; ties go to
    the column that comes first in `encoder.raw_columns`, so the output is deterministic.
    Rows flagged in `require` (declines) always get reasons: when nothing pushes towards
    default (the base rate alone declines them), the columns that helped least are cited.
    """
    if max_reasons < 0:
        raise ValueError("max_reasons must be >= 0")
    if len(contribs) != len(raw):
        raise ValueError(f"{len(contribs)} contribution rows but {len(raw)} raw rows")
    aggregated = aggregate_contributions(contribs, encoder)
    citable = citable_columns(encoder)
    if used_columns is not None:
        unknown = sorted(set(used_columns) - set(encoder.raw_columns))
        if unknown:
            raise KeyError(f"used_columns not in the encoder: {', '.join(unknown)}")
        citable = [c for c in citable if c in used_columns]
    take = min(max_reasons, len(citable))
    missing = [c for c in citable if c not in raw.columns]
    if missing:
        raise KeyError(f"raw frame lacks column(s) needed for reasons: {', '.join(missing)}")

    values = aggregated[citable].to_numpy(dtype="float64")
    return explain_rows(
        values,
        citable,
        lambda column, rows: raw[column].to_numpy(dtype="object")[rows],
        take,
        catalogue(encoder.dataset),
        require,
    )


def citable_values(rounded: np.ndarray, take: int, require: np.ndarray | None) -> np.ndarray:
    """The contributions that may be cited (rows x columns), -inf for those that may not."""
    # Non-positive and NaN contributions are never reasons, and -inf sorts them last.
    values = np.where(rounded > 0, rounded, -np.inf)
    if require is not None and take:
        bare = np.flatnonzero(np.asarray(require, dtype=bool) & ~np.isfinite(values).any(axis=1))
        if len(bare):
            # Only the least unfavourable column that moved the score at all: enough to
            # explain, without listing the columns that helped.
            candidates = np.where(
                np.isnan(rounded[bare]) | (rounded[bare] == 0), -np.inf, rounded[bare]
            )
            best = np.argmax(candidates, axis=1)
            picked = candidates[np.arange(len(bare)), best]
            ok = np.isfinite(picked)
            values[bare[ok], best[ok]] = picked[ok]
    return values


def describe_cited(
    order: np.ndarray,
    cited: np.ndarray,
    citable: Sequence[str],
    value_of: Callable[[str, np.ndarray], Sequence],
    reasons: Mapping[str, Reason],
) -> np.ndarray:
    """The text of every cited slot (rows x slots), each column's values phrased in one call."""
    descriptions = np.empty(order.shape, dtype="object")
    for j in np.unique(order[cited]).tolist():
        column = citable[j]
        rows, slots = np.nonzero((order == j) & cited)
        descriptions[rows, slots] = reasons[column].describe_many(
            np.asarray(value_of(column, rows), dtype="object")
        )
    return descriptions


def explain_rows(
    aggregated: np.ndarray,
    citable: Sequence[str],
    value_of: Callable[[str, np.ndarray], Sequence],
    take: int,
    reasons: Mapping[str, Reason],
    require: np.ndarray | None = None,
) -> list[list[dict]]:
    """The reasons of each row from per-column contributions (rows x `citable`, margin scale);
    `value_of(column, rows)` gives the raw values the texts quote, `reasons` the catalogue
    that phrases them. Shared by `reason_codes` and
    the request path (`app.training.compiled`): both rank and phrase reasons identically."""
    # Rounded first so a reported contribution is never 0.0 and float noise cannot reorder
    # reasons.
    rounded = np.round(aggregated, 6)
    if len(rounded) == 1:  # the request path: plain Python beats a dozen tiny array calls
        required = require is not None and bool(np.asarray(require, dtype=bool)[0])
        return [_explain_one(rounded[0].tolist(), required, citable, value_of, take, reasons)]
    values = citable_values(rounded, take, require)
    # A stable sort of the negated values keeps column order among ties.
    order = np.argsort(-values, axis=1, kind="stable")[:, :take]
    top = np.take_along_axis(values, order, axis=1)
    cited = np.isfinite(top)
    description_list = describe_cited(order, cited, citable, value_of, reasons).tolist()

    order_list = order.tolist()
    top_list = top.tolist()
    out: list[list[dict]] = []
    for i, count in enumerate(cited.sum(axis=1).tolist()):
        row = []
        for k in range(count):
            column = citable[order_list[i][k]]
            row.append(
                {
                    "code": reasons[column].code,
                    "feature": column,
                    "description": description_list[i][k],
                    "contribution": top_list[i][k],
                }
            )
        out.append(row)
    return out


def _explain_one(
    values: list[float],
    required: bool,
    citable: Sequence[str],
    value_of: Callable[[str, np.ndarray], Sequence],
    take: int,
    reasons: Mapping[str, Reason],
) -> list[dict]:
    """`explain_rows` for one row, with the same choices: the positive contributions, largest
    first, column order among ties; a required row with none cites its least unfavourable
    column that moved the score at all."""
    if not take:
        return []
    cited = [(-v, j) for j, v in enumerate(values) if v > 0]
    if not cited and required:
        moved = [(-v, j) for j, v in enumerate(values) if v == v and v != 0]
        cited = [min(moved)] if moved else []
    out = []
    for negated, j in sorted(cited)[:take]:
        column = citable[j]
        reason = reasons[column]
        value = value_of(column, np.zeros(1, dtype=np.intp))[0]
        out.append(
            {
                "code": reason.code,
                "feature": column,
                "description": reason.describe(value),
                "contribution": -negated,
            }
        )
    return out

"""Calibration backtesting: realised default rates against the predicted PD, per PD grade.

Basel's validation guidance asks lenders to compare realised default rates with estimated PDs
for each grade (SR 11-7 calls it outcomes analysis). Decisions with an outcome are put in the
grades of a master scale (`CREDIT_CALIBRATION_GRADES`: PD cut points), and per variant and grade
the mean predicted PD is set against the observed default rate and its Jeffreys interval, the
Bayesian interval with a Beta(1/2, 1/2) prior that supervisors use for this test because it
holds its coverage for the small counts and low rates of good grades. A grade whose predicted
PD lies outside the interval is flagged: `under` when the model predicts fewer defaults than
happened, `over` when more.

Pure pandas/numpy/scipy: one pass over the labelled decisions, cost linear in their number.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import beta

from app.domain import PREDICTION

UNDER, OVER = "under", "over"
CALIBRATION_COLUMNS = [
    "variant",
    "grade",
    "pd_range",
    "outcomes",
    "defaults",
    "predicted_pd",
    "observed_rate",
    "interval_low",
    "interval_high",
    "brier",
    "flag",
]


@dataclass(frozen=True)
class MasterScale:
    """Grades by PD: grade i holds PDs up to cuts[i] (above cuts[i-1]); the last grade the rest."""

    cuts: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.cuts or any(not 0 < c < 1 for c in self.cuts):
            raise ValueError(f"PD grade cut points must lie strictly between 0 and 1: {self.cuts}")
        if any(b <= a for a, b in itertools.pairwise(self.cuts)):
            raise ValueError(f"PD grade cut points must increase: {self.cuts}")

    def grades(self, pd_values: np.ndarray) -> np.ndarray:
        """1-based grade of each PD."""
        return np.searchsorted(np.asarray(self.cuts), pd_values, side="left") + 1

    def ranges(self) -> list[str]:
        bounds = [f"{c:.1%}" for c in self.cuts]
        inner = [f"{lo} - {hi}" for lo, hi in itertools.pairwise(bounds)]
        return [f"<= {bounds[0]}", *inner, f"> {bounds[-1]}"]


def jeffreys_interval(defaults: int, outcomes: int, confidence: float) -> tuple[float, float]:
    """The equal-tailed Jeffreys interval of a default rate; 0 (or 1) at the end a count of 0
    (or all) pins, as Brown, Cai and DasGupta (2001) recommend."""
    tail = (1 - confidence) / 2
    a, b = defaults + 0.5, outcomes - defaults + 0.5
    low = 0.0 if defaults == 0 else float(beta.ppf(tail, a, b))
    high = 1.0 if defaults == outcomes else float(beta.ppf(1 - tail, a, b))
    return low, high


def calibration_by_grade(
    joined: pd.DataFrame, scale: MasterScale, confidence: float = 0.95
) -> pd.DataFrame:
    """Per variant and grade with outcomes: counts, mean predicted PD, observed default rate,
    its Jeffreys interval, the grade's Brier score and its flag. `joined`: join_outcomes'
    output (decisions without an outcome are left out)."""
    labelled = joined[joined["defaulted"].notna()]
    if labelled.empty:
        return pd.DataFrame(columns=CALIBRATION_COLUMNS)
    scores = labelled[PREDICTION].to_numpy("float64")
    frame = pd.DataFrame(
        {
            "variant": labelled["variant"].to_numpy(),
            "grade": scale.grades(scores),
            "pd": scores,
            "defaulted": labelled["defaulted"].to_numpy("float64"),
        }
    )
    frame["squared_error"] = (frame["pd"] - frame["defaulted"]) ** 2
    grouped = frame.groupby(["variant", "grade"], sort=True).agg(
        outcomes=("pd", "size"),
        defaults=("defaulted", "sum"),
        predicted_pd=("pd", "mean"),
        brier=("squared_error", "mean"),
    )
    rows = []
    ranges = scale.ranges()
    for (variant, grade), g in grouped.iterrows():
        outcomes, defaults = int(g["outcomes"]), int(g["defaults"])
        low, high = jeffreys_interval(defaults, outcomes, confidence)
        predicted = float(g["predicted_pd"])
        flag = UNDER if predicted < low else OVER if predicted > high else ""
        rows.append(
            [variant, int(grade), ranges[int(grade) - 1], outcomes, defaults, predicted,
             defaults / outcomes, low, high, float(g["brier"]), flag]
        )  # fmt: skip
    return pd.DataFrame(rows, columns=CALIBRATION_COLUMNS)


def flagged(table: pd.DataFrame) -> list[str]:
    """`variant grade N (range): flag` for each flagged row, in table order."""
    hits = table[table["flag"] != ""]
    return [
        f"{r.variant} grade {r.grade} ({r.pd_range}): {r.flag}-predicted, predicted "
        f"{r.predicted_pd:.3f}, observed {r.observed_rate:.3f} "
        f"[{r.interval_low:.3f}, {r.interval_high:.3f}] over {r.outcomes:,} outcomes"
        for r in hits.itertuples(index=False)
    ]


def brier_by_variant(joined: pd.DataFrame) -> dict[str, float]:
    """Each variant's Brier score over its decisions with an outcome."""
    labelled = joined[joined["defaulted"].notna()]
    errors = (labelled[PREDICTION].astype("float64") - labelled["defaulted"].astype("float64")) ** 2
    return {str(v): float(e.mean()) for v, e in errors.groupby(labelled["variant"], sort=True)}


def scale_of(cuts: Sequence[float]) -> MasterScale:
    return MasterScale(tuple(float(c) for c in cuts))

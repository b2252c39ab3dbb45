"""Synthesise a "Give Me Some Credit"-shaped file: GMSC's columns and quirks, made-up rows.

    python datasets/gmsc/generate.py [--rows N] [--seed S] [--out PATH]

Writes `datasets/gmsc/gmsc.csv` (3,000 rows, seed 7) unless told otherwise; the same
arguments always give the same bytes. Nothing here comes from Kaggle's file: the columns,
their names and their quirks are GMSC's, the values are drawn from the distributions below.

The quirks a spec must cope with, as in the real file:
* MonthlyIncome is missing in about 20% of rows, NumberOfDependents in a few of those;
* where MonthlyIncome is missing, DebtRatio holds the monthly debt in dollars, not a ratio;
* RevolvingUtilizationOfUnsecuredLines is a ratio that can exceed 1 (over the limit);
* a few rows hold 96 or 98 ("unknown") in all three past-due counts;
* SeriousDlqin2yrs (0/1) is positive in about 7% of rows.

The label is drawn from a logistic model of utilisation, past-due counts, age and debt ratio,
so a model can learn it but not perfectly (test AUC around 0.8, like the real data's).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "gmsc.csv"
DEFAULT_ROWS = 3_000
DEFAULT_SEED = 7
POSITIVE_RATE = 0.07
INCOME_MISSING = 0.20
DEPENDENTS_MISSING = 0.13  # of the rows without an income, as in GMSC
UNKNOWN_PAST_DUES = 0.002  # rows coded 96/98 in all three past-due counts

COLUMNS = [
    "SeriousDlqin2yrs",
    "RevolvingUtilizationOfUnsecuredLines",
    "age",
    "NumberOfTime30-59DaysPastDueNotWorse",
    "DebtRatio",
    "MonthlyIncome",
    "NumberOfOpenCreditLinesAndLoans",
    "NumberOfTimes90DaysLate",
    "NumberRealEstateLoansOrLines",
    "NumberOfTime60-89DaysPastDueNotWorse",
    "NumberOfDependents",
]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _intercept(logit: np.ndarray, rate: float) -> float:
    """The shift that makes the mean default probability `rate` (bisection: deterministic)."""
    low, high = -20.0, 20.0
    for _ in range(80):
        middle = (low + high) / 2
        if _sigmoid(logit + middle).mean() < rate:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def generate(rows: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """`rows` borrowers in GMSC's columns and order."""
    rng = np.random.default_rng(seed)
    n = rows
    # One latent "financial stress" per borrower drives utilisation and delinquencies alike,
    # so they correlate as they do in bureau data.
    stress = rng.normal(0.0, 1.0, n)
    age = np.clip(np.round(rng.normal(52, 14.5, n)), 21, 103).astype(int)
    young = (50 - age) / 15

    utilization = _sigmoid(-1.3 + 1.3 * stress + 0.3 * young + rng.normal(0, 0.9, n))
    over = rng.random(n) < 0.03  # over the limit
    utilization[over] = 1 + rng.exponential(0.4, over.sum())

    def late(base: float, slope: float) -> np.ndarray:
        return np.minimum(rng.poisson(np.exp(base + slope * stress + 0.2 * young)), 15)

    past_due_30 = late(-2.0, 0.9)
    past_due_60 = late(-3.3, 1.0)
    past_due_90 = late(-3.2, 1.1)

    income = np.round(np.exp(rng.normal(8.5, 0.6, n)) - 200 * np.clip(young, 0, None))
    income = np.clip(income, 0, None)
    no_income = rng.random(n) < INCOME_MISSING
    ratio = np.clip(np.exp(rng.normal(-1.2, 0.7, n) + 0.15 * stress), 0, 8)
    # GMSC's DebtRatio is debt / income; with no income it holds the monthly debt itself.
    monthly_debt = np.round(np.exp(rng.normal(6.5, 1.2, n)))
    debt_ratio = np.where(no_income, monthly_debt, ratio)

    open_lines = np.minimum(rng.negative_binomial(4, 4 / (4 + 8.5), n), 58)
    real_estate = np.minimum(rng.poisson(np.clip(1.0 - 0.2 * young, 0.1, None)), 20)
    dependents = np.minimum(rng.poisson(np.clip(0.75 + 0.4 * young, 0.05, None)), 10)
    no_dependents = no_income & (rng.random(n) < DEPENDENTS_MISSING)

    logit = (
        3.0 * np.minimum(utilization, 1.5)
        + 0.6 * past_due_30
        + 0.9 * past_due_60
        + 1.1 * past_due_90
        - 0.03 * (age - 50)
        + 0.4 * np.where(no_income, 0.4, np.minimum(ratio, 3))
        + 0.1 * dependents
        + rng.normal(0, 0.5, n)  # what the file does not show
    )
    label = (rng.random(n) < _sigmoid(logit + _intercept(logit, POSITIVE_RATE))).astype(int)

    # Unknown past-due history is coded after the label is drawn: the borrower's real history
    # still drove the outcome, the file just does not know it.
    unknown = np.flatnonzero(rng.random(n) < UNKNOWN_PAST_DUES)
    # Mostly 98, every third one 96, so even a small file holds both codes.
    code = np.where(np.arange(len(unknown)) % 3 == 0, 96, 98)
    for counts in (past_due_30, past_due_60, past_due_90):
        counts[unknown] = code

    frame = pd.DataFrame(
        {
            "SeriousDlqin2yrs": label,
            "RevolvingUtilizationOfUnsecuredLines": np.round(utilization, 6),
            "age": age,
            "NumberOfTime30-59DaysPastDueNotWorse": past_due_30,
            "DebtRatio": np.round(debt_ratio, 6),
            "MonthlyIncome": pd.array(np.where(no_income, np.nan, income), dtype="Int64"),
            "NumberOfOpenCreditLinesAndLoans": open_lines,
            "NumberOfTimes90DaysLate": past_due_90,
            "NumberRealEstateLoansOrLines": real_estate,
            "NumberOfTime60-89DaysPastDueNotWorse": past_due_60,
            "NumberOfDependents": pd.array(
                np.where(no_dependents, np.nan, dependents), dtype="Int64"
            ),
        }
    )
    return frame[COLUMNS]


def write(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="default: %(default)s")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="default: %(default)s")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="default: gmsc.csv here")
    args = parser.parse_args()
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    frame = generate(args.rows, args.seed)
    write(frame, args.out)
    rate = frame["SeriousDlqin2yrs"].mean()
    print(f"wrote {args.out}: {len(frame):,} rows, {rate:.1%} positive")


if __name__ == "__main__":
    main()

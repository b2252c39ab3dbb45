"""Pure feature functions shared by Ray Data, Feast's on-demand view, training and serving."""

from __future__ import annotations

import numpy as np
import pandas as pd

# Inputs the request-time features need, and what they produce (names and meaning fixed here
# so the Feast view, training and serving cannot drift apart).
APPLICATION_INPUTS: tuple[str, ...] = (
    "credit_amount",
    "duration_in_month",
    "installment_rate_in_percentage_of_disposable_income",
    "age_in_years",
)
APPLICATION_FEATURES: tuple[str, ...] = (
    "monthly_installment",
    "installment_burden",
    "credit_amount_per_age_year",
)


def application_features(df: pd.DataFrame) -> pd.DataFrame:
    """Request-time features of a loan application.

    - monthly_installment: amount / duration, the repayment the applicant commits to;
    - installment_burden: monthly installment scaled by the installment rate (share of
      disposable income, 1-4), a proxy for disposable income absorbed;
    - credit_amount_per_age_year: loan size relative to age, a rough exposure-to-history ratio.
    Zero or missing denominators give NaN rather than inf, so models see "unknown".
    """
    values = application_feature_values(
        _numbers(df["credit_amount"]),
        _numbers(df["duration_in_month"]),
        _numbers(df["installment_rate_in_percentage_of_disposable_income"]),
        _numbers(df["age_in_years"]),
    )
    return pd.DataFrame(values, index=df.index)


def application_feature_values(
    amount: np.ndarray, duration: np.ndarray, rate: np.ndarray, age: np.ndarray
) -> dict[str, np.ndarray]:
    """`application_features` on float64 arrays (NaN for missing): the definition itself.

    The DataFrame form (training, Feast's on-demand view) and the request path (arrays built
    from request scalars, no DataFrame) both call this, so the two cannot disagree.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        monthly = np.where(duration > 0, amount / duration, np.nan)
        per_age = np.where(age > 0, amount / age, np.nan)
        out = {
            "monthly_installment": monthly,
            "installment_burden": monthly * rate / 4.0,
            "credit_amount_per_age_year": per_age,
        }
    return {k: np.where(np.isfinite(v), v, np.nan) for k, v in out.items()}


def _numbers(column: pd.Series) -> np.ndarray:
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)

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
    amount = pd.to_numeric(df["credit_amount"], errors="coerce").astype("float64")
    duration = pd.to_numeric(df["duration_in_month"], errors="coerce").astype("float64")
    rate = pd.to_numeric(
        df["installment_rate_in_percentage_of_disposable_income"], errors="coerce"
    ).astype("float64")
    age = pd.to_numeric(df["age_in_years"], errors="coerce").astype("float64")
    monthly = amount / duration.where(duration > 0)
    out = pd.DataFrame(index=df.index)
    out["monthly_installment"] = monthly
    out["installment_burden"] = monthly * rate / 4.0
    out["credit_amount_per_age_year"] = amount / age.where(age > 0)
    return out.replace([np.inf, -np.inf], np.nan)

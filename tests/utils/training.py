"""Training helpers for tests: quick fit settings, registered copies, synthetic scores and
reason-code inputs."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from app.training.preprocess import FeatureEncoder, safe_name
from tests.utils.datasets import german

# Boosting settings that fit the shipped data on one worker in a fraction of a second (the fit's
# cost is then Ray Train's start-up alone): for tests of registry, serving and job mechanics.
# Model quality is asserted once, on a full-quality fit, in tests/integration/test_training.py.
QUICK_FIT = {"train_workers": 1, "num_boost_round": 200, "early_stopping_rounds": 20}


def register_copy(settings, version: str, reason: str) -> str:
    """Register the model of `version` again, as the challenger, without fitting: for tests
    that need a second version only to route to, promote or roll back."""
    from app.domain import CHALLENGER
    from app.training import registry

    client = registry.client(settings)
    source = client.get_model_version(settings.model_name, version).source
    # register_version digests the files, as training does: serving refuses a version without.
    new = registry.register_version(settings, client, source, {}, reason)
    registry.record(client, settings.model_name, "register", None, new, None, reason)
    registry.move_alias(client, settings.model_name, CHALLENGER, new, "challenger", reason)
    return new


# --- evaluation -----------------------------------------------------------------------------


def applicants(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Calibrated synthetic PDs, Bernoulli labels and the raw fairness attributes."""
    rng = np.random.default_rng(seed)
    pd_scores = rng.beta(2, 5, n)
    y = rng.binomial(1, pd_scores)
    frame = pd.DataFrame(
        {
            "age_in_years": rng.integers(18, 80, n),
            "personal_status_and_sex": rng.choice(
                ["male : single", "female : divorced/separated/married"], n
            ),
        }
    )
    return y, pd_scores, frame


# --- reason codes ---------------------------------------------------------------------------

# The second applicant of the shipped CSV (a "bad" credit), with its request-time features.
APPLICANT: dict[str, object] = {
    "status_of_existing_checking_account": "0 <= ... < 200 DM",
    "duration_in_month": 48,
    "credit_history": "existing credits paid back duly till now",
    "purpose": "radio/television",
    "credit_amount": 5951,
    "savings_account_and_bonds": "... < 100 DM",
    "present_employment_since": "1 <= ... < 4 years",
    "installment_rate_in_percentage_of_disposable_income": 2,
    "personal_status_and_sex": "male : divorced/separated",
    "other_debtors_or_guarantors": "none",
    "present_residence_since": 2,
    "property": "real estate",
    "age_in_years": 22,
    "other_installment_plans": "none",
    "housing": "own",
    "number_of_existing_credits_at_this_bank": 1,
    "job": "skilled employee / official",
    "number_of_people_being_liable_to_provide_maintenance_for": 1,
    "telephone": "none",
    "foreign_worker": "yes",
    "monthly_installment": 5951 / 48,
    "installment_burden": 5951 / 48 * 2 / 4,
    "credit_amount_per_age_year": 5951 / 22,
}


def leaks_missing(text: str) -> bool:
    """True if a text shows a raw missing value ("None", "nan", "<NA>") instead of a phrase."""
    return re.search(r"\b(none|nan|na)\b|<NA>", text) is not None or "None" in text


def raw_rows(n: int = 1, **overrides: object) -> pd.DataFrame:
    return pd.DataFrame([{**APPLICANT, **overrides}] * n)


def contributions(
    rows: list[dict[str, float]], encoder: FeatureEncoder | None = None, bias: float = -1.0
) -> pd.DataFrame:
    """A contribution frame with every encoded feature, zero unless given (by default the
    features of FeatureEncoder.for_dataset(german()))."""
    encoder = encoder or FeatureEncoder.for_dataset(german())
    frame = pd.DataFrame(0.0, index=range(len(rows)), columns=encoder.feature_names)
    for i, row in enumerate(rows):
        for name, value in row.items():
            frame.loc[i, name] = value
    frame["bias"] = bias
    return frame


def one_hot(column: str, category: str) -> str:
    return f"{column}__{safe_name(category)}"


def features(reasons: list[dict]) -> list[str]:
    return [r["feature"] for r in reasons]

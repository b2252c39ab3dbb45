"""The adverse-action reason catalogue: a stable code and the applicant-facing phrasing of every
raw column a reason may name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from app.dataset.wording import amount, count, whole


def _installment_rate(value: float) -> str:
    # The data codes the installment rate 1-4, higher meaning a larger share of income (as in
    # app.features.transforms); only the upper half is worth calling "high".
    if value >= 3:
        return f"Installments take a high share of disposable income ({whole(value)} of 4)"
    return f"Installment share of disposable income ({whole(value)} of 4)"


@dataclass(frozen=True)
class Reason:
    """The reason code of one raw column and how to phrase it for a given applicant value.

    A categorical reason has a text per schema category; a numeric one formats the value.
    Missing values (and categories the schema does not know, which the encoder also treats as
    missing) get "No information on <subject>".
    """

    code: str
    subject: str
    texts: Mapping[str, str] = field(default_factory=dict)
    number: Callable[[float], str] | None = None

    @property
    def missing_text(self) -> str:
        return f"No information on {self.subject}"

    def describe(self, value: object) -> str:
        return str(self.describe_many(np.array([value], dtype="object"))[0])

    def describe_many(self, values: np.ndarray) -> np.ndarray:
        """describe() over an array, formatting each distinct value once (no pandas: the
        request path calls this for a handful of values per decision)."""
        if self.number is None:
            missing = self.missing_text
            return np.array([self.texts.get(v, missing) for v in values], dtype="object")
        out = np.empty(len(values), dtype="object")
        texts: dict[float, str] = {}
        for i, value in enumerate(values):
            number = as_float(value)
            if number != number or number in (np.inf, -np.inf):
                out[i] = self.missing_text
                continue
            text = texts.get(number)
            if text is None:
                text = texts[number] = self.number(number)
            out[i] = text
        return out


def as_float(value: object) -> float:
    """A number as float, anything else (None, text that is not a number) as NaN."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


# Codes are part of the adverse-action record and of downstream reporting: NEVER renumber or
# reuse one. A new column gets the next unused number; a retired column keeps its code reserved.
# R01-R99 are raw model columns; protected columns (sex/marital status, nationality) have no code
# on purpose, because they must never be given as a reason for a decision.
REASONS: Mapping[str, Reason] = MappingProxyType(
    {
        "status_of_existing_checking_account": Reason(
            "R01",
            "checking account",
            {
                "... < 0 DM": "Checking account balance below 0 DM",
                "0 <= ... < 200 DM": "Checking account balance below 200 DM",
                "... >= 200 DM / salary assignments for at least 1 year": (
                    "Checking account balance of 200 DM or more, or salary paid in for at "
                    "least one year"
                ),
                "no checking account": "No checking account with the bank",
            },
        ),
        "duration_in_month": Reason(
            "R02",
            "loan duration",
            number=lambda v: f"Loan duration of {count(v, 'month', 'months')}",
        ),
        "credit_history": Reason(
            "R03",
            "credit history",
            {
                "no credits taken/ all credits paid back duly": (
                    "No credits taken before, or all credits paid back duly"
                ),
                "all credits at this bank paid back duly": (
                    "All credits at this bank paid back duly"
                ),
                "existing credits paid back duly till now": (
                    "Existing credits still being repaid (duly so far)"
                ),
                "delay in paying off in the past": "Delays in paying off credit in the past",
                "critical account/ other credits existing (not at this bank)": (
                    "Critical account or other credits at other banks"
                ),
            },
        ),
        "purpose": Reason(
            "R04",
            "loan purpose",
            {
                "car (new)": "Loan purpose: new car",
                "car (used)": "Loan purpose: used car",
                "furniture/equipment": "Loan purpose: furniture or equipment",
                "radio/television": "Loan purpose: radio or television",
                "domestic appliances": "Loan purpose: domestic appliances",
                "repairs": "Loan purpose: repairs",
                "education": "Loan purpose: education",
                "retraining": "Loan purpose: retraining",
                "business": "Loan purpose: business",
                "others": "Loan purpose: other",
            },
        ),
        "credit_amount": Reason(
            "R05", "credit amount", number=lambda v: f"Credit amount of {amount(v)} DM"
        ),
        "savings_account_and_bonds": Reason(
            "R06",
            "savings",
            {
                "... < 100 DM": "Savings below 100 DM",
                "100 <= ... < 500 DM": "Savings below 500 DM",
                "500 <= ... < 1000 DM": "Savings below 1,000 DM",
                "... >= 1000 DM": "Savings of 1,000 DM or more",
                "unknown/ no savings account": "No savings account or savings unknown",
            },
        ),
        "present_employment_since": Reason(
            "R07",
            "employment",
            {
                "unemployed": "Currently unemployed",
                "... < 1 year": "Employed for less than one year",
                "1 <= ... < 4 years": "Employed for less than four years",
                "4 <= ... < 7 years": "Employed for less than seven years",
                "... >= 7 years": "Employed for seven years or more",
            },
        ),
        "installment_rate_in_percentage_of_disposable_income": Reason(
            "R08", "installment rate", number=_installment_rate
        ),
        "other_debtors_or_guarantors": Reason(
            "R09",
            "co-applicants or guarantors",
            {
                "none": "No co-applicant or guarantor",
                "co-applicant": "Loan shared with a co-applicant",
                "guarantor": "Loan backed by a guarantor",
            },
        ),
        "present_residence_since": Reason(
            "R10",
            "length of residence",
            # Coded 1-4 in the data (longer = higher), not in years.
            number=lambda v: f"Time at current residence (level {whole(v)} of 4)",
        ),
        "property": Reason(
            "R11",
            "property",
            # The data's property attribute is hierarchical: each level means "none of the above".
            {
                "real estate": "Owns real estate",
                "building society savings agreement/ life insurance": (
                    "No real estate; building society savings or life insurance only"
                ),
                "car or other, not in attribute Savings account/bonds": (
                    "No real estate, building society savings or life insurance; car or other "
                    "property only"
                ),
                "unknown / no property": "No property or property unknown",
            },
        ),
        "age_in_years": Reason("R12", "age", number=lambda v: f"Age of applicant ({whole(v)})"),
        "other_installment_plans": Reason(
            "R13",
            "other installment plans",
            {
                "bank": "Other installment plans with banks",
                "stores": "Other installment plans with stores",
                "none": "No other installment plans",
            },
        ),
        "housing": Reason(
            "R14",
            "housing",
            {
                "rent": "Lives in rented housing",
                "own": "Owns the home lived in",
                "for free": "Lives rent-free without owning the home",
            },
        ),
        "number_of_existing_credits_at_this_bank": Reason(
            "R15",
            "existing credits at this bank",
            number=lambda v: f"{count(v, 'existing credit', 'existing credits')} at this bank",
        ),
        "job": Reason(
            "R16",
            "occupation",
            {
                "unemployed/ unskilled - non-resident": "Unemployed or unskilled (non-resident)",
                "unskilled - resident": "Unskilled worker",
                "skilled employee / official": "Skilled employee or official",
                "management/ self-employed/ highly qualified employee/ officer": (
                    "Management, self-employed or highly qualified employee"
                ),
            },
        ),
        "number_of_people_being_liable_to_provide_maintenance_for": Reason(
            "R17",
            "dependants",
            number=lambda v: f"{count(v, 'person', 'people')} financially dependent on applicant",
        ),
        "telephone": Reason(
            "R18",
            "telephone",
            {
                "none": "No telephone registered",
                "yes, registered under the customers name": (
                    "Telephone registered under the applicant's name"
                ),
            },
        ),
        "monthly_installment": Reason(
            "R19", "monthly installment", number=lambda v: f"Monthly installment of {amount(v)} DM"
        ),
        "installment_burden": Reason(
            "R20",
            "repayment burden",
            # monthly installment x installment rate / 4 (app.features.transforms).
            number=lambda v: (
                f"Repayment burden on disposable income ({amount(v)} DM installment "
                "weighted by income share)"
            ),
        ),
        "credit_amount_per_age_year": Reason(
            "R21",
            "credit amount relative to age",
            number=lambda v: f"Credit amount relative to age ({amount(v)} DM per year of age)",
        ),
    }
)

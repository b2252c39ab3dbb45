"""The German credit data as the code declared it before the dataset spec did (app/data/schema.py
until then): the reference test_german_spec.py holds the shipped spec equal to, value for value."""

from __future__ import annotations

import pyarrow as pa

from app.dataset.tables import TableSpec

LABEL = "is_default"  # 1 = bad credit (defaulted), 0 = good
RAW_LABEL = "creditability"  # the shipped CSV's label: "good" / "bad"

CATEGORIES: dict[str, tuple[str, ...]] = {
    "status_of_existing_checking_account": (
        "... < 0 DM",
        "0 <= ... < 200 DM",
        "... >= 200 DM / salary assignments for at least 1 year",
        "no checking account",
    ),
    "credit_history": (
        "no credits taken/ all credits paid back duly",
        "all credits at this bank paid back duly",
        "existing credits paid back duly till now",
        "delay in paying off in the past",
        "critical account/ other credits existing (not at this bank)",
    ),
    "purpose": (
        "car (new)",
        "car (used)",
        "furniture/equipment",
        "radio/television",
        "domestic appliances",
        "repairs",
        "education",
        "retraining",
        "business",
        "others",
    ),
    "savings_account_and_bonds": (
        "... < 100 DM",
        "100 <= ... < 500 DM",
        "500 <= ... < 1000 DM",
        "... >= 1000 DM",
        "unknown/ no savings account",
    ),
    "present_employment_since": (
        "unemployed",
        "... < 1 year",
        "1 <= ... < 4 years",
        "4 <= ... < 7 years",
        "... >= 7 years",
    ),
    "personal_status_and_sex": (
        "male : divorced/separated",
        "female : divorced/separated/married",
        "male : single",
        "male : married/widowed",
    ),
    "other_debtors_or_guarantors": ("none", "co-applicant", "guarantor"),
    "property": (
        "real estate",
        "building society savings agreement/ life insurance",
        "car or other, not in attribute Savings account/bonds",
        "unknown / no property",
    ),
    "other_installment_plans": ("bank", "stores", "none"),
    "housing": ("rent", "own", "for free"),
    "job": (
        "unemployed/ unskilled - non-resident",
        "unskilled - resident",
        "skilled employee / official",
        "management/ self-employed/ highly qualified employee/ officer",
    ),
    "telephone": ("none", "yes, registered under the customers name"),
    "foreign_worker": ("yes", "no"),
}

# Inclusive ranges a plausible application falls in; wider than the shipped data on purpose.
RANGES: dict[str, tuple[int, int]] = {
    "duration_in_month": (1, 120),
    "credit_amount": (1, 1_000_000),
    "installment_rate_in_percentage_of_disposable_income": (1, 4),
    "present_residence_since": (1, 4),
    "age_in_years": (18, 100),
    "number_of_existing_credits_at_this_bank": (1, 10),
    "number_of_people_being_liable_to_provide_maintenance_for": (1, 10),
    LABEL: (0, 1),
}


_TS = pa.timestamp("us", tz="UTC")

PROFILE = TableSpec(
    name="applicant_profile",
    key="applicant_id",
    timestamp="event_timestamp",
    unique_key=("applicant_id", "event_timestamp"),
    columns={
        "applicant_id": pa.string(),
        "event_timestamp": _TS,
        "age_in_years": pa.int64(),
        "personal_status_and_sex": pa.string(),
        "job": pa.string(),
        "housing": pa.string(),
        "property": pa.string(),
        "present_residence_since": pa.int64(),
        "number_of_people_being_liable_to_provide_maintenance_for": pa.int64(),
        "telephone": pa.string(),
        "foreign_worker": pa.string(),
    },
)

FINANCIALS = TableSpec(
    name="applicant_financials",
    key="applicant_id",
    timestamp="event_timestamp",
    unique_key=("applicant_id", "event_timestamp"),
    columns={
        "applicant_id": pa.string(),
        "event_timestamp": _TS,
        "status_of_existing_checking_account": pa.string(),
        "savings_account_and_bonds": pa.string(),
        "credit_history": pa.string(),
        "number_of_existing_credits_at_this_bank": pa.int64(),
        "present_employment_since": pa.string(),
        "other_debtors_or_guarantors": pa.string(),
        "other_installment_plans": pa.string(),
    },
)

APPLICATIONS = TableSpec(
    name="loan_applications",
    key="application_id",
    timestamp="application_timestamp",
    unique_key=("application_id",),
    columns={
        "application_id": pa.string(),
        "applicant_id": pa.string(),
        "application_timestamp": _TS,
        "credit_amount": pa.int64(),
        "duration_in_month": pa.int64(),
        "purpose": pa.string(),
        "installment_rate_in_percentage_of_disposable_income": pa.int64(),
        LABEL: pa.int64(),
    },
)

TABLES: dict[str, TableSpec] = {t.name: t for t in (PROFILE, FINANCIALS, APPLICATIONS)}

# Columns the application carries at request time (not looked up in the feature store).
REQUEST_COLUMNS: tuple[str, ...] = (
    "credit_amount",
    "duration_in_month",
    "purpose",
    "installment_rate_in_percentage_of_disposable_income",
)

# The shipped CSV's columns (and a synthetic frame's): every raw feature plus the raw label.
RAW_COLUMNS: tuple[str, ...] = tuple(
    dict.fromkeys(
        [c for t in TABLES.values() for c in t.feature_columns if c not in ("applicant_id", LABEL)]
        + [RAW_LABEL]
    )
)

"""The synthetic generator: valid, deterministic, faithful to the real data, drifts on demand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.config import SHIPPED_DATA_PATH
from app.data.fidelity import AUC_BAR, real_vs_synthetic_auc
from app.data.schema import CATEGORIES, LABEL, RANGES, RAW_COLUMNS, RAW_LABEL
from app.data.synthetic import NUMERIC_COLUMNS, SHIFTS, generate_raw
from app.data.warehouse import build_warehouse_tables, load_raw
from tests.utils.datasets import german, validated

N = 30_000
SEED = 7
CHECKING = "status_of_existing_checking_account"


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    return load_raw(SHIPPED_DATA_PATH, german())


@pytest.fixture(scope="module")
def base(real: pd.DataFrame) -> pd.DataFrame:
    return generate_raw(real, N, SEED)


@pytest.fixture(scope="module")
def shifted(real: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {name: generate_raw(real, N, SEED, shift=name) for name in SHIFTS}


def bad_rate(df: pd.DataFrame) -> float:
    return float((df[RAW_LABEL] == "bad").mean())


def share(df: pd.DataFrame, col: str, *values: str) -> float:
    return float(df[col].isin(values).mean())


def cramers_v(df: pd.DataFrame, a: str, b: str) -> float:
    table = pd.crosstab(df[a], df[b]).to_numpy()
    n = table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    chi2 = ((table - expected) ** 2 / expected).sum()
    return float(np.sqrt(chi2 / n / (min(table.shape) - 1)))


def assert_valid(df: pd.DataFrame, real: pd.DataFrame) -> None:
    assert list(df.columns) == list(real.columns)
    assert not df.isna().any().any()
    for col, allowed in CATEGORIES.items():
        assert set(df[col].unique()) <= set(allowed), col
    for col in NUMERIC_COLUMNS:
        low, high = RANGES[col]
        assert df[col].dtype == np.int64, col
        assert df[col].between(low, high).all(), col
    assert set(df[RAW_LABEL].unique()) <= {"good", "bad"}


# --- format and determinism --------------------------------------------------------------------


def test_same_seed_same_frame_other_seed_other_frame(real: pd.DataFrame, base: pd.DataFrame):
    pd.testing.assert_frame_equal(base, generate_raw(real, N, SEED))
    assert not base.equals(generate_raw(real, N, SEED + 1))


def test_output_matches_the_raw_format_and_schema(real: pd.DataFrame, base: pd.DataFrame):
    assert len(base) == N
    assert set(RAW_COLUMNS) <= set(base.columns)
    assert_valid(base, real)
    # Unshifted numerics also stay inside what the real file holds.
    for col in NUMERIC_COLUMNS:
        assert base[col].min() >= real[col].min(), col
        assert base[col].max() <= real[col].max(), col


def test_label_rate_matches_real(real: pd.DataFrame, base: pd.DataFrame):
    assert abs(bad_rate(base) - bad_rate(real)) <= 0.01


def test_rows_are_perturbed_not_copied(real: pd.DataFrame, base: pd.DataFrame):
    copies = base.merge(real.drop_duplicates(), how="inner", on=list(real.columns))
    assert len(copies) / len(base) < 0.2
    # ... yet not so much that continuous values wander: amounts stay within ~2x of the real mean.
    assert base["credit_amount"].mean() == pytest.approx(real["credit_amount"].mean(), rel=0.05)
    assert base["age_in_years"].mean() == pytest.approx(real["age_in_years"].mean(), abs=1.0)


def test_joint_structure_is_kept(real: pd.DataFrame, base: pd.DataFrame):
    # Feature -> label: the default rate per checking-account status matches the real one.
    real_rates = real.groupby(CHECKING)[RAW_LABEL].apply(lambda s: (s == "bad").mean())
    synth_rates = base.groupby(CHECKING)[RAW_LABEL].apply(lambda s: (s == "bad").mean())
    assert (synth_rates - real_rates).abs().max() <= 0.05
    # Feature <-> feature: longer loans are larger loans, as strongly as in the real data.
    real_corr = real["duration_in_month"].corr(real["credit_amount"])
    synth_corr = base["duration_in_month"].corr(base["credit_amount"])
    assert abs(synth_corr - real_corr) <= 0.05
    # Category <-> category: associations the label does not explain (owning a home and real
    # estate; skilled jobs and a telephone) survive the per-cell swaps almost undiluted.
    for a, b in (("housing", "property"), ("job", "telephone")):
        assert cramers_v(base, a, b) >= 0.85 * cramers_v(real, a, b), (a, b)
    # Durations keep the real lumps (12, 24, 36 ... months), not a smear over every month.
    assert set(base["duration_in_month"].unique()) <= set(real["duration_in_month"].unique())


def test_warehouse_tables_build_from_synthetic_rows(real: pd.DataFrame):
    raw = generate_raw(real, 5_000, SEED)
    tables = build_warehouse_tables(raw, german(), seed=SEED, id_prefix="S")
    assert {len(t) for t in tables.values()} == {5_000}
    applications = validated(tables)["loan_applications"]
    assert applications["applicant_id"].str.startswith("S").all()
    assert applications[LABEL].mean() == pytest.approx(bad_rate(raw))


def test_bad_arguments_raise(real: pd.DataFrame):
    with pytest.raises(ValueError, match="n must be"):
        generate_raw(real, -1, SEED)
    broken = real.copy()
    broken.loc[0, "purpose"] = "yacht"
    with pytest.raises(ValueError, match="purpose"):
        generate_raw(broken, 10, SEED)
    with pytest.raises(ValueError, match="lacks columns"):
        generate_raw(real.drop(columns=["age_in_years"]), 10, SEED)


def test_zero_rows_is_an_empty_frame_with_the_columns(real: pd.DataFrame):
    empty = generate_raw(real, 0, SEED)
    assert len(empty) == 0
    assert list(empty.columns) == list(real.columns)


# --- fidelity: a model trained on synthetic rows scores real rows as well --------------------


@pytest.mark.parametrize("seed", range(5))
def test_synthetic_trained_model_is_as_good_on_real_rows(real: pd.DataFrame, seed: int):
    result = real_vs_synthetic_auc(real, n_synthetic=20_000, seed=seed)
    assert result["auc_real"] >= 0.74  # the model itself is a sensible one
    assert abs(result["auc_difference"]) <= AUC_BAR, result


# --- shifts ------------------------------------------------------------------------------------


def test_unknown_shift_raises_and_names_the_valid_ones(real: pd.DataFrame):
    with pytest.raises(ValueError, match="younger_applicants") as err:
        generate_raw(real, 10, SEED, shift="recession")
    assert all(name in str(err.value) for name in SHIFTS)


@pytest.mark.parametrize("name", sorted(SHIFTS))
def test_shift_stays_valid_and_leaves_other_columns_alone(
    real: pd.DataFrame, base: pd.DataFrame, shifted: dict[str, pd.DataFrame], name: str
):
    frame = shifted[name]
    assert_valid(frame, real)
    moved = set(SHIFTS[name].columns)
    for col in base.columns:
        if col in moved:
            assert not frame[col].equals(base[col]), f"{name} did not move {col}"
        else:
            pd.testing.assert_series_equal(frame[col], base[col], obj=f"{name}: {col}")


def test_younger_applicants(base: pd.DataFrame, shifted: dict[str, pd.DataFrame]):
    frame = shifted["younger_applicants"]
    assert base["age_in_years"].mean() - frame["age_in_years"].mean() >= 5
    # Compressed, not piled up at the lower bound.
    assert (frame["age_in_years"] == RANGES["age_in_years"][0]).mean() < 0.2


def test_larger_loans(base: pd.DataFrame, shifted: dict[str, pd.DataFrame]):
    frame = shifted["larger_loans"]
    assert frame["credit_amount"].mean() >= 1.3 * base["credit_amount"].mean()
    assert frame["duration_in_month"].mean() >= 1.2 * base["duration_in_month"].mean()


def test_checking_deterioration(base: pd.DataFrame, shifted: dict[str, pd.DataFrame]):
    frame = shifted["checking_deterioration"]
    overdrawn = share(frame, CHECKING, "... < 0 DM") - share(base, CHECKING, "... < 0 DM")
    assert overdrawn >= 0.15
    delay = "delay in paying off in the past"
    assert share(frame, "credit_history", delay) - share(base, "credit_history", delay) >= 0.10


def test_purpose_mix(base: pd.DataFrame, shifted: dict[str, pd.DataFrame]):
    frame = shifted["purpose_mix"]
    targets = ("car (new)", "business")
    assert share(frame, "purpose", *targets) - share(base, "purpose", *targets) >= 0.20


def test_higher_default_rate(base: pd.DataFrame, shifted: dict[str, pd.DataFrame]):
    frame = shifted["higher_default_rate"]
    assert bad_rate(frame) == pytest.approx(0.45, abs=0.01)
    # Only good rows were relabelled, and the risky-looking ones first: the default rate rises
    # more among overdrawn applicants than among those without a checking account.
    assert not ((base[RAW_LABEL] == "bad") & (frame[RAW_LABEL] == "good")).any()

    def rise(status: str) -> float:
        rows = base[CHECKING] == status
        return bad_rate(frame[rows]) - bad_rate(base[rows])

    assert rise("... < 0 DM") > rise("no checking account")

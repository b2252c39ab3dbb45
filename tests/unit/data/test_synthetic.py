"""The synthetic generator: valid, deterministic, faithful to the real data, drifts on demand;
driven by the dataset spec, so it works the same for a spec that is not German credit."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import yaml

from app.config import SHIPPED_DATA_PATH
from app.data.fidelity import AUC_BAR, real_vs_synthetic_auc
from app.data.ingest_table import validate_frame
from app.data.synthetic import generate_raw, shifted_columns, source_columns
from app.data.warehouse import build_warehouse_tables, load_raw
from app.dataset import Dataset, load_dataset
from tests.utils.datasets import german, validated

N = 30_000
SEED = 7
CHECKING = "status_of_existing_checking_account"
GERMAN_SHIFTS = (
    "younger_applicants",
    "larger_loans",
    "checking_deterioration",
    "purpose_mix",
    "higher_default_rate",
)


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    return load_raw(SHIPPED_DATA_PATH, german())


@pytest.fixture(scope="module")
def base(real: pd.DataFrame) -> pd.DataFrame:
    return generate_raw(real, N, SEED, dataset=german())


@pytest.fixture(scope="module")
def shifted(real: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {name: generate_raw(real, N, SEED, name, dataset=german()) for name in GERMAN_SHIFTS}


def bad_rate(df: pd.DataFrame) -> float:
    return float((df["creditability"] == "bad").mean())


def share(df: pd.DataFrame, col: str, *values: str) -> float:
    return float(df[col].isin(values).mean())


def cramers_v(df: pd.DataFrame, a: str, b: str) -> float:
    table = pd.crosstab(df[a], df[b]).to_numpy()
    n = table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    chi2 = ((table - expected) ** 2 / expected).sum()
    return float(np.sqrt(chi2 / n / (min(table.shape) - 1)))


def assert_valid(df: pd.DataFrame, real: pd.DataFrame) -> None:
    dataset = german()
    assert list(df.columns) == list(real.columns)
    assert not df.isna().any().any()
    for col, allowed in dataset.categories.items():
        assert set(df[col].unique()) <= set(allowed), col
    for col, (low, high) in dataset.ranges.items():
        assert df[col].dtype == np.int64, col
        assert df[col].between(low, high).all(), col
    assert set(df["creditability"].unique()) <= {"good", "bad"}


# --- German output is exactly what the generator made before it read the spec -----------------

# sha256 (first 16 hex) of each frame's dtypes and pandas row hashes, recorded with the
# generator of commit accf0bf (German constants in app/data/synthetic.py), keyed n/seed/shift.
GOLDEN = {
    "0/1/None": "79de5e6a9d130c1f",
    "1/3/None": "78893aa8e3bf6102",
    "1/3/younger_applicants": "1868b504a7e7e63a",
    "1/3/larger_loans": "b78e850837c01769",
    "1/3/checking_deterioration": "877f3f911b98084f",
    "1/3/purpose_mix": "c5ce85a32a1712c0",
    "1/3/higher_default_rate": "78893aa8e3bf6102",
    "7/5/None": "af2da707b5b88ca5",
    "7/5/younger_applicants": "a47a3cb2b7ebf938",
    "7/5/larger_loans": "cf6f5f221543c491",
    "7/5/checking_deterioration": "63417f6845ffd8ac",
    "7/5/purpose_mix": "9193900557950b89",
    "7/5/higher_default_rate": "f39fbf1a07f94f5b",
    "2000/0/None": "588e3024df8b50a1",
    "2000/0/younger_applicants": "5fb25063eeb4adcc",
    "2000/0/larger_loans": "67c5df77b6d48350",
    "2000/0/checking_deterioration": "941dbb9cd2c24e7e",
    "2000/0/purpose_mix": "f9c67cd4c29302cd",
    "2000/0/higher_default_rate": "e4049ce0c533b8f9",
    "5000/42/None": "67587620e87787df",
    "5000/42/younger_applicants": "8b93cc0ded1c70dd",
    "5000/42/larger_loans": "0d2d5fa5945a849b",
    "5000/42/checking_deterioration": "d12953d29a36d35a",
    "5000/42/purpose_mix": "53a842a78e69f47c",
    "5000/42/higher_default_rate": "e044b7e97bec3960",
}
# The module fixtures' frames (N rows, SEED), checked without generating them again.
GOLDEN_FIXTURES = {
    "None": "e26401e1e3d8bf7a",
    "younger_applicants": "772ba1b9998dc3ea",
    "larger_loans": "4a01f5832ecb5114",
    "checking_deterioration": "b41202d66b3a263b",
    "purpose_mix": "d2d55d1bdb5e32d2",
    "higher_default_rate": "0c6322fecb3be9ec",
}


def digest(df: pd.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(repr([(c, str(t)) for c, t in df.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_german_frames_are_byte_for_byte_the_pre_spec_ones(real: pd.DataFrame, key: str):
    n, seed, shift = key.split("/")
    frame = generate_raw(
        real, int(n), int(seed), None if shift == "None" else shift, dataset=german()
    )
    assert digest(frame) == GOLDEN[key]


def test_german_fixture_frames_are_the_pre_spec_ones(base, shifted):
    frames = {"None": base, **shifted}
    assert {name: digest(frame) for name, frame in frames.items()} == GOLDEN_FIXTURES


def test_the_german_shifts_are_the_spec_ones():
    assert tuple(german().spec.synthetic.shifts) == GERMAN_SHIFTS


# --- format and determinism --------------------------------------------------------------------


def test_same_seed_same_frame_other_seed_other_frame(real: pd.DataFrame, base: pd.DataFrame):
    pd.testing.assert_frame_equal(base, generate_raw(real, N, SEED, dataset=german()))
    assert not base.equals(generate_raw(real, N, SEED + 1, dataset=german()))


def test_output_matches_the_raw_format_and_schema(real: pd.DataFrame, base: pd.DataFrame):
    assert len(base) == N
    assert set(german().raw_columns) <= set(base.columns)
    assert_valid(base, real)
    # Unshifted numerics also stay inside what the real file holds.
    for col in german().ranges:
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
    real_rates = real.groupby(CHECKING)["creditability"].apply(lambda s: (s == "bad").mean())
    synth_rates = base.groupby(CHECKING)["creditability"].apply(lambda s: (s == "bad").mean())
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
    raw = generate_raw(real, 5_000, SEED, dataset=german())
    tables = build_warehouse_tables(raw, german(), seed=SEED, id_prefix="S")
    assert {len(t) for t in tables.values()} == {5_000}
    applications = validated(tables)["loan_applications"]
    assert applications["applicant_id"].str.startswith("S").all()
    assert applications[german().label].mean() == pytest.approx(bad_rate(raw))


def test_bad_arguments_raise(real: pd.DataFrame):
    with pytest.raises(ValueError, match="n must be"):
        generate_raw(real, -1, SEED, dataset=german())
    broken = real.copy()
    broken.loc[0, "purpose"] = "yacht"
    with pytest.raises(ValueError, match="purpose"):
        generate_raw(broken, 10, SEED, dataset=german())
    with pytest.raises(ValueError, match="lacks columns"):
        generate_raw(real.drop(columns=["age_in_years"]), 10, SEED, dataset=german())
    one_class = real[real["creditability"] == "good"]
    with pytest.raises(ValueError, match="must hold both 'bad' and 'good'"):
        generate_raw(one_class, 10, SEED, dataset=german())


def test_zero_rows_is_an_empty_frame_with_the_columns(real: pd.DataFrame):
    for shift in (None, *GERMAN_SHIFTS):
        empty = generate_raw(real, 0, SEED, shift, dataset=german())
        assert len(empty) == 0
        assert list(empty.columns) == list(real.columns)


# --- fidelity: a model trained on synthetic rows scores real rows as well --------------------


@pytest.mark.parametrize("seed", range(5))
def test_synthetic_trained_model_is_as_good_on_real_rows(real: pd.DataFrame, seed: int):
    result = real_vs_synthetic_auc(real, n_synthetic=20_000, seed=seed, dataset=german())
    assert result["auc_real"] >= 0.74  # the model itself is a sensible one
    assert abs(result["auc_difference"]) <= AUC_BAR, result


# --- shifts ------------------------------------------------------------------------------------


def test_unknown_shift_raises_and_names_the_valid_ones(real: pd.DataFrame):
    with pytest.raises(ValueError, match="younger_applicants") as err:
        generate_raw(real, 10, SEED, shift="recession", dataset=german())
    assert all(name in str(err.value) for name in GERMAN_SHIFTS)


@pytest.mark.parametrize("name", GERMAN_SHIFTS)
def test_shift_stays_valid_and_leaves_other_columns_alone(
    real: pd.DataFrame, base: pd.DataFrame, shifted: dict[str, pd.DataFrame], name: str
):
    frame = shifted[name]
    assert_valid(frame, real)
    moved = set(shifted_columns(german(), name))
    for col in base.columns:
        if col in moved:
            assert not frame[col].equals(base[col]), f"{name} did not move {col}"
        else:
            pd.testing.assert_series_equal(frame[col], base[col], obj=f"{name}: {col}")


def test_younger_applicants(base: pd.DataFrame, shifted: dict[str, pd.DataFrame]):
    frame = shifted["younger_applicants"]
    assert base["age_in_years"].mean() - frame["age_in_years"].mean() >= 5
    # Compressed, not piled up at the lower bound.
    assert (frame["age_in_years"] == german().ranges["age_in_years"][0]).mean() < 0.2


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
    assert not ((base["creditability"] == "bad") & (frame["creditability"] == "good")).any()

    def rise(status: str) -> float:
        rows = base[CHECKING] == status
        return bad_rate(frame[rows]) - bad_rate(base[rows])

    assert rise("... < 0 DM") > rise("no checking account")


# --- another spec: gaps, sentinels, odd source names, a 0/1 label ------------------------------

LOANS_SPEC = {
    "name": "loans",
    "entity": {"name": "borrower", "key": "borrower_id"},
    "columns": {
        "income": {
            "type": "float",
            "source": "MonthlyIncome",
            "range": [0, 100000],
            "nullable": True,
        },
        "late": {
            "type": "int",
            "source": "Times-Late",
            "range": [0, 20],
            "nullable": True,
            "missing_codes": [98],
        },
        "utilization": {
            "type": "float",
            "source": "RevolvingUtilization",
            "range": [0, 1],
            "nullable": True,
            "out_of_range": "missing",
        },
        "region": {"type": "category", "categories": ["n", "s", "e"]},
        "has_phone": {"type": "bool", "source": "HasPhone"},
        "dependants": {"type": "int", "source": "NumberOfDependents", "range": [0, 10]},
        "amount": {"type": "int", "source": "LoanAmount", "range": [100, 50000]},
    },
    "label": {"name": "bad", "source": "SeriousDlqin2yrs", "positive": 1, "negative": 0},
    "sources": {
        "tables": {
            "bureau": {
                "timestamp": "event_timestamp",
                "ttl_days": 90,
                "columns": ["income", "late", "utilization", "region", "has_phone", "dependants"],
            },
            "applications": {
                "role": "spine",
                "key": "application_id",
                "timestamp": "application_timestamp",
                "columns": ["amount", "bad"],
            },
        }
    },
    "features": {"request": ["amount"]},
    "reasons": {
        "codes": {
            "amount": {"code": "R01", "subject": "amount", "text": "Amount {value|money}"},
            "income": {"code": "R02", "subject": "income", "text": "Income {value|money}"},
            "late": {"code": "R03", "subject": "delinquency", "text": "{value|count:time} late"},
            "utilization": {"code": "R04", "subject": "utilization", "text": "{value|decimal}"},
            "region": {"code": "R05", "subject": "region"},
            "has_phone": {"code": "R06", "subject": "telephone"},
            "dependants": {"code": "R07", "subject": "dependants", "text": "{value|whole}"},
        }
    },
    "synthetic": {
        "jitter": {
            "income": {"sigma": 0.1},
            "late": {"offset": 1},
            "utilization": {"sigma": 0.2},
            "amount": {"sigma": 0.1, "snap": True},
        },
        "swap_probability": 0.1,
        "shifts": {
            "income_drop": {
                "description": "incomes ~30% lower",
                "changes": [{"column": "income", "scale": {"factor": 0.7, "sigma": 0.05}}],
            },
            "north_and_late": {
                "changes": [
                    {"column": "region", "replace": {"probability": 0.5, "values": {"n": 1}}},
                    {"column": "late", "replace": {"probability": 0.3, "values": {5: 2, 6: 1}}},
                ]
            },
            "downturn": {"changes": [{"column": "bad", "label_rate": 0.4}]},
        },
    },
}
INCOME, LATE, LABEL = "MonthlyIncome", "Times-Late", "SeriousDlqin2yrs"
UTILIZATION = "RevolvingUtilization"


@pytest.fixture(scope="module")
def loans(tmp_path_factory) -> Dataset:
    directory = tmp_path_factory.mktemp("loans")
    (directory / "dataset.yaml").write_text(yaml.safe_dump(LOANS_SPEC, sort_keys=False))
    return load_dataset(directory)


@pytest.fixture(scope="module")
def loans_real() -> pd.DataFrame:
    """2,000 borrowers: ~20% unknown incomes, ~10% late counts coded 98, ~3% absurd
    utilizations (data errors the spec reads as missing), risk tied to the counts."""
    rng = np.random.default_rng(11)
    n = 2000
    income = np.round(rng.lognormal(8, 0.5, n), 2)
    income[rng.random(n) < 0.2] = np.nan
    late = rng.poisson(1.0, n).clip(0, 20)
    late[rng.random(n) < 0.1] = 98
    utilization = rng.beta(2, 5, n)
    utilization[rng.random(n) < 0.03] = rng.choice([3.5, 1200.0])
    region = rng.choice(["n", "s", "e"], n, p=[0.5, 0.3, 0.2])
    risk = 0.1 + 0.1 * (late == 2) + 0.2 * (late >= 3) * (late != 98) + 0.15 * (region == "e")
    bad = (rng.random(n) < risk).astype(np.int64)
    # Columns in an order of their own: the output follows the file's order.
    return pd.DataFrame(
        {
            LABEL: bad,
            "LoanAmount": rng.choice([1000, 2500, 5000, 10000, 20000], n),
            INCOME: income,
            LATE: late,
            UTILIZATION: utilization,
            "region": region,
            "HasPhone": rng.random(n) < 0.7,
            "NumberOfDependents": rng.integers(0, 5, n),
            "note": "ignored",
        }
    )


@pytest.fixture(scope="module")
def loans_base(loans: Dataset, loans_real: pd.DataFrame) -> pd.DataFrame:
    return generate_raw(loans_real, 20_000, SEED, dataset=loans)


def test_another_spec_gives_its_flat_file_format(loans, loans_real, loans_base):
    assert list(loans_base.columns) == [c for c in loans_real.columns if c != "note"]
    assert set(loans_base.columns) == set(loans.raw_columns)
    dtypes = loans_base.dtypes
    assert (dtypes[LABEL], dtypes[LATE], dtypes["LoanAmount"]) == (np.int64,) * 3
    assert (dtypes[INCOME], dtypes[UTILIZATION]) == (np.float64,) * 2
    assert dtypes["HasPhone"] == np.bool_
    assert set(loans_base[LABEL].unique()) == {0, 1}
    assert loans_base[LABEL].mean() == pytest.approx(loans_real[LABEL].mean(), abs=1 / 20_000)
    # Floats stay floats (jittered, not rounded), amounts snap to the real ones.
    assert (loans_base[INCOME].dropna() % 1 != 0).mean() > 0.9
    assert set(loans_base["LoanAmount"]) <= set(loans_real["LoanAmount"])


def test_another_spec_keeps_gaps_and_never_moves_sentinels(loans_real, loans_base):
    # Missing incomes are copied as missing: about the real share, never filled in.
    assert loans_base[INCOME].isna().mean() == pytest.approx(
        loans_real[INCOME].isna().mean(), abs=0.02
    )
    # The sentinel 98 survives as 98 (not jittered to 97/99, not clipped to the range's 20)...
    late = loans_base[LATE]
    assert late.eq(98).mean() == pytest.approx(loans_real[LATE].eq(98).mean(), abs=0.02)
    assert set(late[late != 98]) <= set(range(21))
    # ... while known counts were jittered (by up to 1: wider spread) within the real bounds.
    real_known, known = loans_real[LATE][loans_real[LATE] != 98], late[late != 98]
    assert known.max() <= real_known.max()
    assert known.std() > 1.08 * real_known.std()
    # Out-of-range values the spec reads as missing are copied as they are, not clipped to 1.
    utilization, real_utilization = loans_base[UTILIZATION], loans_real[UTILIZATION]
    absurd = real_utilization[real_utilization > 1]
    assert set(utilization[utilization > 1]) == set(absurd)
    assert (utilization > 1).mean() == pytest.approx(len(absurd) / len(loans_real), abs=0.01)
    assert (utilization <= 1).mean() > 0.9


def test_another_spec_respects_ranges_and_validates(loans, loans_base):
    for column, (low, high) in loans.ranges.items():
        spec = loans.columns[column]
        values = loans_base[source_columns(loans)[column]].dropna()
        values = values[~values.isin(spec.missing_codes)]
        if spec.out_of_range == "reject":  # else such values are kept: ingest reads them so
            assert values.between(low, high).all(), column
    tables = build_warehouse_tables(loans_base, loans, seed=SEED, id_prefix="S")
    for name, table in tables.items():
        valid, rejects = validate_frame(table, loans.tables[name])
        assert len(rejects) == 0, (name, rejects.head())
        assert len(valid) == len(loans_base)
    # Unknown values arrive as missing, as ingest reads the real file's.
    bureau = validate_frame(tables["bureau"], loans.tables["bureau"])[0]
    assert bureau["late"].isna().mean() == pytest.approx(loans_base[LATE].eq(98).mean())


def test_another_spec_shift_moves_only_its_columns(loans, loans_real, loans_base):
    assert shifted_columns(loans, "north_and_late") == ("region", LATE)
    for name in loans.spec.synthetic.shifts:
        frame = generate_raw(loans_real, 20_000, SEED, name, dataset=loans)
        moved = set(shifted_columns(loans, name))
        for col in loans_base.columns:
            if col in moved:
                assert not frame[col].equals(loans_base[col]), f"{name} did not move {col}"
            else:
                pd.testing.assert_series_equal(frame[col], loans_base[col], obj=f"{name}: {col}")
    drop = generate_raw(loans_real, 20_000, SEED, "income_drop", dataset=loans)
    # Gaps stay where they were; known incomes fall by about the factor.
    assert drop[INCOME].isna().equals(loans_base[INCOME].isna())
    assert drop[INCOME].mean() == pytest.approx(0.7 * loans_base[INCOME].mean(), rel=0.03)
    mixed = generate_raw(loans_real, 20_000, SEED, "north_and_late", dataset=loans)
    assert mixed[LATE].dtype == np.int64
    # Sentinels are not overwritten; a share of the known counts become 5 or 6.
    assert mixed[LATE].eq(98).equals(loans_base[LATE].eq(98))
    assert mixed[LATE].isin([5, 6]).mean() - loans_base[LATE].isin([5, 6]).mean() > 0.2
    downturn = generate_raw(loans_real, 20_000, SEED, "downturn", dataset=loans)
    assert downturn[LABEL].mean() == pytest.approx(0.4, abs=0.001)
    assert downturn[LABEL].dtype == np.int64


def test_another_spec_fidelity_runs_with_gaps_and_sentinels(loans, loans_real):
    result = real_vs_synthetic_auc(loans_real, n_synthetic=5_000, seed=0, dataset=loans)
    assert abs(result["auc_difference"]) <= AUC_BAR, result


def test_an_unknown_shift_of_another_spec_names_its_shifts(loans, loans_real):
    with pytest.raises(ValueError, match="valid: downturn, income_drop, north_and_late"):
        generate_raw(loans_real, 10, SEED, "younger_applicants", dataset=loans)

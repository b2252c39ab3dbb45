"""The GMSC-shaped dataset: its generator is deterministic and made the committed file, the file
has GMSC's quirks, and a model learns its label about as well as the real data allows."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from app.data.warehouse import flat_rows, load_raw
from app.dataset import load_dataset
from tests.utils import ROOT

HERE = ROOT / "datasets" / "gmsc"
PAST_DUES = [
    "NumberOfTime30-59DaysPastDueNotWorse",
    "NumberOfTimes90DaysLate",
    "NumberOfTime60-89DaysPastDueNotWorse",
]


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gmsc_generate", HERE / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return pd.read_csv(HERE / "gmsc.csv")


def test_the_committed_file_is_the_scripts_output(tmp_path):
    out = tmp_path / "gmsc.csv"
    result = subprocess.run(
        [sys.executable, str(HERE / "generate.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {out}: 3,000 rows, ")
    assert out.read_bytes() == (HERE / "gmsc.csv").read_bytes()


def test_the_same_seed_gives_the_same_rows(generator):
    first = generator.generate(500, seed=3)
    pd.testing.assert_frame_equal(first, generator.generate(500, seed=3))
    assert not first.equals(generator.generate(500, seed=4))


def test_the_file_has_gmscs_columns_and_quirks(raw):
    assert list(raw.columns) == [
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
    assert len(raw) == 3000
    assert set(raw["SeriousDlqin2yrs"]) == {0, 1}
    assert 0.05 < raw["SeriousDlqin2yrs"].mean() < 0.10
    no_income = raw["MonthlyIncome"].isna()
    assert 0.15 < no_income.mean() < 0.25
    no_dependents = raw["NumberOfDependents"].isna()
    assert no_dependents.sum() > 0 and not (no_dependents & ~no_income).any()
    # Without an income GMSC's DebtRatio is the monthly debt in dollars.
    assert raw.loc[no_income, "DebtRatio"].median() > 50 > raw.loc[~no_income, "DebtRatio"].max()
    assert (raw["RevolvingUtilizationOfUnsecuredLines"] > 1).any()
    assert raw["RevolvingUtilizationOfUnsecuredLines"].dtype == "float64"
    # The unknown-history codes: a few rows, the same code in all three counts.
    coded = raw[PAST_DUES].isin([96, 98])
    assert 0 < coded.all(axis=1).sum() < 20 and (coded.any(axis=1) == coded.all(axis=1)).all()
    assert set(raw.loc[coded.all(axis=1), PAST_DUES[0]]) == {96, 98}
    assert raw[PAST_DUES].where(~coded).max().max() < 20


def test_a_model_learns_the_label_from_the_specs_columns(raw):
    import xgboost as xgb
    from sklearn.metrics import roc_auc_score

    dataset = load_dataset(HERE)
    frame = flat_rows(load_raw(HERE / "gmsc.csv", dataset), dataset, seed=42)
    assert len(frame) == 3000
    # The codes read as missing, never as 96 late payments.
    assert frame["past_due_90_days"].max() < 20 and frame["past_due_90_days"].isna().sum() == 7
    features = frame[list(dataset.model_columns)].astype("float64")
    label = frame[dataset.label].astype(int)
    test = np.random.default_rng(0).random(len(frame)) < 0.3
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "eta": 0.05, "nthread": 1},
        xgb.DMatrix(features[~test], label=label[~test]),
        num_boost_round=200,
    )
    auc = roc_auc_score(label[test], booster.predict(xgb.DMatrix(features[test])))
    assert 0.75 <= auc <= 0.88, auc


@pytest.mark.parametrize("shift", ["lower_incomes", "higher_utilization", "higher_default_rate"])
def test_each_named_shift_moves_only_its_columns_and_stays_valid(shift):
    from app.data.synthetic import generate_raw, shifted_columns

    dataset = load_dataset(HERE)
    real = load_raw(HERE / "gmsc.csv", dataset)
    base = generate_raw(real, 2_000, seed=5, dataset=dataset)
    moved = generate_raw(real, 2_000, seed=5, shift=shift, dataset=dataset)
    changed = [c for c in base.columns if not base[c].equals(moved[c])]
    assert changed == list(shifted_columns(dataset, shift))
    # Shifted rows stay inside the spec: none is rejected at ingest.
    assert len(flat_rows(moved, dataset, seed=5)) == len(moved)

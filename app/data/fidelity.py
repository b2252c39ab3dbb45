"""Fidelity of the synthetic generator: does a model trained on synthetic rows score held-out
real rows as well as one trained on real rows?"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from app.data.synthetic import generate_raw, source_columns
from app.dataset import Dataset

AUC_BAR = 0.05


def _columns(dataset: Dataset) -> tuple[dict[str, tuple[str, ...]], list[str], list[str]]:
    """(category source column -> its codes, other non-numeric source columns, numeric
    source columns), every data column of the flat file, protected ones too: the check is
    about the generator keeping the data's structure, not about a fair model."""
    categories: dict[str, tuple[str, ...]] = {}
    others: list[str] = []
    numeric: list[str] = []
    for canonical, source in source_columns(dataset).items():
        spec = dataset.columns.get(canonical)
        if spec is None:  # the label
            continue
        if spec.type == "category":
            categories[source] = spec.codes
        elif spec.type in ("int", "float"):
            numeric.append(source)
        else:
            others.append(source)
    return categories, others, numeric


def _features(frame: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
    """The flat file's columns as model inputs: text for categories, floats for numbers with
    missing codes (sentinels such as 98) as missing, since they are no amounts."""
    categories, others, numeric = _columns(dataset)
    sources = source_columns(dataset)
    out = {}
    for source in [*categories, *others]:
        text = frame[source].astype("string").str.strip()
        out[source] = text.astype(object).where(text.notna(), np.nan)
    for canonical, source in sources.items():
        if source in numeric:
            numbers = pd.to_numeric(frame[source], errors="coerce").astype("float64")
            codes = dataset.columns[canonical].missing_codes
            out[source] = numbers.mask(frame[source].isin(codes) | numbers.isin(codes))
    return pd.DataFrame(out, index=frame.index)


def _model(dataset: Dataset) -> Any:
    # sklearn only for this check: the generator itself runs on Ray workers without it.
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    categories, others, numeric = _columns(dataset)
    parts: list[tuple[str, Any, list[str]]] = []
    if categories:
        encode = OneHotEncoder(
            categories=[list(c) for c in categories.values()], handle_unknown="ignore"
        )
        parts.append(("categorical", encode, list(categories)))
    if others:
        # Bools and the like: whatever levels the training rows hold, missing as its own.
        fill = SimpleImputer(strategy="constant", fill_value="(missing)")
        encode = OneHotEncoder(handle_unknown="ignore")
        parts.append(("other", make_pipeline(fill, encode), others))
    if numeric:
        # Median for missing values; on a file without gaps this changes nothing.
        scale = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
        parts.append(("numeric", scale, numeric))
    encode = ColumnTransformer(parts)
    return Pipeline([("encode", encode), ("model", LogisticRegression(C=0.3, max_iter=2000))])


def real_vs_synthetic_auc(
    real_df: pd.DataFrame, n_synthetic: int, seed: int, dataset: Dataset
) -> dict[str, Any]:
    """Train one model on real rows and one on synthetic rows; score both on held-out real rows.

    The real data is split 70/30 (stratified, seeded); the generator sees only the 70%, so
    the 30% is unseen by both models. ``auc_difference`` is real-trained minus
    synthetic-trained AUC; the fidelity bar is ``abs(auc_difference) <= AUC_BAR``.
    """
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    label = source_columns(dataset)[dataset.label]
    positive = dataset.spec.label.positive

    def outcome(frame: pd.DataFrame) -> np.ndarray:
        values = frame[label]
        if isinstance(positive, str):
            return values.astype("string").str.strip().eq(positive).fillna(False).to_numpy(int)
        return pd.to_numeric(values, errors="coerce").eq(float(positive)).to_numpy(int)

    train, test = train_test_split(
        real_df, test_size=0.3, stratify=real_df[label], random_state=seed
    )
    synthetic = generate_raw(train, n_synthetic, seed, dataset=dataset)
    x_test, y_test = _features(test, dataset), outcome(test)

    def auc_when_trained_on(frame: pd.DataFrame) -> float:
        model = _model(dataset).fit(_features(frame, dataset), outcome(frame))
        return float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]))

    auc_real = auc_when_trained_on(train)
    auc_synthetic = auc_when_trained_on(synthetic)
    return {
        "seed": seed,
        "n_real_train": len(train),
        "n_real_test": len(test),
        "n_synthetic": n_synthetic,
        "auc_real": auc_real,
        "auc_synthetic": auc_synthetic,
        "auc_difference": auc_real - auc_synthetic,
    }

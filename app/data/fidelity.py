"""Fidelity of the synthetic generator: does a model trained on synthetic rows score held-out
real rows as well as one trained on real rows?"""

from __future__ import annotations

from typing import Any

import pandas as pd

from app.data.schema import CATEGORIES, RAW_LABEL
from app.data.synthetic import BAD, CATEGORICAL_COLUMNS, NUMERIC_COLUMNS, generate_raw

AUC_BAR = 0.05


def _model() -> Any:
    # sklearn only for this check: the generator itself runs on Ray workers without it.
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    encode = ColumnTransformer(
        [
            (
                "categorical",
                OneHotEncoder(
                    categories=[list(CATEGORIES[c]) for c in CATEGORICAL_COLUMNS],
                    handle_unknown="ignore",
                ),
                list(CATEGORICAL_COLUMNS),
            ),
            ("numeric", StandardScaler(), list(NUMERIC_COLUMNS)),
        ]
    )
    return Pipeline([("encode", encode), ("model", LogisticRegression(C=0.3, max_iter=2000))])


def real_vs_synthetic_auc(real_df: pd.DataFrame, n_synthetic: int, seed: int) -> dict[str, Any]:
    """Train one model on real rows and one on synthetic rows; score both on held-out real rows.

    The real data is split 70/30 (stratified, seeded); the generator sees only the 70%, so
    the 30% is unseen by both models. ``auc_difference`` is real-trained minus
    synthetic-trained AUC; the fidelity bar is ``abs(auc_difference) <= AUC_BAR``.
    """
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(
        real_df, test_size=0.3, stratify=real_df[RAW_LABEL], random_state=seed
    )
    synthetic = generate_raw(train, n_synthetic, seed)
    y_test = (test[RAW_LABEL] == BAD).astype(int)
    features = list(CATEGORICAL_COLUMNS + NUMERIC_COLUMNS)

    def auc_when_trained_on(frame: pd.DataFrame) -> float:
        model = _model().fit(frame[features], (frame[RAW_LABEL] == BAD).astype(int))
        return float(roc_auc_score(y_test, model.predict_proba(test[features])[:, 1]))

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

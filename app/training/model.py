"""The model artifact: encoder + estimator as one object, scored on raw feature values."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from app.dataset import SPEC_FILE, Dataset, parse_dataset
from app.domain import APPROVE, DECLINE, PREDICTION
from app.training.preprocess import FeatureEncoder
from app.training.reasons import reason_codes
from app.training.treeshap import explainer_for

META_FILE = "credit_model.json"
BOOSTER_FILE = "booster.json"
PIPELINE_FILE = "pipeline.pkl"


def sigmoid(margin: np.ndarray) -> np.ndarray:
    """Margin (log-odds) -> probability of default."""
    return 1.0 / (1.0 + np.exp(-margin))


@dataclass
class CreditModel:
    """Everything needed to score raw applications: the same object in batch and serving.

    `kind` is `xgboost` (a Booster on the encoded matrix) or `logistic` (a scikit-learn
    imputer -> scaler -> logistic-regression pipeline on the encoded matrix). Contributions are
    on the margin (log-odds) scale and, with the bias, add up to the margin.
    """

    kind: Literal["xgboost", "logistic"]
    encoder: FeatureEncoder
    estimator: Any
    threshold: float
    used_columns: list[str] = field(default_factory=list)

    @property
    def dataset(self) -> Dataset:
        """The dataset spec the model was trained on (its categories, reasons and label)."""
        return self.encoder.dataset

    # --- scoring -----------------------------------------------------------------------
    def encode(self, raw_df: pd.DataFrame) -> pd.DataFrame:
        return self.encoder.transform(raw_df)

    def _dmatrix(self, raw_df: pd.DataFrame):
        import xgboost as xgb

        # From the array, not a DataFrame: xgboost's pandas path costs ~5 ms per call.
        matrix = self.encoder.transform_array(raw_df)
        return xgb.DMatrix(matrix, feature_names=self.encoder.feature_names, missing=np.nan)

    def margin(self, raw_df: pd.DataFrame) -> np.ndarray:
        if self.kind == "xgboost":
            return self.estimator.predict(self._dmatrix(raw_df), output_margin=True)
        return self.estimator.decision_function(self.encode(raw_df))

    def predict_pd(self, raw_df: pd.DataFrame) -> np.ndarray:
        return sigmoid(np.asarray(self.margin(raw_df), dtype="float64"))

    def decide(self, pd_scores: np.ndarray, threshold: float | None = None) -> np.ndarray:
        cut = self.threshold if threshold is None else threshold
        return np.where(pd_scores >= cut, DECLINE, APPROVE)

    def score(
        self, raw_df: pd.DataFrame, threshold: float | None = None, explain: bool = True
    ) -> pd.DataFrame:
        """PD, decision and (declines always included) reasons: what serving and batch return."""
        if not explain:
            pd_scores = self.predict_pd(raw_df)
            decisions = self.decide(pd_scores, threshold)
            return pd.DataFrame({PREDICTION: pd_scores, "decision": decisions}, index=raw_df.index)
        # One contributions pass gives both the score (contributions + bias = margin) and the
        # reasons, instead of a second pass through the trees.
        contribs = self.contributions(raw_df)
        margin = contribs.to_numpy(dtype="float64").sum(axis=1)
        pd_scores = sigmoid(margin)
        decisions = self.decide(pd_scores, threshold)
        out = pd.DataFrame({PREDICTION: pd_scores, "decision": decisions}, index=raw_df.index)
        out["reasons"] = self._reasons(contribs, raw_df, 4, decisions == DECLINE)
        return out

    def contributions(self, raw_df: pd.DataFrame) -> pd.DataFrame:
        """Per-feature pushes towards default (margin scale), plus a `bias` column."""
        names = self.encoder.feature_names
        if self.kind == "xgboost":
            explainer = explainer_for(self.estimator, len(names))
            if explainer is not None:  # XGBoost's TreeSHAP values, tabled: as serving computes
                values = explainer.contributions(self.encoder.transform_array(raw_df))
            else:
                values = self.estimator.predict(self._dmatrix(raw_df), pred_contribs=True)
            return pd.DataFrame(values, index=raw_df.index, columns=[*names, "bias"])
        matrix = self.encode(raw_df)
        steps = self.estimator[:-1]
        linear = self.estimator[-1]
        scaled = steps.transform(matrix)
        values = scaled * linear.coef_[0]
        out = pd.DataFrame(values, index=raw_df.index, columns=names)
        out["bias"] = float(linear.intercept_[0])
        return out

    def explain(
        self, raw_df: pd.DataFrame, max_reasons: int = 4, require: np.ndarray | None = None
    ) -> list[list[dict]]:
        """Adverse-action reasons per row: the largest pushes towards default.

        `require` flags rows (declines) that must get at least one reason.
        """
        return self._reasons(self.contributions(raw_df), raw_df, max_reasons, require)

    def _reasons(
        self,
        contribs: pd.DataFrame,
        raw_df: pd.DataFrame,
        max_reasons: int,
        require: np.ndarray | None,
    ) -> list[list[dict]]:
        return reason_codes(
            contribs,
            raw_df,
            self.encoder,
            max_reasons=max_reasons,
            # An empty list means "not recorded", not "uses nothing".
            used_columns=set(self.used_columns) or None,
            require=require,
        )

    # --- persistence -------------------------------------------------------------------
    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        # The resolved spec goes with the model, so this version keeps its categories and
        # reason wording whatever the spec becomes later.
        (directory / SPEC_FILE).write_text(self.dataset.resolved_yaml)
        meta = {
            "kind": self.kind,
            "dataset": self.dataset.name,
            "spec_hash": self.dataset.spec_hash,
            "numeric": list(self.encoder.numeric),
            "categorical": list(self.encoder.categorical),
            "threshold": self.threshold,
            "used_columns": self.used_columns,
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=2))
        if self.kind == "xgboost":
            self.estimator.save_model(str(directory / BOOSTER_FILE))
        else:
            with open(directory / PIPELINE_FILE, "wb") as f:
                pickle.dump(self.estimator, f)
        return directory

    @classmethod
    def load(cls, directory: Path) -> CreditModel:
        meta = json.loads((directory / META_FILE).read_text())
        spec_file = directory / SPEC_FILE
        if not spec_file.is_file():
            raise ValueError(
                f"{directory.name}: the model has no {SPEC_FILE} (trained before models carried "
                "their dataset spec): retrain it with `python -m jobs.train`"
            )
        dataset = parse_dataset(spec_file.read_text(), str(spec_file), directory)
        if dataset.spec_hash != meta.get("spec_hash"):
            raise ValueError(f"{spec_file}: not the spec the model was trained on (hash differs)")
        encoder = FeatureEncoder(tuple(meta["numeric"]), tuple(meta["categorical"]), dataset)
        if meta["kind"] == "xgboost":
            import xgboost as xgb

            estimator = xgb.Booster()
            estimator.load_model(str(directory / BOOSTER_FILE))
        else:
            with open(directory / PIPELINE_FILE, "rb") as f:
                estimator = pickle.load(f)
        return cls(meta["kind"], encoder, estimator, meta["threshold"], meta["used_columns"])


def used_columns_of(model: CreditModel) -> list[str]:
    """Raw columns the fitted estimator actually uses (non-zero importance or coefficient)."""
    encoder = model.encoder
    if model.kind == "xgboost":
        used = set(model.estimator.get_score(importance_type="weight"))
    else:
        coef = model.estimator[-1].coef_[0]
        used = {n for n, c in zip(encoder.feature_names, coef, strict=True) if abs(c) > 1e-12}
    columns = {encoder.source_of(name)[0] for name in used}
    return [c for c in encoder.raw_columns if c in columns]

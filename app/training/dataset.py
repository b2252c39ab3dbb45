"""The training set: Feast's point-in-time join of the applications, split deterministically."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from app.config import Settings
from app.errors import CreditRiskError
from app.features.store import get_training_frame
from app.training.preprocess import FeatureEncoder


class TrainingDataError(CreditRiskError):
    """The training set cannot produce a model (empty, one class, missing features)."""


@dataclass
class Splits:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    method: str

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.train),
            "validation": len(self.validation),
            "test": len(self.test),
        }


def load_training_frame(settings: Settings) -> pd.DataFrame:
    """Features of each application as of its application time, with its label."""
    frame = get_training_frame(settings)
    if frame.empty:
        raise TrainingDataError("the training set is empty: ingest and materialize data first")
    return frame


def check_features(frame: pd.DataFrame, encoder: FeatureEncoder) -> None:
    """TrainingDataError unless every encoder column has values and the labels two classes."""
    missing = [c for c in encoder.raw_columns if c not in frame.columns]
    if missing:
        raise TrainingDataError(f"training set lacks features: {', '.join(missing)}")
    empty = [c for c in encoder.raw_columns if frame[c].isna().all()]
    if empty:
        raise TrainingDataError(f"training set has no values for features: {', '.join(empty)}")
    label = encoder.dataset.label
    if frame[label].nunique() < 2:
        raise TrainingDataError(
            f"training labels have a single class ({label}={frame[label].iloc[0]})"
        )


def configured_split(frame: pd.DataFrame, settings: Settings) -> Splits:
    """split_frame with the settings' method, seed and fractions (training and promotion
    compare models on the same rows)."""
    dataset = settings.load_dataset()
    return split_frame(
        frame,
        settings.split_method,
        settings.seed,
        settings.validation_fraction,
        settings.test_fraction,
        label=dataset.label,
        key=dataset.spine.key,
    )


def split_frame(
    frame: pd.DataFrame,
    method: str,
    seed: int,
    validation_fraction: float,
    test_fraction: float,
    *,
    label: str,
    key: str,
) -> Splits:
    """Seeded stratified random split, or out-of-time: the newest applications are held out,
    as a credit model is validated on applications made after the ones it learned from.
    `label` names the 0/1 label column, `key` the row key that fixes the order first."""
    n = len(frame)
    n_test = round(n * test_fraction)
    n_valid = round(n * validation_fraction)
    if n - n_test - n_valid < 1 or n_test < 1 or n_valid < 1:
        raise TrainingDataError(f"{n} applications are too few for train, validation and test")
    ordered = frame.sort_values(key, kind="mergesort").reset_index(drop=True)
    if method == "out_of_time":
        order = np.argsort(ordered["event_timestamp"].to_numpy(), kind="mergesort")
    elif method == "random":
        # Stratified: shuffle each class with the seed, then interleave by rank so every split
        # gets the same default rate.
        rng = np.random.default_rng(seed)
        keys = np.empty(n)
        for value in (0, 1):
            idx = np.flatnonzero(ordered[label].to_numpy() == value)
            keys[idx] = (rng.permutation(len(idx)) + rng.random(len(idx))) / max(len(idx), 1)
        order = np.argsort(keys, kind="mergesort")
    else:
        raise TrainingDataError(f"unknown split method {method!r}: use random or out_of_time")
    train_end = n - n_test - n_valid
    parts = [
        ordered.iloc[order[:train_end]],
        ordered.iloc[order[train_end : train_end + n_valid]],
        ordered.iloc[order[train_end + n_valid :]],
    ]
    train, validation, test = (p.reset_index(drop=True) for p in parts)
    for name, part in (("train", train), ("validation", validation), ("test", test)):
        if part[label].nunique() < 2:
            raise TrainingDataError(
                f"the {name} split has only one class (all {label}={part[label].iloc[0]}): "
                "a credit model needs both defaults and repayments"
            )
    return Splits(train, validation, test, method)

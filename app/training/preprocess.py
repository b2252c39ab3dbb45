"""Raw feature values -> model matrix: schema-fixed one-hot encoding and safe feature names."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from app.dataset import Dataset

_SYMBOLS = (("<=", " le "), (">=", " ge "), ("<", " lt "), (">", " gt "), ("=", " eq "))


def safe_name(text: str) -> str:
    """A feature-name fragment XGBoost accepts (it rejects `[`, `]` and `<`)."""
    for symbol, word in _SYMBOLS:
        text = text.replace(symbol, word)
    return re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").lower() or "blank"


@dataclass(frozen=True)
class FeatureEncoder:
    """Encodes raw feature rows exactly the same way in training, batch scoring and serving.

    Categories come from the dataset spec, not from the training data, so nothing is fitted:
    an unseen or missing category encodes as all zeros and a missing number stays NaN
    (XGBoost routes it; the linear baseline imputes it). The spec travels with the encoder
    into the model artifact, so a model version keeps its own categories and reasons.
    """

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    dataset: Dataset = field(compare=False, repr=False)
    categories: dict[str, tuple[str, ...]] = field(init=False, compare=False, repr=False)
    _names: tuple[str, ...] = field(init=False)
    _sources: dict[str, tuple[str, str | None]] = field(init=False)

    def __post_init__(self) -> None:
        unknown = [c for c in self.categorical if c not in self.dataset.categories]
        if unknown:
            raise ValueError(f"not category columns of the dataset spec: {', '.join(unknown)}")
        categories = {c: self.dataset.categories[c] for c in self.categorical}
        names: list[str] = []
        sources: dict[str, tuple[str, str | None]] = {}
        for column in self.numeric:
            names.append(column)
            sources[column] = (column, None)
        for column in self.categorical:
            for category in categories[column]:
                name = f"{column}__{safe_name(category)}"
                names.append(name)
                sources[name] = (column, category)
        if len(set(names)) != len(names):
            raise ValueError("feature names collide after sanitising")
        object.__setattr__(self, "categories", categories)
        object.__setattr__(self, "_names", tuple(names))
        object.__setattr__(self, "_sources", sources)

    @classmethod
    def for_dataset(cls, dataset: Dataset) -> FeatureEncoder:
        """Every model column of the spec (protected and excluded ones left out)."""
        used = dataset.model_columns
        return cls(
            numeric=tuple(c for c in used if c not in dataset.categories),
            categorical=tuple(c for c in used if c in dataset.categories),
            dataset=dataset,
        )

    @property
    def raw_columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @property
    def feature_names(self) -> list[str]:
        return list(self._names)

    def source_of(self, feature_name: str) -> tuple[str, str | None]:
        """(raw column, category or None for a number) behind an encoded feature."""
        return self._sources[feature_name]

    def transform(self, raw_df: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            self.transform_array(raw_df), index=raw_df.index, columns=self.feature_names
        )

    def transform_array(self, raw_df: pd.DataFrame) -> np.ndarray:
        """The encoded matrix (float32, columns in `feature_names` order) without a frame:
        serving encodes one row per request, where building a wide DataFrame dominated."""
        missing = [c for c in self.raw_columns if c not in raw_df.columns]
        if missing:
            raise KeyError(f"missing features: {', '.join(missing)}")
        out = np.empty((len(raw_df), len(self.feature_names)), dtype="float32")
        j = 0
        for column in self.numeric:
            out[:, j] = pd.to_numeric(raw_df[column], errors="coerce").to_numpy(
                dtype="float32", na_value=np.nan
            )
            j += 1
        for column in self.categorical:
            values = raw_df[column].to_numpy(dtype=object)
            for category in self.categories[column]:
                out[:, j] = values == category
                j += 1
        return out

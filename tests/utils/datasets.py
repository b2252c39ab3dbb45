"""The shipped dataset specs, loaded once for the tests that read them."""

from __future__ import annotations

from app.config import SHIPPED_DATASET
from app.dataset import Dataset, load_dataset


def german() -> Dataset:
    """The German credit spec (the default); parsed once, then cached by the loader."""
    return load_dataset(SHIPPED_DATASET)


def validated(tables: dict, dataset: Dataset | None = None) -> dict:
    """Warehouse tables as ingest would snapshot them: validated, canonical names, typed."""
    from app.data.ingest_table import validate_frame

    dataset = dataset or german()
    return {name: validate_frame(df, dataset.tables[name])[0] for name, df in tables.items()}

"""The dataset spec: one `dataset.yaml` declares a user's data, and everything else derives from
it. This package sits in the bottom layer: it reads files only when asked to load one."""

from app.dataset.dataset import Dataset
from app.dataset.load import SPEC_FILE, load_dataset, parse_dataset, spec_path
from app.dataset.tables import TableSpec

__all__ = ["SPEC_FILE", "Dataset", "TableSpec", "load_dataset", "parse_dataset", "spec_path"]

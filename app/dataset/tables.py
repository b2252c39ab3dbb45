"""Warehouse tables as the runtime sees them: canonical columns, Arrow types, source names."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from app.dataset.spec import Column, Label

TIMESTAMP = pa.timestamp("us", tz="UTC")
ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "category": pa.string(),
    "string": pa.string(),
    "timestamp": TIMESTAMP,
}


@dataclass(frozen=True)
class TableSpec:
    """One warehouse table: key, event-time column and typed columns (canonical names).

    `specs` holds what a dataset spec declares about each column (range, categories, nulls,
    source name); a table built by hand (scoring output) may leave it empty.
    """

    name: str
    key: str
    timestamp: str
    columns: dict[str, pa.DataType] = field(default_factory=dict)
    # What must be unique: profile tables keep history (one row per applicant and event time).
    unique_key: tuple[str, ...] = ()
    source: str | None = None  # the table's name in the warehouse, when not `name`
    specs: dict[str, Column] = field(default_factory=dict)
    label: Label | None = None  # the spine's label: its source values become 1 / 0

    @property
    def source_name(self) -> str:
        return self.source or self.name

    def source_of(self, column: str) -> str:
        """The column's name in the warehouse."""
        if self.label is not None and column == self.label.name:
            return self.label.source or column
        spec = self.specs.get(column)
        return spec.source if spec is not None and spec.source else column

    @property
    def feature_columns(self) -> list[str]:
        return [c for c in self.columns if c not in (self.key, self.timestamp)]

    @property
    def categorical_columns(self) -> list[str]:
        return [c for c in self.columns if c in self.specs and self.specs[c].type == "category"]

    @property
    def integer_columns(self) -> list[str]:
        return [c for c, t in self.columns.items() if pa.types.is_integer(t)]

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([(name, dtype) for name, dtype in self.columns.items()])

    @property
    def source_columns(self) -> list[str]:
        """The columns as the warehouse names them."""
        return [self.source_of(c) for c in self.columns]

    @property
    def source_schema(self) -> pa.Schema:
        """The table as the warehouse holds it: source names, and the label's raw values."""
        fields = []
        for name, dtype in self.columns.items():
            if self.label is not None and name == self.label.name:
                dtype = label_type(self.label)
            fields.append((self.source_of(name), dtype))
        return pa.schema(fields)


def label_type(label: Label) -> pa.DataType:
    """Arrow type of a label's raw values (`good`/`bad` text, or 0/1)."""
    values = (label.positive, label.negative)
    if all(isinstance(v, bool) for v in values):
        return pa.bool_()
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return pa.int64()
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return pa.float64()
    return pa.string()

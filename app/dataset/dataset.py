"""A loaded dataset spec and everything the runtime derives from it (tables, model columns,
derived features). Built once per spec by app.dataset.load; immutable afterwards."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from app.dataset.expressions import Expression, as_floats, compile_definition, derive_frame
from app.dataset.spec import Column, DatasetSpec
from app.dataset.tables import ARROW_TYPES, TIMESTAMP, TableSpec


@dataclass(frozen=True, eq=False)
class Dataset:
    """The spec of one dataset (`spec`), where it came from (`directory`) and its views."""

    spec: DatasetSpec
    directory: Path

    # --- identity ---------------------------------------------------------------------
    @cached_property
    def resolved_yaml(self) -> str:
        """The spec with every default filled in: what a model version stores."""
        data = self.spec.model_dump(mode="json", exclude_none=True)
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)

    @cached_property
    def spec_hash(self) -> str:
        """Content hash of the resolved spec (comments and layout do not count)."""
        return hashlib.sha256(self.resolved_yaml.encode()).hexdigest()[:16]

    @property
    def name(self) -> str:
        return self.spec.name

    # --- columns and tables -------------------------------------------------------------
    @property
    def entity_key(self) -> str:
        return self.spec.entity.key

    @property
    def label(self) -> str:
        return self.spec.label.name

    @property
    def columns(self) -> Mapping[str, Column]:
        return self.spec.columns

    @cached_property
    def tables(self) -> dict[str, TableSpec]:
        """Every warehouse table, in the spec's order."""
        return {name: self._table(name) for name in self.spec.sources.tables}

    @cached_property
    def spine(self) -> TableSpec:
        (name,) = (n for n, t in self.spec.sources.tables.items() if t.role == "spine")
        return self.tables[name]

    @cached_property
    def feature_tables(self) -> list[TableSpec]:
        return [t for t in self.tables.values() if t.name != self.spine.name]

    def ttl_days(self, table: str) -> int | None:
        return self.spec.sources.tables[table].ttl_days

    @cached_property
    def categories(self) -> dict[str, tuple[str, ...]]:
        return {c: col.codes for c, col in self.columns.items() if col.type == "category"}

    @cached_property
    def ranges(self) -> dict[str, tuple[float, float]]:
        return {c: col.range for c, col in self.columns.items() if col.range is not None}

    @property
    def request_columns(self) -> tuple[str, ...]:
        return tuple(self.spec.features.request)

    @cached_property
    def protected_columns(self) -> tuple[str, ...]:
        return tuple(c for c, col in self.columns.items() if col.protected)

    @cached_property
    def attribute_columns(self) -> tuple[str, ...]:
        """Columns of the feature tables (entity attributes looked up in Feast), in order."""
        return tuple(c for t in self.feature_tables for c in t.feature_columns if self._data(c))

    @cached_property
    def input_columns(self) -> tuple[str, ...]:
        """What a decision looks up or receives: request fields, then table attributes, then
        derived features (protected ones included: fairness needs them)."""
        ordered = [*self.request_columns, *self.attribute_columns, *self.derived_names]
        return tuple(dict.fromkeys(ordered))

    @cached_property
    def model_columns(self) -> tuple[str, ...]:
        """Raw model inputs: `input_columns` without protected or excluded ones."""
        left_out = {*self.protected_columns, *self.spec.features.exclude}
        return tuple(c for c in self.input_columns if c not in left_out)

    @cached_property
    def raw_columns(self) -> tuple[str, ...]:
        """A flat file's columns (source names): every table column but keys and timestamps,
        then the label."""
        out = [
            t.source_of(c)
            for t in self.tables.values()
            for c in t.feature_columns
            if self._data(c) and c != self.label
        ]
        return tuple(dict.fromkeys([*out, self.spec.label.source or self.label]))

    def _data(self, column: str) -> bool:
        return column in self.columns and self.columns[column].type not in ("string", "timestamp")

    def _table(self, name: str) -> TableSpec:
        table = self.spec.sources.tables[name]
        entity = self.entity_key
        if table.role == "spine":
            head = [table.key, entity, table.timestamp]
            unique = (table.key,)
        else:
            head = [entity, table.timestamp]
            unique = (entity, table.timestamp)
        columns = {c: self._arrow_type(c) for c in dict.fromkeys([*head, *table.columns])}
        return TableSpec(
            name=name,
            key=table.key or entity,
            timestamp=table.timestamp,
            columns=columns,
            unique_key=unique,
            source=table.source,
            specs={c: self.columns[c] for c in columns if c in self.columns},
            label=self.spec.label if self.label in columns else None,
        )

    def _arrow_type(self, column: str):
        if column == self.label:
            return ARROW_TYPES["int"]
        if column in self.columns:
            return ARROW_TYPES[self.columns[column].type]
        return TIMESTAMP if column in self._timestamps else ARROW_TYPES["string"]

    @cached_property
    def _timestamps(self) -> set[str]:
        return {t.timestamp for t in self.spec.sources.tables.values()}

    # --- derived features ---------------------------------------------------------------
    @property
    def derived_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.spec.features.derived)

    @cached_property
    def derived(self) -> dict[str, Expression]:
        """Each derived feature compiled, in definition order (later ones may use earlier)."""
        known = set(self.columns) | {self.label}
        compiled: dict[str, Expression] = {}
        for feature in self.spec.features.derived:
            compiled[feature.name] = compile_definition(feature.text, frozenset(known))
            known.add(feature.name)
        return compiled

    @cached_property
    def derived_inputs(self) -> tuple[str, ...]:
        """Stored columns the derived features read (directly or through each other)."""
        names = set(self.derived_names)
        inputs = (i for e in self.derived.values() for i in e.inputs if i not in names)
        return tuple(dict.fromkeys(inputs))

    def derive(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every derived feature from float64 input arrays (NaN for missing)."""
        values = dict(arrays)
        out: dict[str, np.ndarray] = {}
        for name, expression in self.derived.items():
            out[name] = values[name] = expression(values)
        return out

    def derive_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Every derived feature of a frame's rows (as Feast's on-demand view computes them)."""
        return derive_frame(frame, [(d.name, d.text) for d in self.spec.features.derived])

    def with_derived(self, columns: Mapping[str, list]) -> dict[str, list]:
        """`columns` (name -> values, None for missing) plus every derived feature, as lists:
        the request path's form, computed by the same compiled expressions as `derive`."""
        arrays = {c: as_floats(columns[c]) for c in self.derived_inputs}
        derived = self.derive(arrays)
        return {**columns, **{name: values.tolist() for name, values in derived.items()}}

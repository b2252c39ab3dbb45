"""Checks across the sections of a dataset spec (each section's own shape is checked by its
pydantic model): tables name declared columns, every citable column has a reason, derived
features read what a decision has, levers and groupings name columns that can play the part.
Each problem is (path inside the file, what is wrong)."""

from __future__ import annotations

from app.dataset.dataset import Dataset
from app.dataset.expressions import ExpressionError
from app.dataset.spec import Column
from app.dataset.synthetic_spec import ShiftChange
from app.dataset.types import Scalar
from app.dataset.wording import WordingError, compile_template


def check(dataset: Dataset) -> list[tuple[str, str]]:
    """What is wrong between sections (each section's own shape is already checked)."""
    problems: list[tuple[str, str]] = []
    problems += _check_tables(dataset)
    if problems:  # the rest reads the tables
        return problems
    problems += _check_features(dataset)
    if not problems:
        problems += _check_reasons(dataset)
    problems += _check_synthetic(dataset)
    problems += _check_model(dataset)
    return problems


def _check_tables(dataset: Dataset) -> list[tuple[str, str]]:
    spec = dataset.spec
    problems: list[tuple[str, str]] = []
    tables = spec.sources.tables
    spines = [n for n, t in tables.items() if t.role == "spine"]
    if len(spines) != 1:
        problems.append(("sources.tables", f"needs exactly one `role: spine` table, has {spines}"))
    owner: dict[str, str] = {}
    for name, table in tables.items():
        for i, column in enumerate(table.columns):
            where = f"sources.tables.{name}.columns.{i}"
            if column not in spec.columns and column != spec.label.name:
                problems.append((where, f"{column!r} is not declared under `columns`"))
            elif column in owner:
                problems.append((where, f"{column!r} is already in table {owner[column]!r}"))
            owner[column] = name
    for column in spec.columns:
        if column not in owner and spec.columns[column].type not in ("string", "timestamp"):
            problems.append((f"columns.{column}", "is in no table under `sources.tables`"))
    if spines and spec.label.name not in tables[spines[0]].columns:
        problems.append(("label.name", f"{spec.label.name!r} must be a column of the spine"))
    if spec.label.name in spec.columns:
        problems.append(("label.name", "is declared by `label`, not under `columns`"))
    flat = spec.sources.flat_file
    for table in flat.lag_days if flat else ():
        if table not in tables or tables[table].role != "features":
            problems.append((f"sources.flat_file.lag_days.{table}", "is not a feature table"))
    return problems


def _check_features(dataset: Dataset) -> list[tuple[str, str]]:
    spec = dataset.spec
    problems: list[tuple[str, str]] = []
    spine = dataset.spine
    for i, column in enumerate(spec.features.request):
        where = f"features.request.{i}"
        if column not in spine.feature_columns or column in (spec.label.name, spec.entity.key):
            problems.append((where, f"{column!r} is not a data column of the spine table"))
        elif spec.columns[column].protected:
            problems.append((where, f"{column!r} is protected and cannot be a model input"))
    for i, column in enumerate(spec.features.exclude):
        if column not in spec.columns and column not in dataset.derived_names:
            problems.append((f"features.exclude.{i}", f"{column!r} is not a column"))
    seen = set(spec.columns) | {spec.label.name}
    for i, feature in enumerate(spec.features.derived):
        where = f"features.derived.{i}"
        if feature.name in seen:
            problems.append((f"{where}.name", f"{feature.name!r} is already a column"))
        seen.add(feature.name)
    if not problems:
        try:
            dataset.derived  # noqa: B018 - compiles every expression
        except ExpressionError as exc:
            return [("features.derived", str(exc))]
        protected = [c for c in dataset.derived_inputs if spec.columns[c].protected]
        if protected:
            problems.append(("features.derived", f"reads protected column(s) {protected}"))
        if spec.label.name in dataset.derived_inputs:
            problems.append(("features.derived", "reads the label, unknown at decision time"))
        # A decision has the request fields and the feature tables' rows, nothing else.
        available = {*spec.features.request, *dataset.attribute_columns}
        unavailable = [c for c in dataset.derived_inputs if c not in available]
        if unavailable and spec.label.name not in unavailable:
            problems.append(
                (
                    "features.derived",
                    f"reads {unavailable}, neither request fields nor feature-table columns",
                )
            )
    return problems


def _check_reasons(dataset: Dataset) -> list[tuple[str, str]]:
    spec = dataset.spec
    codes = spec.reasons.codes
    problems: list[tuple[str, str]] = []
    for column in dataset.model_columns:
        if column not in codes:
            problems.append(("reasons.codes", f"{column!r} is a model input without a reason"))
    by_code: dict[str, str] = {}
    for column, reason in codes.items():
        where = f"reasons.codes.{column}"
        if column not in dataset.model_columns:
            why = "protected" if column in dataset.protected_columns else "not a model input"
            problems.append((where, f"{column!r} is {why}: it may not be given as a reason"))
        if reason.code in by_code:
            problems.append((f"{where}.code", f"{reason.code} is also {by_code[reason.code]!r}"))
        if reason.code in spec.reasons.retired:
            problems.append((f"{where}.code", f"{reason.code} is retired: take an unused code"))
        by_code[reason.code] = column
        numeric = column in dataset.derived_names or spec.columns[column].type in ("int", "float")
        if numeric and reason.text is None:
            problems.append((f"{where}.text", "a numeric column needs its wording"))
        for key, template in [("text", reason.text), *reason.text_from.items()]:
            try:
                if template is not None:
                    compile_template(template, spec.currency)
            except WordingError as exc:
                path = "text" if key == "text" else f"text_from.{key:g}"
                problems.append((f"{where}.{path}", str(exc)))
    return problems


def _check_synthetic(dataset: Dataset) -> list[tuple[str, str]]:
    """The synthetic section names data columns that can take the noise or change asked for."""
    spec = dataset.spec
    synthetic = spec.synthetic
    problems: list[tuple[str, str]] = []
    # The tables are checked already, so every column but ids and times is in one.
    data = {c for c, col in spec.columns.items() if col.type not in ("string", "timestamp")}
    for column in synthetic.jitter:
        where = f"synthetic.jitter.{column}"
        if column not in data:
            problems.append((where, f"{column!r} is not a data column of a table"))
        elif spec.columns[column].type not in ("int", "float"):
            problems.append((where, f"{column!r} is not an int or float column"))
    for name, shift in synthetic.shifts.items():
        for i, change in enumerate(shift.changes):
            where = f"synthetic.shifts.{name}.changes.{i}"
            problems += _check_change(dataset, data, change, where)
    return problems


def _check_change(
    dataset: Dataset, data: set[str], change: ShiftChange, where: str
) -> list[tuple[str, str]]:
    column, label = change.column, dataset.label
    if change.label_rate is not None or column == label:
        if change.label_rate is None:
            return [(where, f"the label {label!r} changes only by `label_rate`")]
        if column != label:
            return [(f"{where}.column", f"`label_rate` applies to the label {label!r}")]
        return []
    if column not in data:
        return [(f"{where}.column", f"{column!r} is not a data column of a table")]
    spec = dataset.columns[column]
    numeric = spec.type in ("int", "float")
    if (change.scale or change.compress_toward) and not numeric:
        kind = "scale" if change.scale else "compress_toward"
        return [(f"{where}.{kind}", f"{column!r} is not an int or float column")]
    if change.scale and change.scale.grid is not None and spec.range is None:
        return [(f"{where}.scale.grid", f"{column!r} has no `range` to end the grid")]
    problems: list[tuple[str, str]] = []
    for value in change.replace.values if change.replace else ():
        if not _replacement_fits(spec, value):
            what = "a category" if spec.categories else f"a valid {spec.type} value"
            what = f"{what} of {column!r}"
            problems.append((f"{where}.replace.values", f"{value!r} is not {what}"))
    return problems


def _replacement_fits(spec: Column, value: Scalar) -> bool:
    if spec.type == "category":
        return isinstance(value, str) and value in spec.codes
    if spec.type == "bool":
        return isinstance(value, bool)
    if spec.type not in ("int", "float") or isinstance(value, bool | str):
        return False
    if value in spec.missing_codes:
        return True
    if spec.type == "int" and not float(value).is_integer():
        return False
    return spec.range is None or spec.range[0] <= value <= spec.range[1]


def _numeric(dataset: Dataset, column: str) -> bool:
    spec = dataset.spec
    return column in dataset.derived_names or (
        column in spec.columns and spec.columns[column].type in ("int", "float", "bool")
    )


def _check_model(dataset: Dataset) -> list[tuple[str, str]]:
    """Model defaults, fairness groupings and offer levers name columns that can play the part."""
    spec = dataset.spec
    problems: list[tuple[str, str]] = []
    for column in spec.model.monotone:
        if column not in dataset.model_columns or not _numeric(dataset, column):
            problems.append((f"model.monotone.{column}", "is not a numeric model column"))
    groupings = spec.fairness.groupings
    for name, grouping in groupings.items():
        where = f"fairness.groupings.{name}"
        if grouping.column not in spec.columns:
            problems.append((f"{where}.column", f"{grouping.column!r} is not a column"))
        elif grouping.edges is not None and not _numeric(dataset, grouping.column):
            problems.append((f"{where}.edges", f"{grouping.column!r} is not numeric"))
        elif grouping.edges is None and spec.columns[grouping.column].type != "category":
            problems.append((f"{where}.edges", f"numeric {grouping.column!r} needs band edges"))
    offers = spec.offers
    for role in ("amount", "term") if offers else ():
        column = getattr(offers, role)
        if column not in spec.features.request or spec.columns[column].type != "int":
            problems.append((f"offers.{role}", f"{column!r} is not an int request field"))
    if offers and offers.amount == offers.term:
        problems.append(("offers.term", "is the same field as `amount`"))
    for i, column in enumerate(spec.monitoring.drift_exclude):
        if column not in dataset.model_columns:
            problems.append((f"monitoring.drift_exclude.{i}", f"{column!r} is not a model column"))
    return problems

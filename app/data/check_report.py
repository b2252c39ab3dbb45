"""The text of a data check (app.data.check) as `jobs.dataset check` prints it: each table's
accepted and rejected rows with the commonest reasons, what the spec makes of the data (keys,
label, request schema, model inputs), the label rate, derived features' gaps, and the tables
that reject too many rows."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from app.data.check import DataCheck
from app.dataset import Dataset


def _number(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,g}"


def _request_field(dataset: Dataset, name: str, width: int) -> str:
    column = dataset.columns[name]
    parts = [column.type]
    if column.range is not None:
        parts.append(f"[{_number(column.range[0])}, {_number(column.range[1])}]")
    if column.codes:
        codes = ", ".join(repr(c) for c in column.codes[:6])
        more = f", ... ({len(column.codes)} in all)" if len(column.codes) > 6 else ""
        parts.append(f"one of {codes}{more}")
    if column.nullable:
        parts.append("may be null")
    return f"    {name:<{width}}  {'  '.join(parts)}"


def _listed(title: str, names: Sequence[str]) -> list[str]:
    return [
        title,
        *textwrap.wrap(", ".join(names), 96, initial_indent="    ", subsequent_indent="    "),
    ]


def describe(dataset: Dataset) -> list[str]:
    """What the spec makes of the data: keys, label, request schema, model inputs."""
    spec = dataset.spec
    label = spec.label
    source = f" (from {label.source!r})" if label.source else ""
    lines = [
        f"entity: {spec.entity.name}, key {dataset.entity_key}",
        f"label: {dataset.label}{source}: {label.positive!r} -> 1, {label.negative!r} -> 0",
    ]
    if dataset.request_columns:
        lines.append(f"request fields ({len(dataset.request_columns)}, the body's application):")
        width = max(len(c) for c in dataset.request_columns)
        lines += [_request_field(dataset, c, width) for c in dataset.request_columns]
    else:
        lines.append(
            f"request: no request fields: the body is just the entity key ({dataset.entity_key})"
        )
    model = dataset.model_columns
    lines += _listed(f"model columns ({len(model)}):", model)
    left_out = [c for c in dataset.input_columns if c not in model]
    if left_out:
        lines += _listed("kept out of the model (protected or excluded):", left_out)
    return lines


def table_lines(report: DataCheck) -> list[str]:
    """A line per table (rows read, accepted, rejected), then its commonest reject reasons."""
    lines = []
    for table in report.tables:
        lines.append(
            f"  {table.name:<28} {table.role:<8} read {table.read:>9,}  "
            f"accepted {table.accepted:>9,}  rejected {table.rejected:>7,}"
        )
        for kind, count, example in table.reasons:
            shown = f"  (e.g. {example})" if example else ""
            lines.append(f"      {count:>7,} x {kind}{shown}")
    return lines


def derived_lines(report: DataCheck, dataset: Dataset) -> list[str]:
    """Each derived feature's expression and the share of rows it leaves without a value."""
    derived = dataset.spec.features.derived
    if not derived:
        return ["derived features: none"]
    lines = ["derived features:"]
    for feature in derived:
        missing = report.derived_missing.get(feature.name, 0.0)
        lines.append(f"    {feature.name} = {feature.text}   (missing in {missing:.1%} of rows)")
    return lines


def report_lines(report: DataCheck, dataset: Dataset, where: str) -> list[str]:
    """The whole report on the data read from `where`."""
    lines = [f"data {where}: {report.rows:,} rows", *table_lines(report), *describe(dataset)]
    if report.label_rate is not None:
        lines.append(f"label rate: {report.label_rate:.1%} of accepted applications are positive")
    return lines + derived_lines(report, dataset)


def failures(report: DataCheck, max_rejected: float) -> list[str]:
    """Why the check fails, a reason per table that accepts no row or rejects a larger share
    than `max_rejected`; empty when it passes. Worded for `jobs.dataset check`'s flag."""
    return [
        f"table {table.name} rejects {table.rejected:,} of {table.read:,} rows "
        f"({table.rejected_share:.1%}, more than --max-rejected {max_rejected:.1%})"
        for table in report.tables
        if table.accepted == 0 or table.rejected_share > max_rejected
    ]

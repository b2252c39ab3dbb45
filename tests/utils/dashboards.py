"""The Grafana dashboard's queries and the metric names they read, and the names a Prometheus
/metrics page exports: small pure parsers for the dashboard tests."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.utils import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "credit-risk.json"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"

# PromQL words that look like metric names: aggregations, keywords and set operators.
KEYWORDS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
    "topk", "quantile", "limitk", "limit_ratio", "by", "without", "on", "ignoring",
    "group_left", "group_right", "bool", "offset", "and", "or", "unless", "atan2", "inf", "nan",
}  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w$.])([A-Za-z_:][\w:]*)\b(?!\s*\()")
_LABEL_VALUES = re.compile(r"label_values\(\s*([A-Za-z_:][\w:]*)\s*,")


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    return json.loads(path.read_text())


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included; rows themselves are not panels."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """The PromQL of every panel target."""
    return [t["expr"] for p in panels(dashboard) for t in p.get("targets", []) if t.get("expr")]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: what is left once strings, label matchers,
    ranges, grouping clauses, function calls and keywords are taken out."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = _GROUPING.sub(" ", text)
    names = set(_IDENTIFIER.findall(text))
    return {n for n in names if n.lower() not in KEYWORDS}


def variable_metric_names(dashboard: dict[str, Any]) -> set[str]:
    """Metric names the template variables query (`label_values(metric, label)`)."""
    names: set[str] = set()
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        names |= set(_LABEL_VALUES.findall(text))
    return names


def queried_metrics(dashboard: dict[str, Any]) -> set[str]:
    names = variable_metric_names(dashboard)
    for expr in expressions(dashboard):
        names |= metric_names(expr)
    return names


def exported(text: str) -> tuple[set[str], dict[str, str]]:
    """A /metrics page's sample names, and each family's type from its `# TYPE` line."""
    samples: set[str] = set()
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            types[name] = kind.strip()
        elif line and not line.startswith("#"):
            samples.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return samples, types


def family(name: str, types: dict[str, str]) -> str:
    """The metric family a sample name belongs to: a histogram's _bucket/_sum/_count series
    are its family's; any other name is its own."""
    for suffix in ("_bucket", "_sum", "_count"):
        base = name.removesuffix(suffix)
        if base != name and types.get(base) == "histogram":
            return base
    return name


def missing_metrics(queried: set[str], text: str) -> set[str]:
    """Queried names the /metrics page does not export; a `_bucket` name counts only as the
    series of a histogram (what histogram_quantile reads)."""
    samples, types = exported(text)

    def found(name: str) -> bool:
        if name.endswith("_bucket") and types.get(family(name, types)) != "histogram":
            return False
        return name in samples

    return {n for n in queried if not found(n)}


_SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)\s*\{([^}]*)\}")
_LABEL = re.compile(r'([A-Za-z_]\w*)="((?:[^"\\]|\\.)*)"')
_MATCHER = re.compile(r'([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """Each `metric{label="value", ...}` of an expression with its equality matchers; a
    matcher on a Grafana variable (`=~"$application"`) asks only that the label exists ("")."""
    found = []
    for name, body in _SELECTOR.findall(expr):
        labels = {}
        for label, op, value in _MATCHER.findall(body):
            labels[label] = value if op == "=" and "$" not in value else ""
        found.append((name, labels))
    return found


def series_labels(text: str) -> dict[str, list[dict[str, str]]]:
    """Each sample name's label sets on a /metrics page."""
    series: dict[str, list[dict[str, str]]] = {}
    for line in text.splitlines():
        if line.startswith("#") or "{" not in line:
            continue
        name, rest = line.split("{", 1)
        labels = dict(_LABEL.findall(rest.rsplit("}", 1)[0]))
        series.setdefault(name, []).append(labels)
    return series


def unmatched_selectors(dashboard: dict[str, Any], text: str) -> list[str]:
    """The dashboard's selectors no exported series satisfies (a label missing, or no series
    with the value asked for)."""
    series = series_labels(text)
    unmatched = []
    for expr in expressions(dashboard):
        for name, wanted in selectors(expr):
            if not any(
                all(label in s and value in ("", s[label]) for label, value in wanted.items())
                for s in series.get(name, [])
            ):
                unmatched.append(f"{name}{wanted}")
    return unmatched

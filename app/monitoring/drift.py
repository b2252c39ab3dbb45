"""Drift of a window of live features against the reference, computed by Evidently.

Evidently sits behind `compute_drift` alone. The defaults are effect-size distances
(normed Wasserstein for numbers, Jensen-Shannon for categories), always, rather than Evidently's
auto-selection, which picks p-value tests (K-S, chi-square) whenever the reference has at most
1,000 rows - as the shipped data's 600-row training split has. A p-value test flags unchanged
columns as soon as the live window is large, because with enough rows any difference is
"significant"; a distance answers "how far apart", which does not grow with the window, so a
fixed threshold keeps false alarms rare at every traffic rate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from app.config import Settings
from app.dataset.policy import Grouping
from app.domain import PREDICTION
from app.training.fair_lending import Screen, screen_of


@dataclass(frozen=True)
class DriftConfig:
    num_method: str = "wasserstein"
    num_threshold: float = 0.15
    cat_method: str = "jensenshannon"
    cat_threshold: float = 0.1
    # Numeric columns with at most this many distinct reference values (installment rate
    # 1-4, dependants 1-2) are compared as categories: a normed Wasserstein distance on a
    # handful of levels swings past 0.1 on sampling noise alone.
    discrete_levels: int = 10
    # Dataset drift when at least this many features drift (or the predicted PD does).
    min_drifted_features: int = 1
    # Windows above this are sampled (uniformly, seeded): a distance's sampling noise on 20k
    # rows is far below any threshold, and a check stays under 2 s here at any traffic rate.
    max_rows: int = 20_000
    seed: int = 0
    # The spec's fairness groupings and the fair-lending screen, for each window's approvals.
    groupings: dict[str, Grouping] = field(default_factory=dict)
    screen: Screen | None = None


def drift_config(settings: Settings) -> DriftConfig:
    """The drift check's view of the settings."""
    return DriftConfig(
        num_method=settings.monitor_num_method,
        num_threshold=settings.monitor_num_threshold,
        cat_method=settings.monitor_cat_method,
        cat_threshold=settings.monitor_cat_threshold,
        min_drifted_features=settings.monitor_min_drifted_features,
        max_rows=settings.monitor_max_rows,
        seed=settings.seed,
        groupings=dict(settings.load_dataset().spec.fairness.groupings),
        screen=screen_of(settings),
    )


@dataclass
class FeatureDrift:
    column: str
    kind: str  # "numerical" | "categorical"
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass
class DriftResult:
    checked_at: str
    rows: int
    rows_used: int
    reference_rows: int
    dataset_drift: bool
    drifted_features: list[str]
    drift_share: float
    features: list[FeatureDrift]
    prediction: FeatureDrift | None
    model_version: str | None = None
    window_start: str | None = None
    window_end: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # PSI of the score and CSI per characteristic on the version's frozen bins, by column
    # (app.training.stability); empty for a check made before they were computed.
    stability: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Approvals per group of each fairness grouping the window can be grouped by, with the
    # adverse impact ratio and the screen's verdict (app.monitoring.window.window_fairness).
    fairness: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftResult:
        data = dict(data)
        data["features"] = [FeatureDrift(**f) for f in data.get("features", [])]
        if data.get("prediction"):
            data["prediction"] = FeatureDrift(**data["prediction"])
        return cls(**data)


class DriftInputError(ValueError):
    """The reference or the window cannot be compared (empty, missing columns)."""


def _prepare(
    frame: pd.DataFrame, numeric: list[str], discrete: list[str], categorical: list[str]
) -> pd.DataFrame:
    """The columns Evidently compares, typed: floats, and labels for categories."""
    out = {c: pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype="float64") for c in numeric}
    for column in discrete:
        # Discrete numbers become labels ("2.0" and "2" must be the same level); mapping the
        # few distinct values keeps this vectorised.
        values = pd.to_numeric(frame[column], errors="coerce")
        labels = {v: format(float(v), "g") for v in values.dropna().unique()}
        out[column] = values.map(labels).astype(object).to_numpy()
    for column in categorical:
        values = frame[column].astype(object)
        out[column] = values.where(values.notna(), None).to_numpy()
    return pd.DataFrame(out)


@dataclass(frozen=True)
class _Columns:
    """The columns a check compares, each by how it is compared."""

    order: list[str]  # every checked column: numeric features, the PD, categorical features
    numeric: list[str]  # compared as numbers (the PD among them, when checked)
    discrete: list[str]  # numbers with few reference levels, compared as categories
    categorical: list[str]
    prediction: str | None

    @property
    def labelled(self) -> list[str]:
        return [*self.discrete, *self.categorical]

    def kinds(self) -> dict[str, str]:
        kinds = {c: "numerical" for c in self.numeric} | {
            c: "categorical" for c in self.categorical
        }
        return kinds | {c: "discrete" for c in self.discrete}


def _columns(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    config: DriftConfig,
    prediction: str | None,
) -> _Columns:
    """The columns both frames must have, sorted by kind; DriftInputError when they cannot be
    compared. The PD is checked only when both frames carry it."""
    numeric = list(numeric)
    if prediction and prediction in reference.columns and prediction in current.columns:
        numeric.append(prediction)
    else:
        prediction = None
    order = numeric + list(categorical)
    for name, frame in (("reference", reference), ("current window", current)):
        missing = [c for c in order if c not in frame.columns]
        if missing:
            raise DriftInputError(f"the {name} lacks columns: {', '.join(missing)}")
        if frame.empty:
            raise DriftInputError(f"the {name} has no rows")
    discrete = [
        c for c in numeric if c != prediction and reference[c].nunique() <= config.discrete_levels
    ]
    return _Columns(
        order=order,
        numeric=[c for c in numeric if c not in discrete],
        discrete=discrete,
        categorical=list(categorical),
        prediction=prediction,
    )


def _run_evidently(
    reference: pd.DataFrame, current: pd.DataFrame, columns: _Columns, config: DriftConfig
) -> Any:
    """Evidently's snapshot of one ValueDrift per column, with its pass/fail tests."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    definition = DataDefinition(
        numerical_columns=columns.numeric, categorical_columns=columns.labelled
    )
    # One ValueDrift per column and no DriftedColumnsCount: the count metric would run every
    # column's test a second time; the count is taken from the per-column results instead.
    metrics = [
        ValueDrift(column=c, method=config.num_method, threshold=config.num_threshold)
        for c in columns.numeric
    ] + [
        ValueDrift(column=c, method=config.cat_method, threshold=config.cat_threshold)
        for c in columns.labelled
    ]

    def dataset(frame: pd.DataFrame) -> Any:
        prepared = _prepare(frame, columns.numeric, columns.discrete, columns.categorical)
        return Dataset.from_pandas(prepared, data_definition=definition)

    return Report(metrics, include_tests=True).run(dataset(current), dataset(reference))


def _feature_drifts(payload: dict[str, Any], kinds: dict[str, str]) -> dict[str, FeatureDrift]:
    """Each column's drift, read from the snapshot's dict (a column drifts if its test fails)."""
    failed = {
        t["metric_config"]["params"]["column"]
        for t in payload.get("tests", [])
        if t.get("status") == "FAIL"
    }
    results: dict[str, FeatureDrift] = {}
    for metric in payload["metrics"]:
        params = metric["config"]
        column = params["column"]
        score = float(metric["value"])
        results[column] = FeatureDrift(
            column=column,
            kind=kinds[column],
            method=params.get("method") or "",
            score=score if math.isfinite(score) else float("nan"),
            threshold=float(params.get("threshold") or float("nan")),
            drifted=column in failed,
        )
    return results


def _to_result(
    results: dict[str, FeatureDrift],
    columns: _Columns,
    config: DriftConfig,
    *,
    rows: int,
    rows_used: int,
    reference_rows: int,
) -> DriftResult:
    """The check's verdict from its columns' drift."""
    prediction = columns.prediction
    features = [results[c] for c in columns.order if c != prediction]
    predicted = results.get(prediction) if prediction else None
    drifted = [f.column for f in features if f.drifted]
    dataset_drift = len(drifted) >= config.min_drifted_features or bool(
        predicted and predicted.drifted
    )
    return DriftResult(
        checked_at=datetime.now(UTC).isoformat(),
        rows=rows,
        rows_used=rows_used,
        reference_rows=reference_rows,
        dataset_drift=dataset_drift,
        drifted_features=drifted,
        drift_share=len(drifted) / max(len(features), 1),
        features=features,
        prediction=predicted,
    )


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    config: DriftConfig | None = None,
    prediction: str | None = PREDICTION,
    with_report: bool = False,
) -> tuple[DriftResult, Any]:
    """Per-feature drift of `current` vs `reference`, plus drift of the predicted PD.

    Returns the result and, when `with_report`, Evidently's snapshot (for `save_html`).
    """
    config = config or DriftConfig()
    columns = _columns(reference, current, numeric, categorical, config, prediction)
    rows, reference_rows = len(current), len(reference)
    # Both sides are sampled: a model trained on millions of applicants has a reference of
    # hundreds of thousands of rows, and a check must not grow with it.
    if rows > config.max_rows:
        current = current.sample(n=config.max_rows, random_state=config.seed)
    if len(reference) > config.max_rows:
        reference = reference.sample(n=config.max_rows, random_state=config.seed)
    snapshot = _run_evidently(reference, current, columns, config)
    result = _to_result(
        _feature_drifts(snapshot.dict(), columns.kinds()),
        columns,
        config,
        rows=rows,
        rows_used=len(current),
        reference_rows=reference_rows,
    )
    return result, (snapshot if with_report else None)

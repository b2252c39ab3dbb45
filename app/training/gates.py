"""The absolute quality gates a trained model must pass before it is registered."""

from __future__ import annotations

from dataclasses import dataclass

from app.config import Settings
from app.training.fair_lending import Finding, Screen, breaches, checks, describe, screen_of
from app.training.tracking import RegistryError


class GateFailed(RegistryError):
    """The model missed an absolute quality gate: it was not registered."""


@dataclass(frozen=True)
class GateConfig:
    """The settings the gates read, and nothing else."""

    min_auc: float
    max_brier: float
    # The fair-lending screen (fair_lending.py); None or a ratio of 0 turns it off.
    screen: Screen | None = None


def gate_config(settings: Settings) -> GateConfig:
    """The gates: CREDIT_GATE_* where set, else the dataset spec's model section; the
    fair-lending screen on the spec's screened groupings."""
    spec = settings.load_dataset().spec
    return GateConfig(
        min_auc=spec.model.gate_min_auc if settings.gate_min_auc is None else settings.gate_min_auc,
        max_brier=(
            spec.model.gate_max_brier
            if settings.gate_max_brier is None
            else settings.gate_max_brier
        ),
        screen=screen_of(settings),
    )


def gates(
    config: GateConfig, metrics: dict[str, float], found: list[Finding] | None = None
) -> dict[str, bool]:
    """Each gate, named with its bound, -> passed; a metric that is missing fails its gate.
    `found`: the fair-lending findings on the same test split (fair_lending.findings)."""
    return {
        f"test_auc >= {config.min_auc}": metrics.get("test_auc", 0.0) >= config.min_auc,
        f"test_brier <= {config.max_brier}": metrics.get("test_brier", 1.0) <= config.max_brier,
        **(checks(config.screen, found or []) if config.screen else {}),
    }


def gate(
    config: GateConfig, metrics: dict[str, float], run_id: str, found: list[Finding] | None = None
) -> dict[str, bool]:
    """The gates' results when all passed; GateFailed naming the failed ones (and each group
    that breached the fair-lending screen, with its ratio) otherwise."""
    results = gates(config, metrics, found)
    if not all(results.values()):
        failed = ", ".join(k for k, ok in results.items() if not ok)
        groups = breaches(found or [])
        named = f": {describe(groups)}" if groups else ""
        raise GateFailed(
            f"model not registered: gate failed ({failed}){named}; "
            f"metrics are in MLflow run {run_id}"
        )
    return results

"""The absolute quality gates a trained model must pass before it is registered."""

from __future__ import annotations

from dataclasses import dataclass

from app.config import Settings
from app.training.tracking import RegistryError


class GateFailed(RegistryError):
    """The model missed an absolute quality gate: it was not registered."""


@dataclass(frozen=True)
class GateConfig:
    """The settings the gates read, and nothing else."""

    min_auc: float
    max_brier: float
    # 0 turns the fairness gate off.
    min_approval_ratio: float
    # The fairness grouping whose worst approval-rate ratio is gated (the dataset spec's).
    grouping: str | None = None


def gate_config(settings: Settings) -> GateConfig:
    """The gates: CREDIT_GATE_* where set, else the dataset spec's model and fairness sections."""
    spec = settings.load_dataset().spec
    groupings = spec.fairness.groupings
    return GateConfig(
        min_auc=spec.model.gate_min_auc if settings.gate_min_auc is None else settings.gate_min_auc,
        max_brier=(
            spec.model.gate_max_brier
            if settings.gate_max_brier is None
            else settings.gate_max_brier
        ),
        min_approval_ratio=settings.gate_min_approval_ratio,
        grouping=spec.fairness.gate or next(iter(groupings), None),
    )


def gates(config: GateConfig, metrics: dict[str, float]) -> dict[str, bool]:
    """Each gate, named with its bound, -> passed; a metric that is missing fails its gate."""
    checks = {
        f"test_auc >= {config.min_auc}": metrics.get("test_auc", 0.0) >= config.min_auc,
        f"test_brier <= {config.max_brier}": metrics.get("test_brier", 1.0) <= config.max_brier,
    }
    if config.min_approval_ratio > 0:
        # No grouping to gate on fails the gate rather than passing it unchecked.
        key = f"test_fairness_{config.grouping}_min_approval_ratio"
        ratio = metrics.get(key, 0.0) if config.grouping else 0.0
        checks[f"{config.grouping} approval ratio >= {config.min_approval_ratio}"] = (
            ratio >= config.min_approval_ratio
        )
    return checks


def gate(config: GateConfig, metrics: dict[str, float], run_id: str) -> dict[str, bool]:
    """The gates' results when all passed; GateFailed naming the failed ones otherwise."""
    checks = gates(config, metrics)
    if not all(checks.values()):
        failed = ", ".join(k for k, ok in checks.items() if not ok)
        raise GateFailed(
            f"model not registered: gate failed ({failed}); metrics are in MLflow run {run_id}"
        )
    return checks

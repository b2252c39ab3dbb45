"""The quality gates: each named with its bound, and a failure names what failed."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from app.config import load_settings
from app.training.gates import GateConfig, GateFailed, gate, gate_config, gates
from app.training.registry import RegistryError


def test_gates_name_what_failed(tmp_path):
    settings = load_settings(
        data_dir=tmp_path, gate_min_auc=0.8, gate_min_approval_ratio=0.8, _env_file=None
    )
    result = gates(
        gate_config(settings),
        {"test_auc": 0.76, "test_brier": 0.17, "test_fairness_age_band_min_approval_ratio": 0.9},
    )
    assert result == {
        "test_auc >= 0.8": False,
        "test_brier <= 0.25": True,
        "age_band approval ratio >= 0.8": True,
    }


def test_gate_config_reads_the_gate_settings_only(tmp_path):
    settings = load_settings(
        data_dir=tmp_path,
        gate_min_auc=0.72,
        gate_max_brier=0.2,
        gate_min_approval_ratio=0.0,
        _env_file=None,
    )
    config = gate_config(settings)
    assert config == GateConfig(
        min_auc=0.72, max_brier=0.2, min_approval_ratio=0.0, grouping="age_band"
    )
    with pytest.raises(FrozenInstanceError):
        config.min_auc = 0.0  # type: ignore[misc]
    # A ratio of 0 turns the fairness gate off; a missing metric fails its gate.
    assert gates(config, {"test_auc": 0.8}) == {
        "test_auc >= 0.72": True,
        "test_brier <= 0.2": False,
    }


def test_gate_passes_the_checks_through_or_names_the_failures_and_the_run():
    config = GateConfig(min_auc=0.7, max_brier=0.25, min_approval_ratio=0.8, grouping="age_band")
    good = {"test_auc": 0.75, "test_brier": 0.2, "test_fairness_age_band_min_approval_ratio": 0.9}
    assert all(gate(config, good, "run-1").values())
    bad = {**good, "test_auc": 0.6, "test_fairness_age_band_min_approval_ratio": 0.5}
    with pytest.raises(GateFailed) as caught:
        gate(config, bad, "run-2")
    assert str(caught.value) == (
        "model not registered: gate failed (test_auc >= 0.7, age_band approval ratio >= 0.8); "
        "metrics are in MLflow run run-2"
    )
    assert isinstance(caught.value, RegistryError)


def test_gates_default_to_the_dataset_spec(tmp_path):
    # Unset CREDIT_GATE_* take the spec's model section; the gated grouping is the spec's.
    config = gate_config(load_settings(data_dir=tmp_path, _env_file=None))
    assert config == GateConfig(
        min_auc=0.70, max_brier=0.25, min_approval_ratio=0.0, grouping="age_band"
    )

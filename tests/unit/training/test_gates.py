"""The quality gates: each named with its bound, and a failure names what failed (for the
fair-lending screen: the group and its ratio)."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from app.config import load_settings
from app.training.fair_lending import Finding, Screen
from app.training.gates import GateConfig, GateFailed, gate, gate_config, gates
from app.training.registry import RegistryError
from tests.utils.fairlending import screened_spec

SCREEN = Screen(ratio=0.8, alpha=0.05, groupings=("personal_status_and_sex",))
BREACH = Finding("personal_status_and_sex", "female", 60, 9, 0.42, 0.001, breach=True)
SMALL = Finding("personal_status_and_sex", "male : divorced", 12, 4, 0.76, 0.70, breach=False)


def test_gates_name_what_failed(tmp_path):
    settings = load_settings(
        data_dir=tmp_path, dataset=screened_spec(tmp_path), gate_min_auc=0.8, _env_file=None
    )
    result = gates(gate_config(settings), {"test_auc": 0.76, "test_brier": 0.17}, [SMALL])
    assert result == {
        "test_auc >= 0.8": False,
        "test_brier <= 0.25": True,
        # Below the screen but not significant: reported, not failed.
        "personal_status_and_sex adverse impact ratio >= 0.8 (or p >= 0.05)": True,
    }


def test_gate_config_reads_the_gate_settings_only(tmp_path):
    settings = load_settings(
        data_dir=tmp_path,
        dataset=screened_spec(tmp_path),
        gate_min_auc=0.72,
        gate_max_brier=0.2,
        fair_lending_screen=0.0,
        _env_file=None,
    )
    config = gate_config(settings)
    assert config == GateConfig(
        min_auc=0.72, max_brier=0.2, screen=Screen(0.0, 0.05, ("personal_status_and_sex",))
    )
    with pytest.raises(FrozenInstanceError):
        config.min_auc = 0.0  # type: ignore[misc]
    # A screen of 0 turns the fair-lending check off; a missing metric fails its gate.
    assert gates(config, {"test_auc": 0.8}, [BREACH]) == {
        "test_auc >= 0.72": True,
        "test_brier <= 0.2": False,
    }


def test_gate_passes_the_checks_through_or_names_the_failures_and_the_run():
    config = GateConfig(min_auc=0.7, max_brier=0.25, screen=SCREEN)
    good = {"test_auc": 0.75, "test_brier": 0.2}
    assert all(gate(config, good, "run-1", [SMALL]).values())
    with pytest.raises(GateFailed) as caught:
        gate(config, {**good, "test_auc": 0.6}, "run-2", [BREACH, SMALL])
    assert str(caught.value) == (
        "model not registered: gate failed (test_auc >= 0.7, personal_status_and_sex adverse "
        "impact ratio >= 0.8 (or p >= 0.05)): personal_status_and_sex 'female' adverse impact "
        "ratio 0.42 (9 of 60 approved, p=0.001); metrics are in MLflow run run-2"
    )
    assert isinstance(caught.value, RegistryError)


def test_gates_default_to_the_dataset_spec(tmp_path):
    # Unset CREDIT_GATE_* take the spec's model section; the screen (0.80 by default) covers
    # the spec's groupings that do not say `screen: false`: the shipped spec's two both do
    # (age under Reg B; a misaligned column), a lender's aligned copy screens sex.
    config = gate_config(load_settings(data_dir=tmp_path, _env_file=None))
    assert config == GateConfig(min_auc=0.70, max_brier=0.25, screen=Screen(0.8, 0.05, ()))
    assert gates(config, {"test_auc": 0.8, "test_brier": 0.2}, [BREACH]) == {
        "test_auc >= 0.7": True,
        "test_brier <= 0.25": True,
    }
    screened = load_settings(data_dir=tmp_path, dataset=screened_spec(tmp_path), _env_file=None)
    assert gate_config(screened).screen == SCREEN

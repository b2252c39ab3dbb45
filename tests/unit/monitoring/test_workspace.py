"""The Evidently workspace writer without Evidently: where it writes, and that a workspace it
cannot write is counted, never raised (tests/integration/test_drift_workspace.py writes real
runs and reads them back with Evidently)."""

from __future__ import annotations

from app.monitoring.workspace import DriftWorkspace, workspace_config
from tests.utils.monitoring import result


def test_the_workspace_lives_under_the_monitor_dir_unless_set(make_settings, tmp_path):
    default = make_settings(monitor_keep_reports=3)
    config = workspace_config(default)
    assert config.directory == default.monitor_dir / "workspace"
    assert (config.project, config.keep_full) == ("credit_risk drift", 3)
    chosen = make_settings(monitor_workspace_dir=tmp_path / "ws")
    assert workspace_config(chosen).directory == tmp_path / "ws"


def test_a_workspace_that_cannot_be_written_is_counted_and_retried_not_raised(
    make_settings, tmp_path
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    writer = DriftWorkspace(workspace_config(make_settings(monitor_workspace_dir=blocker / "ws")))
    assert writer.record(result(drift=True), snapshot=None) is False
    assert writer.record(result(drift=False), snapshot=None) is False
    assert writer.failures == 2

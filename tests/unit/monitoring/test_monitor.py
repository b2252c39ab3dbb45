"""The monitor as a whole, without Ray: its settings view and an empty check."""

from __future__ import annotations

from app.monitoring.drift import drift_config
from app.monitoring.monitor import monitor_config
from app.monitoring.retrain import retrain_policy
from app.monitoring.schedule import check_schedule
from tests.utils.monitoring import monitor


def test_the_monitor_reads_its_settings_once_through_one_view(settings):
    config = monitor_config(settings)
    assert (config.directory, config.max_buffer_rows) == (settings.monitor_dir, 250)
    assert config.drift == drift_config(settings)
    assert config.schedule == check_schedule(settings)
    assert config.retrain == retrain_policy(settings)
    assert config.retrain.after_checks == 2


def test_a_check_with_nothing_buffered_is_none_and_touches_nothing(settings):
    m = monitor(settings)
    assert m.check_now() is None
    status = m.status()
    assert (status["checks"], status["buffered_rows"], status["last_error"]) == (0, 0, None)
    assert not list(m.results.iterdir()) and not (m.root / "state.json").exists()

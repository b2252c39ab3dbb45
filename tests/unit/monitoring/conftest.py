"""Fixtures of the monitoring unit tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def settings(make_settings):
    return make_settings(monitor_max_buffer_rows=250, retrain_after_checks=2)

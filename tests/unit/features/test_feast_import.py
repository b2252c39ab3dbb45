"""Feast imported through app.features skips typeguard's import-time instrumentation."""

import subprocess
import sys

import pytest

from tests.utils import ROOT

PROBE = """
{first}
import feast
names = feast.FeatureService.__init__.__code__.co_names
print("instrumented" if "TypeCheckMemo" in names else "plain")
"""


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        # The first of our modules to import Feast.
        ("import app.features.repo", "plain"),
        # Feast on its own is instrumented: the probe can tell.
        ("", "instrumented"),
    ],
)
def test_feast_through_app_features_is_not_instrumented(first, expected):
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(first=first)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected

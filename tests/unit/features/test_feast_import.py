"""Feast imported through app.features skips typeguard's import-time instrumentation."""

import subprocess
import sys

from tests.utils import ROOT

PROBE = """
import app.features.repo  # the first of our modules to import Feast
import feast
names = feast.FeatureService.__init__.__code__.co_names
print("instrumented" if "TypeCheckMemo" in names else "plain")
"""


def test_feast_through_app_features_is_not_instrumented():
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "plain"


def test_feast_alone_is_instrumented():
    """The probe above can tell: Feast on its own is instrumented."""
    probe = PROBE.replace(
        "import app.features.repo  # the first of our modules to import Feast\n", ""
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "instrumented"

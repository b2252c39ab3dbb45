"""The README's settings table is the one generated from the Settings model."""

import contextlib
import io
import runpy

from tests.utils import ROOT


def test_settings_table_is_current():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(ROOT / "scripts" / "settings_table.py"), run_name="__main__")
    assert out.getvalue().strip() in (ROOT / "README.md").read_text(), (
        "README settings table is stale: paste the output of scripts/settings_table.py"
    )


def test_spec_reference_is_current():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(ROOT / "scripts" / "spec_reference.py"), run_name="__main__")
    assert out.getvalue().strip() in (ROOT / "README.md").read_text(), (
        "README spec reference is stale: paste the output of scripts/spec_reference.py"
    )

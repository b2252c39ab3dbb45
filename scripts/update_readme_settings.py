"""Replace the settings table in README.md with the one generated from the Settings model."""

import contextlib
import io
import re
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(ROOT / "scripts" / "settings_table.py"), run_name="__main__")
    readme = ROOT / "README.md"
    text = readme.read_text()
    pattern = re.compile(r"\| Variable \| Default \| Meaning \|\n(?:\|.*\|\n)+")
    if not pattern.search(text):
        raise SystemExit("README.md has no settings table to replace")
    readme.write_text(pattern.sub(lambda _: out.getvalue(), text, count=1))


if __name__ == "__main__":
    main()

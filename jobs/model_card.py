"""Write the model card of a registered version (HTML and JSON): data and spec, intended use,
metrics with the baseline and cross-validation, calibration by grade, fairness tables, the
stability reference, monotone constraints, reason codes, gates and the alias history."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.config import load_settings
from app.runtime import run_job, setup_logging
from app.training import model_card


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.model_card", description=__doc__)
    parser.add_argument("version", help="the registered version, e.g. 3 (or v3)")
    parser.add_argument(
        "--out", type=Path, help="folder for card.html and card.json (default: "
        "<data_dir>/model_cards/v<VERSION>)",
    )  # fmt: skip
    args = parser.parse_args()
    version = args.version.removeprefix("v")
    if not version.isdigit():
        parser.error(f"VERSION must be a number such as 3, not {args.version!r}")
    setup_logging()
    settings = load_settings()
    built = model_card.card(settings, version)
    out = args.out or settings.data_dir / "model_cards" / f"v{version}"
    json_path, html_path = model_card.write(built, out)
    print(f"model card of {built['model']} v{version}: {html_path} (and {json_path.name})")
    return 0


if __name__ == "__main__":
    run_job(main)

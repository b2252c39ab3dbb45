"""The German spec with its sex and marital-status grouping screened, as a lender with a
correctly aligned copy of the data would have it (the shipped copy's column is misaligned, so
the shipped spec only reports it)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.utils import ROOT

SCREENED = "personal_status_and_sex"


def screened_spec(folder: Path) -> Path:
    source = ROOT / "datasets" / "german_credit" / "dataset.yaml"
    spec = yaml.safe_load(source.read_text())
    spec["fairness"]["groupings"][SCREENED].pop("screen")
    spec["sources"]["flat_file"]["path"] = str(
        (source.parent / spec["sources"]["flat_file"]["path"]).resolve()
    )
    path = folder / "dataset.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path

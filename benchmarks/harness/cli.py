"""Command lines from tables of options: each benchmark states its knobs in one place, and
`--help` is answered before anything heavy (Ray, Feast, MLflow) is imported."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.harness.procs import ROOT

# (flag, type, default, help); type bool makes a switch.
Option = tuple[str, Any, Any, str]

WORKLOAD: list[Option] = [
    ("--applicants", int, 10_000, "synthetic applicants"),
    ("--bodies", int, 1_000, "request bodies to rotate"),
    ("--rounds", int, 300, "XGBoost boosting rounds"),
    ("--seed", int, 7, "seed for picking applicants"),
    ("--serve-config", Path, ROOT / "serve_config.yaml", "serve config of ours' deployment"),
    ("--start-timeout", float, 180, "seconds for a service to come up"),
    ("--wait-quiet", float, 0, "wait up to this many seconds for an idle machine first"),
    ("--keep-work-dir", bool, False, "keep data, model and logs after the run"),
]


def parser(doc: str | None, *groups: Sequence[Option]) -> argparse.ArgumentParser:
    """An argument parser described by the first paragraph of `doc`, with `groups` of options."""
    made = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    for group in groups:
        for flag, kind, default, text in group:
            if kind is bool:
                made.add_argument(flag, action="store_true", help=text)
            else:
                made.add_argument(flag, type=kind, default=default, help=text)
    return made


def int_list(text: str) -> list[int]:
    """ "1,2,4" or "1_000,10_000" as integers."""
    try:
        return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None

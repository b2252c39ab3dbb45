"""Untimed preparation of the monitoring stages: `rows` decisions as the service leaves them in
the prediction log's journal (segments of 500 records), and their outcomes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

SEGMENT_ROWS = 500  # the service's flush_rows: one journal segment per 500 decisions
DAYS = 90  # decisions spread over this many days, so the weekly table has rows


def decision_frame(frames: Any, rows: int, settings: Any) -> Any:
    """`rows` decisions: the drift frames' features and the model's PD, with the log's fields."""
    import pandas as pd

    from app.domain import PREDICTION
    from app.predictions.schema import schema_for

    dataset = settings.load_dataset()
    frame = frames.draw(rows, 3)
    rng = np.random.default_rng(11)
    start = pd.Timestamp("2026-09-01", tz="UTC")
    logged = start + pd.to_timedelta(np.sort(rng.integers(0, DAYS * 86400, rows)), unit="s")
    threshold = frames.model.threshold
    meta = {
        "request_id": [f"q{i:09d}" for i in range(rows)],
        "logged_at": logged,
        dataset.entity_key: [f"S{i:09d}" for i in range(rows)],
        "variant": "champion",
        "shadow": False,
        "model_name": settings.model_name,
        "model_version": "1",
        "decision": np.where(frame[PREDICTION] >= threshold, "decline", "approve"),
        "reasons": json.dumps([]),
        "features_as_of": logged,
        "caller": "bench",
        "spec_hash": dataset.spec_hash,
    }
    out = frame.assign(**meta)
    names = [n for n in schema_for(dataset).names if n in out.columns]
    return out[names]


def write_journal(frame: Any, directory: Path) -> int:
    """The frame as closed journal segments (a replica's, not yet compacted)."""
    from app.predictions.journal import JOURNAL_DIR, SUFFIX, encode_records

    journal = directory / JOURNAL_DIR
    journal.mkdir(parents=True, exist_ok=True)
    records = frame.to_dict("records")
    for seq, first in enumerate(range(0, len(records), SEGMENT_ROWS), start=1):
        chunk = records[first : first + SEGMENT_ROWS]
        (journal / f"bench-1-0-{seq:06d}{SUFFIX}").write_bytes(encode_records(chunk))
    return len(records)


def write_labels(frame: Any, path: Path, key: str) -> None:
    """An outcome for every decision, drawn from its PD (so AUC is a real model's)."""
    import pandas as pd

    from app.domain import PREDICTION

    rng = np.random.default_rng(12)
    defaulted = (rng.random(len(frame)) < frame[PREDICTION].to_numpy()).astype("int64")
    pd.DataFrame({key: frame[key], "defaulted": defaulted}).to_parquet(path, index=False)

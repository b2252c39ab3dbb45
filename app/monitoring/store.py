"""Where the drift monitor's checks end up: files under monitor_dir and the champion's MLflow run.

Per check, a JSON record (`results/`, all kept) and Evidently's HTML report (`reports/`, the
newest `keep_reports` kept); `latest.json` and `state.json` are rewritten after each check, so
a restarted monitor answers with its last result and keeps its trigger state. Every file is
replaced atomically: a reader sees the old one or the new one.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.config import Settings
from app.fs import atomic_path, atomic_write
from app.monitoring.drift import DriftResult
from app.monitoring.stability_view import append_section, check_section
from app.training import registry

log = logging.getLogger(__name__)


@dataclass
class MonitorState:
    """What must survive a restart besides the spool (written atomically after each check)."""

    checks: int = 0
    consecutive_drift: int = 0
    active_job: str | None = None
    triggers: list[dict[str, Any]] = field(default_factory=list)


def _write_json(path: Path, payload: Any) -> None:
    atomic_write(path, json.dumps(payload, indent=1, default=str))


class ResultStore:
    """The monitor's files under `root`: results/, reports/, latest.json and state.json."""

    def __init__(self, root: Path, keep_reports: int) -> None:
        self.root = Path(root)
        self.results = self.root / "results"
        self.reports = self.root / "reports"
        self.keep_reports = keep_reports
        for folder in (self.results, self.reports):
            folder.mkdir(parents=True, exist_ok=True)

    def load_state(self) -> MonitorState:
        path = self.root / "state.json"
        if path.exists():
            try:
                return MonitorState(**json.loads(path.read_text()))
            except Exception as exc:
                log.warning("monitor state unreadable, starting afresh: %s", exc)
        return MonitorState()

    def load_latest(self) -> dict[str, Any] | None:
        path = self.root / "latest.json"
        try:
            return json.loads(path.read_text()) if path.exists() else None
        except Exception:
            return None

    def save_state(self, state: MonitorState) -> None:
        _write_json(self.root / "state.json", state.__dict__)

    def save(self, payload: dict[str, Any], snapshot: Any, state: MonitorState) -> None:
        """The check's report, record, the latest result and the state; `payload` gains the
        report's path (extra.report)."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"drift-{stamp}-{payload['extra']['check']:06d}"
        report = self.reports / f"{name}.html"
        with atomic_path(report) as tmp:
            snapshot.save_html(str(tmp))
            append_section(tmp, check_section(payload))
        payload["extra"]["report"] = str(report)
        _write_json(self.results / f"{name}.json", payload)
        _write_json(self.root / "latest.json", payload)
        self.save_state(state)
        # Keep the newest reports only; the JSON records are small and all kept.
        for old in sorted(self.reports.glob("drift-*.html"))[: -self.keep_reports]:
            old.unlink(missing_ok=True)


def log_to_mlflow(settings: Settings, run_id: str, result: DriftResult, step: int) -> None:
    """The check's figures as metrics of the champion's run (`run_id`), at `step` = check."""
    try:  # the champion's run carries its drift history; MLflow down must not stop checks
        client = registry.client(settings)
        now = int(time.time() * 1000)
        values = {
            "drift_detected": float(result.dataset_drift),
            "drift_share": result.drift_share,
            "drift_rows": float(result.rows),
        }
        if result.prediction:
            values["drift_pd_score"] = result.prediction.score
        for key, value in values.items():
            client.log_metric(run_id, key, value, timestamp=now, step=step)
    except Exception as exc:
        log.warning("drift result not logged to MLflow: %s", exc)

"""The monitor's files: a record and a report per check, the latest result and the state."""

from __future__ import annotations

import json

from app.monitoring.store import MonitorState, ResultStore
from tests.utils.monitoring import result


class Snapshot:
    """Stands in for Evidently's snapshot: writes its HTML where it is told."""

    def save_html(self, path: str) -> None:
        with open(path, "w") as out:
            out.write("<html></html>")


def test_a_saved_check_is_its_record_report_latest_and_state(tmp_path):
    store = ResultStore(tmp_path, keep_reports=2)
    state = MonitorState(checks=1, consecutive_drift=1)
    payload = result(True).to_dict() | {"extra": {"check": 1}}
    store.save(payload, Snapshot(), state)
    (record,) = store.results.glob("drift-*.json")
    (report,) = store.reports.glob("drift-*.html")
    assert payload["extra"]["report"] == str(report)
    assert json.loads(record.read_text()) == payload == store.load_latest()
    assert store.load_state() == state
    assert not list(tmp_path.rglob("*.tmp"))  # every file was renamed into place


def test_only_the_newest_reports_are_kept(tmp_path):
    store = ResultStore(tmp_path, keep_reports=2)
    for check in range(1, 5):
        store.save(
            result(False).to_dict() | {"extra": {"check": check}}, Snapshot(), MonitorState()
        )
    assert len(list(store.results.glob("*.json"))) == 4
    kept = sorted(p.name for p in store.reports.glob("*.html"))
    assert [name[-11:] for name in kept] == ["000003.html", "000004.html"]


def test_an_unreadable_state_starts_afresh(tmp_path):
    store = ResultStore(tmp_path, keep_reports=2)
    (tmp_path / "state.json").write_text("{not json")
    (tmp_path / "latest.json").write_text("{not json")
    assert store.load_state() == MonitorState() and store.load_latest() is None

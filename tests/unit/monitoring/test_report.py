"""The HTML report: the figures next to its charts match the prediction log, the outcomes and
the drift history it was written from, it stands alone (images inline), and it says so when
there are no outcomes or drift checks yet."""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from app.domain import PREDICTION
from app.monitoring.labels import load_labels
from app.monitoring.report import NO_OUTCOMES, write_report
from app.monitoring.store import MonitorState, ResultStore
from app.predictions.log import PredictionLog
from app.predictions.schema import schema_for
from tests.utils.datasets import german
from tests.utils.monitoring import decision, result


class Page(HTMLParser):
    """Each <h2> section's tables (rows of cell texts), <img> sources and text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: dict[str, dict] = {}
        self._current: dict | None = None
        self._tag: str | None = None
        self._row: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self._tag = tag
        if tag == "h2":
            self._current = {"tables": [], "images": [], "text": ""}
        elif self._current is not None and tag == "table":
            self._current["tables"].append([])
        elif self._current is not None and tag == "tr":
            self._row = []
            self._current["tables"][-1].append(self._row)
        elif self._row is not None and tag in ("td", "th"):
            self._row.append("")
        elif self._current is not None and tag == "img":
            self._current["images"].append(dict(attrs)["src"])

    def handle_data(self, data):
        if self._tag == "h2":
            self.sections[data] = self._current
        elif self._current is not None:
            self._current["text"] += data
            if self._tag in ("td", "th") and self._row is not None:
                self._row[-1] += data

    def handle_endtag(self, tag):
        self._tag = None

    def table(self, section: str, index: int = -1) -> pd.DataFrame:
        header, *rows = self.sections[section]["tables"][index]
        return pd.DataFrame(rows, columns=header)


def write_log(directory, rows: list[dict]) -> None:
    plog = PredictionLog(directory, schema=schema_for(german()))
    plog.append(rows)
    plog.close()


def decisions() -> list[dict]:
    """Day 1: champion approves 3 of 4, challenger 1 of 2, one shadow score (not an answer).
    Day 2: 40 champion decisions, PD i/40, for the outcomes."""
    day1 = [
        decision("a1", "A1", "2026-11-01T09:00", 0.05),
        decision("a2", "A2", "2026-11-01T10:00", 0.10),
        decision("a3", "A3", "2026-11-01T11:00", 0.12),
        decision("a4", "A4", "2026-11-01T12:00", 0.60),
        decision("c1", "C1", "2026-11-01T09:30", 0.10, variant="challenger", version="2"),
        decision("c2", "C2", "2026-11-01T10:30", 0.70, variant="challenger", version="2"),
        decision("s1", "A1", "2026-11-01T09:00", 0.90, variant="challenger", shadow=True),
    ]
    day2 = [decision(f"b{i}", f"B{i}", "2026-11-02T12:00", i / 40) for i in range(40)]
    return day1 + day2


def outcomes(tmp_path) -> pd.DataFrame:
    # Defaults among the higher scores, with overlap so the AUC is neither 0.5 nor 1.
    defaulted = [int(i >= 28 or i in (5, 13, 21)) for i in range(40)]
    frame = pd.DataFrame({"applicant_id": [f"B{i}" for i in range(40)], "defaulted": defaulted})
    frame.to_csv(tmp_path / "outcomes.csv", index=False)
    return load_labels(tmp_path / "outcomes.csv", "applicant_id")


class Snapshot:
    """Stands in for Evidently's snapshot in the store (only its HTML is written)."""

    def save_html(self, path: str) -> None:
        with open(path, "w") as out:
            out.write("<html></html>")


STABILITY = {
    PREDICTION: {"psi": 0.04, "band": "stable"},
    "purpose": {"psi": 0.31, "band": "act"},
    "credit_amount": {"psi": 0.12, "band": "watch"},
}


# Approvals per age band as the second check answered them: 18-25 breaches the screen.
FAIRNESS = {
    "age_band": [
        {"group": "18-25", "n": 40, "approvals": 12, "approval_rate": 0.3,
         "approval_rate_ratio": 0.375, "p_value": 0.0001, "screened": True, "breach": True},
        {"group": "36-50", "n": 50, "approvals": 40, "approval_rate": 0.8,
         "approval_rate_ratio": 1.0, "p_value": None, "screened": True, "breach": False},
    ]
}  # fmt: skip


def record_checks(settings) -> None:
    store = ResultStore(settings.monitor_dir, keep_reports=5)
    for check, (drift, share, at) in enumerate(
        [(False, 0.0, "2026-11-01T12:00:00+00:00"), (True, 0.25, "2026-11-02T12:00:00+00:00")],
        start=1,
    ):
        payload = result(drift).to_dict() | {"checked_at": at, "drift_share": share}
        # The second check has the stability figures; the first predates them.
        payload["stability"] = STABILITY if check == 2 else {}
        payload["fairness"] = FAIRNESS if check == 2 else {}
        store.save(payload | {"extra": {"check": check}}, Snapshot(), MonitorState())


@pytest.fixture
def settings(make_settings):
    return make_settings(decision_threshold=0.5)


def test_the_report_shows_scores_approval_auc_and_drift_that_match_the_inputs(settings, tmp_path):
    write_log(settings.prediction_log_dir, decisions())
    labels = outcomes(tmp_path)
    record_checks(settings)
    path = write_report(settings, labels, period="D", baseline={"test_auc": 0.75})
    assert path == settings.monitor_dir / "report.html"
    page = Page(path.read_text())
    assert list(page.sections) == [
        "Score distribution",
        "Approval rate and AUC per period",
        "Calibration by PD grade",
        "Drift share over time",
        "Population and characteristic stability",
        "Fair lending: approvals by group",
    ]
    # Each section has its chart(s) inline: nothing to fetch.
    charts = {name: s["images"] for name, s in page.sections.items()}
    assert [len(images) for images in charts.values()] == [1, 2, 1, 1, 0, 0]
    assert all(src.startswith("data:image/png;base64,") for s in charts.values() for src in s)
    outside_images = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", path.read_text())
    assert "http" not in outside_images and "<script" not in outside_images

    scores = page.table("Score distribution").set_index("variant")
    assert scores.loc["champion", "decisions"] == "44"  # the shadow score is not an answer
    assert scores.loc["challenger", "decisions"] == "2"
    assert scores.loc["challenger", "approval_rate"] == "0.500"

    periods = page.table("Approval rate and AUC per period")
    by_key = periods.set_index(["period", "variant"])
    assert by_key.loc[("2026-11-01", "champion"), "approval_rate"] == "0.750"
    assert by_key.loc[("2026-11-01", "challenger"), "approval_rate"] == "0.500"
    # Day 2: PD i/40 against a 0.5 threshold approves i = 0..19.
    day2 = by_key.loc[("2026-11-02", "champion")]
    assert (day2["decisions"], day2["labelled"], day2["approval_rate"]) == ("40", "40", "0.500")
    frame = outcomes(tmp_path)
    expected = roc_auc_score(frame["defaulted"], [i / 40 for i in range(40)])
    assert day2["auc"] == f"{expected:.4f}"
    assert by_key.loc[("2026-11-01", "champion"), "auc"] == "-"

    # Day 2's 40 labelled decisions (PD i/40) in the default master scale's grades.
    grades = page.table("Calibration by PD grade")
    assert grades["outcomes"].astype(int).sum() == 40
    assert grades["grade"].tolist() == ["1", "2", "3", "4", "5", "6", "7"]
    assert set(grades["flag"]) <= {"", "-", "under", "over"}

    drift = page.table("Drift share over time")
    assert drift["checked_at"].tolist() == ["2026-11-02 12:00:00 UTC", "2026-11-01 12:00:00 UTC"]
    assert drift["drift_share"].tolist() == ["0.250", "0.000"]
    assert drift["dataset_drift"].tolist() == ["yes", "no"]
    assert drift["drifted_features"].tolist()[0] == "credit_amount"
    assert drift["score_psi"].tolist() == ["0.040", "-"]
    assert drift["largest_csi"].tolist() == ["purpose 0.310", "-"]
    assert drift["lowest_air"].tolist() == ["age_band 18-25 0.38", "-"]
    assert drift["screen_breaches"].tolist() == ["1", "-"]
    stability = page.table("Population and characteristic stability")
    assert stability.values.tolist() == [
        ["purpose", "CSI", "0.3100", "act"],
        ["credit_amount", "CSI", "0.1200", "watch"],
        [PREDICTION, "PSI", "0.0400", "stable"],
    ]
    assert (
        "2026-11-02 12:00:00 UTC"
        in page.sections["Population and characteristic stability"]["text"]
    )
    fairness = page.table("Fair lending: approvals by group")
    assert fairness.columns.tolist()[:6] == [
        "group", "n", "approvals", "approval_rate", "approval_rate_ratio", "p_value"
    ]  # fmt: skip
    assert fairness.values.tolist() == [
        ["18-25", "40", "12", "0.300", "0.375", "0.0001", "yes", "yes"],
        ["36-50", "50", "40", "0.800", "1.000", "-", "yes", "no"],
    ]
    section = page.sections["Fair lending: approvals by group"]["text"]
    assert "2026-11-02 12:00:00 UTC" in section and "CREDIT_FAIR_LENDING_SCREEN" in section
    assert not list(settings.monitor_dir.glob(".*.tmp"))  # written atomically


def test_without_outcomes_or_drift_checks_the_report_says_so(settings):
    write_log(settings.prediction_log_dir, decisions())
    page = Page(write_report(settings).read_text())
    periods = page.sections["Approval rate and AUC per period"]
    assert NO_OUTCOMES in periods["text"]
    assert len(periods["images"]) == 1  # the approval rate, no AUC chart
    assert page.table("Approval rate and AUC per period")["labelled"].eq("0").all()
    drift = page.sections["Drift share over time"]
    assert "no drift checks recorded yet" in drift["text"] and not drift["images"]
    stability = page.sections["Population and characteristic stability"]["text"]
    assert "no drift check with stability figures yet" in stability
    fairness = page.sections["Fair lending: approvals by group"]["text"]
    assert "no drift check with approvals per group yet" in fairness
    assert NO_OUTCOMES in page.sections["Calibration by PD grade"]["text"]


def test_an_empty_log_still_gives_a_report(settings):
    page = Page(write_report(settings).read_text())
    for name in ("Score distribution", "Approval rate and AUC per period"):
        assert "no decisions logged yet" in page.sections[name]["text"]


def test_a_few_thousand_decisions_take_under_three_seconds(settings, tmp_path):
    rows = [
        decision(f"r{i}", f"A{i}", f"2026-11-{1 + i % 28:02d}T12:00", (i % 97) / 97)
        for i in range(5000)
    ]
    write_log(settings.prediction_log_dir, rows)
    labels = pd.DataFrame({"applicant_id": [f"A{i}" for i in range(0, 5000, 2)]})
    labels["defaulted"] = [int(i % 3 == 0) for i in range(len(labels))]
    record_checks(settings)
    # CPU time: the report's own cost, whatever else the machine runs meanwhile.
    started = time.process_time()
    write_report(settings, labels)
    assert time.process_time() - started < 3.0

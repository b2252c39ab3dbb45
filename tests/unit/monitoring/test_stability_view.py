"""A drift check's Evidently page gains what Evidently lacks: PSI and CSI on the frozen bins
and approvals per fairness group."""

from __future__ import annotations

from app.domain import PREDICTION


def test_a_check_page_gains_its_stability_and_approvals_at_the_end_of_the_body(tmp_path):
    from app.monitoring.stability_view import append_section, check_section

    payload = {
        "stability": {
            PREDICTION: {"psi": 0.31, "band": "act"},
            "amount": {"psi": 0.02, "band": "stable"},
        },
        "fairness": {
            "age_band": [
                {"group": "18-25", "n": 10, "approvals": 2, "approval_rate": 0.2,
                 "approval_rate_ratio": 0.25, "p_value": 0.01, "screened": False,
                 "breach": False},
            ]
        },
    }  # fmt: skip
    page = tmp_path / "drift.html"
    page.write_text("<html><body><div>evidently</div></body></html>")
    append_section(page, check_section(payload))
    text = page.read_text()
    assert (
        text.index("evidently")
        < text.index("Population and characteristic")
        < text.index("</body>")
    )
    assert "Approvals by age_band" in text and "0.3100" in text and "18-25" in text
    # A check from before the figures existed: the page is left as Evidently wrote it.
    before = page.read_text()
    append_section(page, check_section({}))
    assert page.read_text() == before

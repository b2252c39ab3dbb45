"""A model card (app.training.model_card) as one self-contained HTML page: no script, no
external asset, readable in any browser and printable for a sign-off file."""

from __future__ import annotations

from html import escape
from typing import Any

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: #666; } .fail { color: #b00020; font-weight: 600; } .pass { color: #1b5e20; }
"""


def _cell(value: Any) -> str:
    if value is None:
        return "<td class='muted'>-</td>"
    if isinstance(value, bool):
        return f"<td class='{'pass' if value else 'fail'}'>{'yes' if value else 'no'}</td>"
    if isinstance(value, float):
        return f"<td class='num'>{value:.4g}</td>"
    if isinstance(value, int):
        return f"<td class='num'>{value:,}</td>"
    return f"<td>{escape(str(value))}</td>"


def table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    if not rows:
        return "<p class='muted'>Not recorded for this version.</p>"
    columns = columns or list(rows[0])
    head = "".join(f"<th>{escape(c.replace('_', ' '))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(r.get(c)) for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def pairs(values: dict[str, Any]) -> str:
    return table([{"item": k, "value": v} for k, v in values.items()])


def _metrics(card: dict[str, Any]) -> str:
    metrics = card["metrics"]
    rows = [
        {"metric": m, "model (test)": metrics["test"].get(m),
         "logistic baseline (test)": metrics["baseline_test"].get(m)}
        for m in ("auc", "gini", "ks", "brier")
    ]  # fmt: skip
    cv = metrics["cross_validation"]
    note = ""
    if "cv_auc_mean" in cv:
        note = (
            f"<p>{int(cv['cv_folds'])}-fold cross-validated AUC on {int(cv['cv_rows']):,} "
            f"development rows: model <b>{cv['cv_auc_mean']:.3f} ± {cv['cv_auc_std']:.3f}</b>"
        )
        if "cv_baseline_auc_mean" in cv:
            note += f", baseline {cv['cv_baseline_auc_mean']:.3f} ± {cv['cv_baseline_auc_std']:.3f}"
        note += " (mean ± standard deviation over folds).</p>"
    return table(rows) + note + table(card["cross_validation_folds"])


def _fairness(card: dict[str, Any]) -> str:
    fairness = card["fairness"]
    if not fairness:
        return "<p class='muted'>Not recorded for this version.</p>"
    screened = ", ".join(fairness["screened"]) or "none (every grouping reported only)"
    verdict = "passed" if fairness["passed"] else "FAILED"
    parts = [
        f"<p>Screen: adverse impact ratio {fairness['screen']} with Fisher's p below "
        f"{fairness['alpha']}; screened groupings: {escape(screened)}; outcome: "
        f"<span class='{'pass' if fairness['passed'] else 'fail'}'>{verdict}</span>.</p>"
    ]
    columns = ["group", "n", "approvals", "approval_rate", "default_rate", "auc", "mean_pd",
               "approval_rate_ratio", "p_value", "pd_smd"]  # fmt: skip
    for name, rows in fairness["groupings"].items():
        parts.append(f"<h3>{escape(name)}</h3>" + table(rows, columns))
    return "".join(parts)


def _stability(card: dict[str, Any]) -> str:
    reference = card["stability_reference"]
    if not reference:
        return "<p class='muted'>Not recorded for this version.</p>"
    cuts = ", ".join(f"{c:.4f}" for c in reference["score_cuts"])
    columns = [{"characteristic": c, "bins": n} for c, n in reference["characteristics"].items()]
    return (
        "<p>PSI of the score and CSI per characteristic are computed on these bins, frozen "
        f"from the training rows. Score decile cuts (PD): {escape(cuts)}.</p>" + table(columns)
    )


def render_html(card: dict[str, Any]) -> str:
    """The card as a page."""
    data, title = card["data"], f"{card['model']} v{card['version']}"
    aliases = ", ".join(card["aliases"]) or "none"
    monotone = [{"feature": f, "direction": "risk rises" if d > 0 else "risk falls"}
                for f, d in card["monotone_constraints"].items()]  # fmt: skip
    gates = [{"gate": g, "passed": ok} for g, ok in card["gates"].items()]
    facts = {k: v for k, v in data.items() if k != "rows"}
    facts |= {f"rows ({k})": v for k, v in data["rows"].items()}
    sections = [
        ("Intended use", f"<p>{escape(card['intended_use'])}</p>"),
        ("Data", pairs(facts)),
        ("Performance", _metrics(card)),
        ("Calibration by PD grade (test split)", table(card["calibration_by_grade"])),
        ("Fair lending", _fairness(card)),
        ("Stability reference", _stability(card)),
        ("Monotone constraints", table(monotone)),
        ("Reason codes", table(card["reasons"])),
        ("Gates", table(gates) + f"<p>Run tag: {escape(str(card['gates_tag']))}</p>"),
        ("Alias history", table(card["alias_history"])),
    ]
    body = "".join(f"<h2>{escape(h)}</h2>{content}" for h, content in sections)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Model card: {escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>Model card: {escape(title)}</h1><p class='muted'>Registered "
        f"{escape(card['registered'])}; aliases now: {escape(aliases)}; MLflow run "
        f"{escape(card['run_id'])}; decision threshold {card['threshold']:.4f}.</p>"
        f"{body}</body></html>\n"
    )

"""The model card of a registered version: what a model risk team reads before signing it off
(SR 11-7's documentation), built from what the registry and the version's run hold.

Everything in it is read back, not recomputed: the run's metrics, cross-validation, grade
calibration, fair-lending screenings and stability bins; the model artifact's spec, threshold,
monotone constraints and reason catalogue; the registry's alias history. `card(...)` gives a
JSON-ready dict, `render_html` one self-contained page. It is logged to the version's run at
registration and again after every alias move (`publish`), and made on demand by
`python -m jobs.model_card VERSION`.
"""

from __future__ import annotations

import ast
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from app.config import Settings
from app.domain import PREDICTION
from app.training import fair_lending, registry
from app.training.crossval import CV_TABLE
from app.training.reason_catalog import catalogue
from app.training.reference import BINS_FILE, REFERENCE_DIR
from app.training.run_log import GATES_FILE, GRADES_TABLE

CARD_DIR = "model_card"
METRICS = ("auc", "gini", "ks", "brier")


def _artifact(client, run_id: str, path: str) -> str | None:
    """The text of one artifact of the run, None if the run has none at `path` (a version
    trained before it was logged); a registry error propagates."""
    folder = str(Path(path).parent)
    if path not in {a.path for a in client.list_artifacts(run_id, folder)}:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        return Path(client.download_artifacts(run_id, path, tmp)).read_text()


def _table(text: str | None) -> list[dict[str, Any]]:
    if text is None:
        return []
    from io import StringIO

    frame = pd.read_csv(StringIO(text))
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def _metrics(run_metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {m: run_metrics[f"{prefix}_{m}"] for m in METRICS if f"{prefix}_{m}" in run_metrics}


def _monotone(params: dict[str, str]) -> dict[str, int]:
    text = params.get("xgb_monotone_constraints")
    return dict(ast.literal_eval(text)) if text else {}


def _stability(text: str | None) -> dict[str, Any]:
    """The frozen bins as the card shows them: the score's decile cuts and reference shares,
    and each characteristic's number of bins (missing included)."""
    if text is None:
        return {}
    grids = json.loads(text)
    score = grids.get(PREDICTION, {})
    others = {c: len(g["expected"]) for c, g in grids.items() if c != PREDICTION}
    return {
        "score_cuts": score.get("edges", []),
        "score_shares": score.get("expected", []),
        "characteristics": others,
    }


def card(settings: Settings, version: str) -> dict[str, Any]:
    """The model card of `version` as a JSON-ready dict."""
    from app.training.pyfunc import load_registered

    client = registry.client(settings)
    name = settings.model_name
    with registry.failures_named(settings.mlflow_tracking_uri, f"reading {name} v{version}"):
        model_version = client.get_model_version(name, version)
        run = client.get_run(model_version.run_id)
        run_id = run.info.run_id
        texts = {
            path: _artifact(client, run_id, path)
            for path in (
                CV_TABLE, GRADES_TABLE, GATES_FILE, f"{REFERENCE_DIR}/{BINS_FILE}",
                f"{fair_lending.ARTIFACT_DIR}/test.json",
            )
        }  # fmt: skip
    model, _ = load_registered(client, name, version)
    dataset = model.dataset
    metrics, params, tags = run.data.metrics, run.data.params, run.data.tags
    screening = texts[f"{fair_lending.ARTIFACT_DIR}/test.json"]
    created = datetime.fromtimestamp(model_version.creation_timestamp / 1000, UTC)
    return {
        "model": name,
        "version": version,
        "run_id": run_id,
        "registered": created.isoformat(timespec="seconds"),
        "aliases": sorted(model_version.aliases),
        "data": {
            "dataset": dataset.spec.name,
            "description": dataset.spec.description,
            "spec_hash": dataset.spec_hash,
            "snapshot_id": tags.get("snapshot_id"),
            "git_commit": tags.get("git_commit"),
            "split": params.get("split_method"),
            "rows": {s: params.get(f"rows_{s}") for s in ("train", "validation", "test")},
        },
        "intended_use": intended_use(dataset, model.threshold),
        "threshold": model.threshold,
        "metrics": {
            "test": _metrics(metrics, "test"),
            "baseline_test": _metrics(metrics, "baseline_test"),
            "cross_validation": {k: v for k, v in metrics.items() if k.startswith("cv_")},
        },
        "cross_validation_folds": _table(texts[CV_TABLE]),
        "calibration_by_grade": _table(texts[GRADES_TABLE]),
        "fairness": json.loads(screening) if screening else {},
        "stability_reference": _stability(texts[f"{REFERENCE_DIR}/{BINS_FILE}"]),
        "monotone_constraints": _monotone(params),
        "reasons": [
            {"column": c, "code": r.code, "subject": r.subject}
            for c, r in sorted(catalogue(dataset).items(), key=lambda item: item[1].code)
        ],
        "gates": json.loads(texts[GATES_FILE]) if texts[GATES_FILE] else {},
        "gates_tag": tags.get("gates"),
        "alias_history": alias_history(client, name, version),
    }


def alias_history(client, name: str, version: str) -> list[dict[str, Any]]:
    """The audit events that moved an alias to or from `version`, oldest first."""
    events = registry.history(client, name)
    return [e.__dict__ for e in events if version in (e.version, e.previous_version)]


def article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"


def intended_use(dataset, threshold: float) -> str:
    entity = dataset.spec.entity.name
    return (
        f"Probability of default of {article(entity)} {entity}'s credit application, from the "
        "features of "
        f"dataset {dataset.spec.name!r}: declined when PD >= {threshold:.4f}, each decline with "
        "its adverse-action reason codes. Protected attributes are never inputs. Not for "
        "populations unlike the training data (see the stability reference) or for any use "
        "the fairness tables were not reviewed for."
    )


def publish(settings: Settings, version: str) -> dict[str, Any]:
    """Build the card and log it (card.json, card.html) to the version's run; -> the card."""
    from app.training.model_card_html import render_html

    built = card(settings, version)
    client = registry.client(settings)
    with registry.failures_named(settings.mlflow_tracking_uri, f"logging v{version}'s card"):
        client.log_dict(built["run_id"], built, f"{CARD_DIR}/card.json")
        client.log_text(built["run_id"], render_html(built), f"{CARD_DIR}/card.html")
    return built


def write(built: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """card.json and card.html of a built card in `out`; -> their paths."""
    from app.training.model_card_html import render_html

    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "card.json", out / "card.html"
    json_path.write_text(json.dumps(built, indent=1, default=str))
    html_path.write_text(render_html(built))
    return json_path, html_path


def publish_or_say(settings: Settings, version: str) -> tuple[str, dict[str, Any] | None]:
    """publish; -> where the card is, or why it is not, and the card (None if not built).
    Called once an alias has moved, so a card that cannot be written is said (the caller
    prints it), never taken for a failed registration or promotion."""
    try:
        built = publish(settings, version)
    except Exception as exc:  # the alias move stands; the card can be made again later
        return (
            f"model card not logged ({type(exc).__name__}: {exc}); make it with "
            f"`python -m jobs.model_card {version}`"
        ), None
    return f"runs:/{built['run_id']}/{CARD_DIR}/card.html", built


def cards_dir(settings: Settings) -> Path:
    return settings.data_dir / "model_cards"


def write_or_say(settings: Settings, version: str, built: dict[str, Any] | None = None) -> str:
    """The card (`built`, as just published, or built now) written to
    <data_dir>/model_cards/v<version>; -> its path, or why not (the main job goes on: the
    model is registered and the card can be made again)."""
    try:
        built = built if built is not None else card(settings, version)
        _, html = write(built, cards_dir(settings) / f"v{version}")
    except Exception as exc:
        return f"not written ({type(exc).__name__}: {exc}; `python -m jobs.model_card {version}`)"
    return str(html)

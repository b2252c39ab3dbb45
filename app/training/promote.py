"""Promotion and rollback of the champion alias, decided on the same held-out data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from app.config import Settings
from app.domain import CHALLENGER, CHAMPION
from app.training import fair_lending, model_card, registry
from app.training.dataset import configured_split, load_training_frame
from app.training.fair_lending import Finding, screen_of
from app.training.fairness import fairness_summary
from app.training.pyfunc import load_registered


class PromotionRefused(registry.RegistryError):
    """The challenger did not beat the champion by the configured margin."""


@dataclass
class PromotionResult:
    champion: str
    previous_champion: str | None
    challenger_auc: float | None
    champion_auc: float | None
    forced: bool
    # The fair-lending screen's findings on the challenger (breaches only when forced).
    found: list[Finding] = field(default_factory=list)
    card: str = ""  # where the new champion's model card is in MLflow, or why it is not


@dataclass
class HeldOut:
    """Each version's PD on today's test split of the current snapshot: the same rows for
    all, so the comparison is fair whatever data each model was trained on."""

    test: pd.DataFrame
    label: str
    scores: dict[str, np.ndarray]
    thresholds: dict[str, float]
    run_ids: dict[str, str]

    def auc(self, version: str) -> float:
        return float(roc_auc_score(self.test[self.label], self.scores[version]))


def held_out(settings: Settings, versions: list[str]) -> HeldOut:
    test = configured_split(load_training_frame(settings), settings).test
    mlflow_client = registry.client(settings)
    scores, thresholds, run_ids = {}, {}, {}
    for v in versions:
        model, _ = load_registered(mlflow_client, settings.model_name, v)
        scores[v], thresholds[v] = model.predict_pd(test), model.threshold
        with registry.failures_named(settings.mlflow_tracking_uri, f"reading v{v}'s run"):
            run_ids[v] = mlflow_client.get_model_version(settings.model_name, v).run_id
    return HeldOut(test, settings.load_dataset().label, scores, thresholds, run_ids)


def screen_challenger(settings: Settings, data: HeldOut, version: str) -> list[Finding]:
    """The fair-lending screen of `version` on the held-out rows at its own cutoff, kept in
    its run as fair_lending/promotion-<time>.json (with its breach count as a metric)."""
    screen = screen_of(settings)  # kept even when nothing is screened: the tables are reported
    groupings = settings.load_dataset().spec.fairness.groupings
    summary = fairness_summary(
        data.test[data.label], data.scores[version], data.test, data.thresholds[version], groupings
    )
    found = fair_lending.findings(summary, screen)
    mlflow_client = registry.client(settings)
    # To the microsecond: two screenings within one second (a refusal, then --force) both stay.
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    run_id = data.run_ids[version]
    with registry.failures_named(settings.mlflow_tracking_uri, f"logging v{version}'s screen"):
        mlflow_client.log_dict(
            run_id,
            fair_lending.record(screen, summary, found),
            f"{fair_lending.ARTIFACT_DIR}/promotion-{stamp}.json",
        )
        breaches = float(len(fair_lending.breaches(found)))
        mlflow_client.log_metric(run_id, "promotion_fair_lending_breaches", breaches)
    return found


def promote(settings: Settings, force: bool = False) -> PromotionResult:
    mlflow_client = registry.client(settings)
    name = settings.model_name
    challenger = registry.alias_version(mlflow_client, name, CHALLENGER)
    if challenger is None:
        raise registry.RegistryError(
            f"model {name!r} has no challenger to promote: train one with `python -m jobs.train`"
        )
    champion = registry.alias_version(mlflow_client, name, CHAMPION)
    data = held_out(settings, [challenger] + ([champion] if champion else []))
    found = screen_challenger(settings, data, challenger)
    breaches = fair_lending.breaches(found)
    if breaches and not force:
        raise PromotionRefused(
            f"challenger v{challenger} fails the fair-lending screen "
            f"({settings.fair_lending_screen}): {fair_lending.describe(breaches)}; "
            "champion unchanged (the tables are in its MLflow run under fair_lending/; "
            "--force promotes it anyway and the alias history records the breach)"
        )
    challenger_auc = champion_auc = None
    if champion is not None:
        challenger_auc, champion_auc = data.auc(challenger), data.auc(champion)
        if not force and challenger_auc < champion_auc + settings.promote_min_auc_gain:
            raise PromotionRefused(
                f"challenger v{challenger} (test AUC {challenger_auc:.4f}) does not beat champion "
                f"v{champion} ({champion_auc:.4f}) by {settings.promote_min_auc_gain}: "
                "champion unchanged (use --force to override)"
            )
    reason = (
        "forced by operator"
        if force
        else f"challenger AUC {challenger_auc:.4f} vs champion {champion_auc:.4f}"
        if champion is not None
        else "no champion yet"
    )
    if breaches:
        reason += f"; fair-lending screen failed: {fair_lending.describe(breaches)}"
    registry.move_alias(mlflow_client, name, CHAMPION, challenger, "promote", reason)
    registry.clear_alias(mlflow_client, name, CHALLENGER, f"promoted v{challenger}")
    card, _ = model_card.publish_or_say(settings, challenger)
    return PromotionResult(challenger, champion, challenger_auc, champion_auc, force, found, card)


def rollback(settings: Settings) -> PromotionResult:
    """Restore the champion that the most recent promotion replaced."""
    mlflow_client = registry.client(settings)
    name = settings.model_name
    current = registry.alias_version(mlflow_client, name, CHAMPION)
    for event in reversed(registry.history(mlflow_client, name)):
        if (
            event.alias == CHAMPION
            and event.action in ("promote", CHAMPION)
            and event.version == current
            and event.previous_version
        ):
            registry.move_alias(
                mlflow_client,
                name,
                CHAMPION,
                event.previous_version,
                "rollback",
                f"rolled back v{current}",
            )
            card, _ = model_card.publish_or_say(settings, event.previous_version)
            return PromotionResult(event.previous_version, current, None, None, False, [], card)
    raise registry.RegistryError(
        f"no earlier champion of {name!r} to roll back to (see `python -m jobs.promote --history`)"
    )

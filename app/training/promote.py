"""Promotion and rollback of the champion alias, decided on the same held-out data."""

from __future__ import annotations

from dataclasses import dataclass

from sklearn.metrics import roc_auc_score

from app.config import Settings
from app.domain import CHALLENGER, CHAMPION
from app.training import registry
from app.training.dataset import configured_split, load_training_frame
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


def _held_out_auc(settings: Settings, versions: list[str]) -> dict[str, float]:
    """Each version's AUC on today's test split of the current snapshot: the same rows for
    all, so the comparison is fair whatever data each model was trained on."""
    test = configured_split(load_training_frame(settings), settings).test
    mlflow_client = registry.client(settings)
    return {
        v: float(
            roc_auc_score(
                test[settings.load_dataset().label],
                load_registered(mlflow_client, settings.model_name, v)[0].predict_pd(test),
            )
        )
        for v in versions
    }


def promote(settings: Settings, force: bool = False) -> PromotionResult:
    mlflow_client = registry.client(settings)
    name = settings.model_name
    challenger = registry.alias_version(mlflow_client, name, CHALLENGER)
    if challenger is None:
        raise registry.RegistryError(
            f"model {name!r} has no challenger to promote: train one with `python -m jobs.train`"
        )
    champion = registry.alias_version(mlflow_client, name, CHAMPION)
    challenger_auc = champion_auc = None
    if champion is not None and not force:
        aucs = _held_out_auc(settings, [challenger, champion])
        challenger_auc, champion_auc = aucs[challenger], aucs[champion]
        if challenger_auc < champion_auc + settings.promote_min_auc_gain:
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
    registry.move_alias(mlflow_client, name, CHAMPION, challenger, "promote", reason)
    registry.clear_alias(mlflow_client, name, CHALLENGER, f"promoted v{challenger}")
    return PromotionResult(challenger, champion, challenger_auc, champion_auc, force)


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
            return PromotionResult(event.previous_version, current, None, None, False)
    raise registry.RegistryError(
        f"no earlier champion of {name!r} to roll back to (see `python -m jobs.promote --history`)"
    )

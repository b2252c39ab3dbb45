"""The set of models one replica scores with, and refreshing it from the aliases."""

from __future__ import annotations

from dataclasses import dataclass

from app.dataset import Dataset
from app.domain import CHALLENGER, CHAMPION, VARIANTS
from app.training.source import ModelSource, ServedModel


class IncompatibleModel(ValueError):
    """A version trained on a dataset spec this service cannot feed: another entity, other
    request fields, or model columns the service's features do not provide."""


def check_compatible(served: ServedModel, dataset: Dataset) -> None:
    """IncompatibleModel naming what differs, unless the service's spec can feed the model."""
    theirs = served.model.dataset
    problems = []
    if theirs.entity_key != dataset.entity_key:
        problems.append(f"its entity key is {theirs.entity_key!r}, not {dataset.entity_key!r}")
    fields = {c: theirs.columns[c].type for c in theirs.request_columns}
    ours = {c: dataset.columns[c].type for c in dataset.request_columns}
    if fields != ours:
        problems.append(f"its request fields are {fields}, not {ours}")
    missing = [c for c in served.compiled.raw_columns if c not in dataset.input_columns]
    if missing:
        problems.append(f"it reads column(s) the service does not have: {', '.join(missing)}")
    if problems:
        raise IncompatibleModel(
            f"v{served.version} was trained on dataset {theirs.name!r} (spec {theirs.spec_hash}) "
            f"and the service runs {dataset.name!r} (spec {dataset.spec_hash}): "
            + "; ".join(problems)
            + "; retrain it on the current spec"
        )


@dataclass(frozen=True)
class ModelSet:
    """What one replica scores with; replaced as a whole, so a request sees one consistent set."""

    champion: ServedModel | None = None
    challenger: ServedModel | None = None

    def versions(self) -> dict[str, str | None]:
        return {
            CHAMPION: self.champion.version if self.champion else None,
            CHALLENGER: self.challenger.version if self.challenger else None,
        }


def refresh_models(current: ModelSet, source: ModelSource, dataset: Dataset) -> ModelSet:
    """The set the aliases name now, reusing already-loaded versions; raises if one fails to
    load or cannot be fed by the service's dataset spec (`check_compatible`).

    A challenger alias on the champion's own version is no challenger: promotion moves the
    champion alias before it clears the challenger one, and a poll between the two must not
    route A/B or shadow traffic from a version to itself."""
    wanted = dict(source.aliases())
    if wanted.get(CHALLENGER) == wanted.get(CHAMPION):  # both None: nothing changes
        wanted[CHALLENGER] = None
    loaded = {m.version: m for m in (current.champion, current.challenger) if m is not None}
    chosen: dict[str, ServedModel | None] = {}
    for alias in VARIANTS:
        version = wanted.get(alias)
        if version is None:
            chosen[alias] = None
        else:
            model = loaded.get(version)
            if model is None:
                model = source.load(version)
                check_compatible(model, dataset)
            chosen[alias] = loaded[version] = model
    return ModelSet(**chosen)

"""The set of models one replica scores with, and refreshing it from the aliases."""

from __future__ import annotations

from dataclasses import dataclass

from app.domain import CHALLENGER, CHAMPION, VARIANTS
from app.training.source import ModelSource, ServedModel


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


def refresh_models(current: ModelSet, source: ModelSource) -> ModelSet:
    """The set the aliases name now, reusing already-loaded versions; raises if one fails.

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
            chosen[alias] = loaded.get(version) or source.load(version)
            loaded[version] = chosen[alias]
    return ModelSet(**chosen)

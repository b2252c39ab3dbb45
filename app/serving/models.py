"""Registered models for serving: which versions the aliases name, and loading one by version."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from app.config import Settings
from app.serving.routing import bounded_traffic
from app.training.compiled import CompiledModel
from app.training.model import CreditModel

ALIASES = ("champion", "challenger")


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: str
    model: CreditModel
    # The version's `traffic` registry tag (drift-triggered retraining sets it), as honoured
    # within settings.serve_max_tag_traffic (None: no tag, or ignored).
    traffic: str | None = None
    # What was done with the tag (honoured / ignored and why), for the log and /readyz.
    traffic_note: str | None = None
    # The request path's form of `model`, prepared once per loaded version.
    compiled: CompiledModel = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compiled", CompiledModel(self.model))


@dataclass(frozen=True)
class ModelSet:
    """What one replica scores with; replaced as a whole, so a request sees one consistent set."""

    champion: ServedModel | None = None
    challenger: ServedModel | None = None

    def versions(self) -> dict[str, str | None]:
        return {
            "champion": self.champion.version if self.champion else None,
            "challenger": self.challenger.version if self.challenger else None,
        }


class ModelSource(Protocol):
    """Where a replica gets models; injected so a deployment can be pointed elsewhere."""

    def aliases(self) -> dict[str, str | None]: ...

    def load(self, version: str) -> ServedModel: ...


class RegistryModelSource:
    """The MLflow registry: aliases resolve to versions, versions load as CreditModels."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client = None

    def _registry(self):
        from app.training import registry

        if self._client is None:
            self._client = registry.client(self.settings)
        return self._client

    def aliases(self) -> dict[str, str | None]:
        """Raises RegistryError when MLflow cannot answer: never "no champion" for "down"."""
        from app.training import registry

        named = registry.aliases(self._registry(), self.settings.model_name)
        return {alias: named.get(alias) for alias in ALIASES}

    def load(self, version: str) -> ServedModel:
        """The version, after its files matched the digest recorded at registration
        (ArtifactRefused otherwise: a tampered version is never loaded)."""
        from app.training import registry
        from app.training.pyfunc import load_registered

        name = self.settings.model_name
        model, tags = load_registered(self._registry(), name, version)
        traffic, note = bounded_traffic(
            tags.get(registry.TRAFFIC_TAG), self.settings.serve_max_tag_traffic
        )
        return ServedModel(name, version, model, traffic, note)


def refresh_models(current: ModelSet, source: ModelSource) -> ModelSet:
    """The set the aliases name now, reusing already-loaded versions; raises if one fails."""
    wanted = source.aliases()
    loaded = {m.version: m for m in (current.champion, current.challenger) if m is not None}
    chosen: dict[str, ServedModel | None] = {}
    for alias in ALIASES:
        version = wanted.get(alias)
        if version is None:
            chosen[alias] = None
        else:
            chosen[alias] = loaded.get(version) or source.load(version)
            loaded[version] = chosen[alias]
    return ModelSet(**chosen)

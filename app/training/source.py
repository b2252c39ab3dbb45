"""Registered models as serving and batch scoring load them: which versions the aliases name,
and a version loaded (digest-checked) with its traffic tag bounded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from app.config import Settings
from app.domain import VARIANTS
from app.training import registry
from app.training.compiled import CompiledModel
from app.training.model import CreditModel


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: str
    model: CreditModel
    # The version's `traffic` registry tag (drift-triggered retraining sets it), as honoured
    # within settings.serve_max_tag_traffic (None: no tag, or ignored).
    traffic: str | None = None
    # What was done with the tag (honoured / ignored and why), for the log and /v1/status.
    traffic_note: str | None = None
    # The request path's form of `model`, prepared once per loaded version.
    compiled: CompiledModel = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compiled", CompiledModel(self.model))


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
        if self._client is None:
            self._client = registry.client(self.settings)
        return self._client

    def aliases(self) -> dict[str, str | None]:
        """Raises RegistryError when MLflow cannot answer: never "no champion" for "down"."""
        named = registry.aliases(self._registry(), self.settings.model_name)
        return {alias: named.get(alias) for alias in VARIANTS}

    def load(self, version: str) -> ServedModel:
        """The version, after its files matched the digest recorded at registration
        (ArtifactRefused otherwise: a tampered version is never loaded)."""
        # Here, not at the top: pyfunc imports MLflow (~11 s), which a replica built from
        # in-process models (tests, benchmarks) never needs.
        from app.training.pyfunc import load_registered

        name = self.settings.model_name
        model, tags = load_registered(self._registry(), name, version)
        traffic, note = bounded_traffic(
            tags.get(registry.TRAFFIC_TAG), self.settings.serve_max_tag_traffic
        )
        return ServedModel(name, version, model, traffic, note)


def bounded_traffic(tag: str | None, max_weight: float) -> tuple[str | None, str | None]:
    """A version's registry `traffic` tag within the operator's bound -> (the tag to honour
    or None, a note saying what was done with it, or None for no tag).

    Registry write access should not be a way to move live traffic at will: `shadow` (no
    answer changes) is always honoured; an A/B weight only up to `max_weight`
    (settings.serve_max_tag_traffic), above it the tag is ignored; anything else is ignored.
    """
    if not tag or not tag.strip() or tag.strip().lower() == "none":
        return None, None
    value = tag.strip().lower()
    if value == "shadow":
        return value, f"traffic={tag!r} honoured (shadow scoring only)"
    try:
        weight = float(value.removeprefix("weight="))
    except ValueError:
        return None, f"traffic={tag!r} ignored: not `shadow` or `weight=<0..1>`"
    if not 0 < weight <= 1:
        return None, f"traffic={tag!r} ignored: weight outside (0, 1]"
    if weight > max_weight:
        return None, (
            f"traffic={tag!r} ignored: above serve_max_tag_traffic {max_weight:g} "
            "(set the weight with a redeploy instead)"
        )
    return f"weight={weight:g}", f"traffic={tag!r} honoured (A/B weight floor {weight:g})"

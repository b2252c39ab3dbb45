"""Decision replay: a logged decision reached again from its record and its version's artifact,
months later, after aliases have moved and the spec has changed.

The record's digest is checked first (a record altered since it was written is reported, not
replayed), then the version is loaded through the registry (its files checked against the
digest recorded at registration: a tampered artifact refuses to load) and the record's own
features go through the decision path the service runs (`decide.answer`) with the record's
threshold, routing and counter-offer bounds. The artifact carries the spec it was trained on,
so a spec changed since does not change the replay; a record whose spec hash differs from the
artifact's says so. Cost: one filtered read of the log (the request ids, or a time range) and
one model load per version.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow.compute as pc

from app.config import Settings
from app.domain import CHALLENGER
from app.errors import CreditRiskError
from app.predictions.log import read_prediction_log
from app.predictions.record import DIGEST, record_digest
from app.predictions.schema import offer_columns, schema_for
from app.serving.decide import Features, answer
from app.serving.routing import RoutingConfig, choose_variant
from app.training import registry
from app.training.offers import OfferBounds
from app.training.source import ServedModel

PD_TOLERANCE = 1e-12


class UnknownRequest(CreditRiskError):
    """No record of the request id in the prediction log."""


@dataclass
class Replay:
    request_id: str
    version: str
    variant: str
    shadow: bool
    logged_pd: float
    replayed_pd: float | None = None
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def reproduced(self) -> bool:
        return not self.differences

    def line(self) -> str:
        who = f"v{self.version} {self.variant}{' (shadow)' if self.shadow else ''}"
        if self.reproduced:
            head = f"{self.request_id}: reproduced by {who}, PD {self.replayed_pd:.12f}"
        else:
            head = f"{self.request_id}: DIFFERS ({who}): " + "; ".join(self.differences)
        return head + "".join(f"\n    note: {n}" for n in self.notes)


def records(settings: Settings, where) -> list[dict[str, Any]]:
    """The log's records `where` holds for, as Python values, oldest first."""
    table = read_prediction_log(
        settings.prediction_log_dir, schema_for(settings.load_dataset()), where=where
    )
    return sorted(table.to_pylist(), key=lambda r: (r["logged_at"], r["shadow"]))


def by_request_id(settings: Settings, request_id: str) -> list[dict[str, Any]]:
    found = records(settings, pc.field("request_id") == request_id)
    if not found:
        raise UnknownRequest(
            f"unknown request id {request_id!r}: no record of it in the prediction log at "
            f"{settings.prediction_log_dir}"
        )
    return found


def sample_since(settings: Settings, since: datetime, n: int, seed: int) -> list[dict[str, Any]]:
    """Up to `n` answered decisions logged at or after `since`, drawn at random (seeded)."""
    where = (pc.field("logged_at") >= since) & (pc.field("shadow") == False)  # noqa: E712
    found = records(settings, where)
    drawn = random.Random(seed).sample(found, min(n, len(found)))
    return sorted(drawn, key=lambda r: r["logged_at"])


class Replayer:
    """Replays records, loading each version once (through the registry, digest-checked)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = registry.client(settings)
        self.models: dict[str, ServedModel] = {}

    def served(self, name: str, version: str) -> ServedModel:
        if version not in self.models:
            from app.training.pyfunc import load_registered

            model, _ = load_registered(self.client, name, version)
            self.models[version] = ServedModel(name, version, model)
        return self.models[version]

    def replay(self, record: dict[str, Any]) -> Replay:
        done = Replay(
            record["request_id"], record["model_version"], record["variant"],
            bool(record["shadow"]), record["probability_of_default"],
        )  # fmt: skip
        written = record.get(DIGEST)
        if written is None:
            done.notes.append("no digest: logged before records carried one (not verifiable)")
        elif written != record_digest(record):
            done.differences.append("the record was altered after it was written (digest)")
            return done
        served = self.served(record["model_name"], done.version)
        dataset = served.compiled.model.dataset
        if record.get("spec_hash") not in (None, dataset.spec_hash):
            done.differences.append(
                f"spec hash {record['spec_hash']} in the record, {dataset.spec_hash} in v"
                f"{done.version}'s artifact"
            )
        response = decide_again(served, record)
        done.replayed_pd = response.probability_of_default
        done.differences += compare(record, response, dataset)
        done.notes += routing_notes(record, dataset.entity_key)
        return done


def decide_again(served: ServedModel, record: dict[str, Any]):
    """The record's features through the service's decision path, with its context."""
    key = served.compiled.model.dataset.entity_key
    columns = {c: [record.get(c)] for c in served.compiled.raw_columns}
    features = Features(columns, [True], [record.get("features_as_of")], ids=[record[key]])
    bounds = record.get("offer_bounds")
    offers = None
    if bounds:
        values = json.loads(bounds)
        offers = OfferBounds(**{**values, "durations": tuple(values["durations"])})
    response, _ = answer(
        served, record["variant"], features, [0], record.get("threshold"),
        [record["request_id"]], bool(record["shadow"]), offers,
    )[0]  # fmt: skip
    return response


def compare(record: dict[str, Any], response, dataset) -> list[str]:
    differences = []
    logged, again = record["probability_of_default"], response.probability_of_default
    if abs(logged - again) > PD_TOLERANCE:
        differences.append(f"PD {again!r} against {logged!r} logged")
    if response.decision != record["decision"]:
        differences.append(f"decision {response.decision} against {record['decision']} logged")
    reasons = json.dumps([r.model_dump() for r in response.reasons])
    if json.loads(reasons) != json.loads(record["reasons"] or "[]"):
        differences.append(f"reasons {reasons} against {record['reasons']} logged")
    offer = {} if response.counter_offer is None else response.counter_offer.model_dump()
    for column in offer_columns(dataset):
        value, kept = offer.get(column.removeprefix("counter_offer_")), record.get(column)
        close = isinstance(value, float) and isinstance(kept, float) and abs(value - kept) <= 1e-12
        if value != kept and not close:
            differences.append(f"{column} {value} against {kept} logged")
    return differences


def routing_notes(record: dict[str, Any], key: str) -> list[str]:
    """Whether the routing kept in the record sends this applicant where it went."""
    if not record.get("routing") or record["shadow"]:
        return []
    config = RoutingConfig(**json.loads(record["routing"]))
    if not config.sticky and config.challenger_weight > 0:
        return ["routing was a random draw: the variant is as logged, not re-derived"]
    expected = choose_variant(record[key], config, has_challenger=True)
    if expected == record["variant"]:
        return [f"routing re-derived: {expected}"]
    if expected == CHALLENGER:  # the challenger's share went to the champion: none loaded
        return ["routing would send it to the challenger: none was loaded then"]
    return [f"routing would send it to {expected}, not {record['variant']}"]

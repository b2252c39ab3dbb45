"""The decision API as a client calls it: request bodies, the local key's bearer header, and a
sample of applications sent one by one (the main job's "decisions" stage)."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from app.config import Settings
from app.dataset import Dataset
from app.domain import APPROVE, DECLINE
from app.errors import SourceError


def decision_body(row: Mapping[str, Any], dataset: Dataset) -> dict[str, Any]:
    """POST /v1/decisions's body for a row holding the entity key and the request fields
    (`application` left out when the spec has none)."""
    body: dict[str, Any] = {dataset.entity_key: row[dataset.entity_key]}
    if dataset.request_columns:
        body["application"] = {c: row[c] for c in dataset.request_columns}
    return body


def bearer_headers(settings: Settings) -> dict[str, str]:
    """The local key's Authorization header (the main job writes `<data_dir>/api_token`)."""
    if settings.api_auth == "disabled":
        return {}
    return {"Authorization": f"Bearer {(settings.data_dir / 'api_token').read_text().strip()}"}


@dataclass
class SampleRun:
    """What a sample of decisions came back with."""

    sent: int = 0
    latencies: list[float] = field(default_factory=list)
    decisions: Counter = field(default_factory=Counter)
    variants: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)
    first_decline: dict[str, Any] | None = None

    @property
    def answered(self) -> int:
        return sum(self.decisions.values())

    def summary(self) -> str:
        p50 = statistics.median(self.latencies) * 1000 if self.latencies else float("nan")
        detail = (
            f"{self.answered}/{self.sent} answered ({self.decisions.get(APPROVE, 0)} approve, "
            f"{self.decisions.get(DECLINE, 0)} decline; {dict(self.variants)}), p50 {p50:.0f} ms"
        )
        return detail + (f"; failed: {dict(self.failures)}" if self.failures else "")


def send_sample(url: str, bodies: Iterable[dict[str, Any]], headers: dict[str, str]) -> SampleRun:
    """Each body POSTed in turn, as a client would; failures counted by kind, never raised."""
    run = SampleRun()
    with requests.Session() as session:
        session.headers.update(headers)
        for body in bodies:
            run.sent += 1
            started = time.perf_counter()
            try:
                response = session.post(f"{url}/v1/decisions", json=body, timeout=30)
            except requests.RequestException as exc:
                run.failures[type(exc).__name__] += 1
                continue
            run.latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                run.failures[f"HTTP {response.status_code}"] += 1
                continue
            answer = response.json()
            run.decisions[answer["decision"]] += 1
            run.variants[answer["model"]["variant"]] += 1
            if run.first_decline is None and answer["decision"] == DECLINE:
                run.first_decline = answer
    return run


def send_decisions(
    settings: Settings, url: str, count: int, say: Callable[[str], None]
) -> tuple[str, int]:
    """A sample of real applications through the HTTP API, as a client would send them."""
    from app.data.snapshot import load_snapshot
    from app.features.store import request_row

    dataset = settings.load_dataset()
    applications = load_snapshot(settings.offline_dir, dataset.spine.name, head=count)
    bodies = (decision_body(request_row(a, dataset), dataset) for _, a in applications.iterrows())
    run = send_sample(url, bodies, bearer_headers(settings))
    if not run.answered:
        failures = dict(run.failures)
        raise SourceError(f"the decision service answered none of {run.sent}: {failures}")
    if (sample := run.first_decline) is not None:
        say(
            f"    e.g. {sample[dataset.entity_key]}: decline, "
            f"PD {sample['probability_of_default']:.2f}"
            f", model v{sample['model']['version']}, reasons:"
        )
        for reason in sample["reasons"]:
            say(f"      {reason['code']} {reason['description']}")
    return run.summary(), run.answered

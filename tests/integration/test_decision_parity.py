"""The request path against Feast's own read and the model's DataFrame scoring, per applicant.

2,000 synthetic applicants materialized by Feast into each online store (SQLite and a real
Redis), with missing feature values, applicants known to one view only, rows far older than
their view's TTL, and ids the store has never seen. Each is decided by the serving code
(`open_reader` -> `decide_batch`, batches of 16, champion and challenger both answering) and by
the reference: `FeatureStore.get_online_features` on the FeatureService (Feast runs the
on-demand view itself) -> `CreditModel.score` on that DataFrame. PD, decision, reason codes in
order, texts and `features_as_of` must agree; unknown applicants must be 404 on both sides.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from app.serving.bodies import api_models
from app.serving.models import ModelSet
from app.serving.routing import RoutingConfig
from app.training.source import ServedModel
from tests.utils import isolated_settings
from tests.utils.api import fit_in_process
from tests.utils.datasets import german, validated

DecisionRequest = api_models(german()).DecisionRequest

pytestmark = pytest.mark.integration

APPLICANTS = 2_000
BATCH = 16
UNKNOWN = [f"NOBODY{i:03d}" for i in range(40)]


def _with_gaps(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Holes a real warehouse has: nulls, applicants one view lacks, very old rows."""
    rng = np.random.default_rng(13)
    profile = tables["applicant_profile"].copy()
    financials = tables["applicant_financials"].copy()
    for frame in (profile, financials):
        for column in frame.columns[2:]:
            holes = rng.random(len(frame)) < 0.05
            if frame[column].dtype.kind == "i":
                frame[column] = frame[column].astype("Int64")
            frame.loc[holes, column] = None
    # Older than both views' TTLs (365 / 180 days): Feast's online read still serves them.
    old = profile.index[100:140]
    profile.loc[old, "event_timestamp"] -= pd.Timedelta(days=3 * 365)
    # Known to the profile view only.
    financials = financials.drop(index=financials.index[200:240])
    return {**tables, "applicant_profile": profile, "applicant_financials": financials}


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def parity(request, tmp_path_factory, redis_service):
    from app.data.snapshot import write_snapshot
    from app.data.warehouse import source_tables
    from app.features.store import materialize
    from app.training.dataset import load_training_frame

    overrides = {}
    if request.param == "redis":
        # Its own database and project: other tests materialize into the same server.
        overrides = {"online_store": "redis", "redis_port": redis_service.port, "redis_db": 3}
    settings = isolated_settings(
        data_dir=tmp_path_factory.mktemp(f"parity-{request.param}") / "data",
        feast_project="parity",
        **overrides,
    )
    tables = _with_gaps(validated(source_tables(settings, rows=APPLICANTS)))
    write_snapshot(settings.offline_dir, tables, {}, {"type": "test"}, german().tables)
    materialize(settings, end=datetime.now(UTC) + timedelta(minutes=1))
    frame = load_training_frame(settings)
    shallow = settings.model_copy(update={"xgb_params": {**settings.xgb_params, "max_depth": 2}})
    models = ModelSet(
        ServedModel(settings.model_name, "1", fit_in_process(settings, frame, rounds=120)),
        ServedModel(settings.model_name, "2", fit_in_process(shallow, frame, rounds=60)),
    )
    applications = tables["loan_applications"]
    requests = [
        DecisionRequest(
            applicant_id=row["applicant_id"],
            application={
                "credit_amount": int(row["credit_amount"]),
                "duration_in_month": int(row["duration_in_month"]),
                "purpose": row["purpose"],
                "installment_rate_in_percentage_of_disposable_income": int(
                    row["installment_rate_in_percentage_of_disposable_income"]
                ),
            },
        )
        for row in applications.to_dict("records")
    ]
    template = requests[0].application
    requests += [DecisionRequest(applicant_id=a, application=template) for a in UNKNOWN]
    return settings, models, requests


def _ours(settings, models, requests, config):
    from app.features.online import open_reader
    from app.serving.decide import decide_batch, fetch_features

    reader = open_reader(settings)
    outcomes = []
    try:
        for start in range(0, len(requests), BATCH):
            batch = requests[start : start + BATCH]
            features = fetch_features(reader, batch, lambda _ms: None)
            outcomes += decide_batch(batch, features, models, config).outcomes
    finally:
        reader.close()
    return outcomes


def _reference(settings, requests) -> tuple[pd.DataFrame, list]:
    """Feast's own online read of the FeatureService, and each row's oldest event time."""
    from app.features.store import get_store

    store = get_store(settings)
    service = store.get_feature_service(settings.feature_service_name)
    rows = [{"applicant_id": r.entity_id, **r.application.model_dump()} for r in requests]
    response = store.get_online_features(features=service, entity_rows=rows)
    # Feast's frame holds the features; the model also reads the application's own fields.
    frame = response.to_df().assign(**pd.DataFrame(rows).drop(columns="applicant_id"))
    stamps = response.to_dict(include_event_timestamps=True)
    stored = [f.name for p in service.feature_view_projections[:2] for f in p.features]
    seconds = np.array([stamps[f"{f}__ts"] for f in stored], dtype="int64").T
    as_of = [
        datetime.fromtimestamp(int(row[row > 0].min()), tz=UTC) if (row > 0).any() else None
        for row in seconds
    ]
    return frame, as_of


def test_request_path_matches_feast_and_the_dataframe_model(parity):
    settings, models, requests = parity
    config = RoutingConfig(challenger_weight=0.5, drift_monitor=False)
    outcomes = _ours(settings, models, requests, config)
    frame, as_of = _reference(settings, requests)

    known = [a is not None for a in as_of]
    assert sum(known) == APPLICANTS  # the gaps above left every real applicant readable
    assert [o.status for o in outcomes] == [200 if k else 404 for k in known]
    variants = {o.response.model.variant for o in outcomes if o.status == 200}
    assert variants == {"champion", "challenger"}

    compared = 0
    for variant in ("champion", "challenger"):
        served = getattr(models, variant)
        idx = [
            i
            for i, o in enumerate(outcomes)
            if o.status == 200 and o.response.model.variant == variant
        ]
        expected = served.model.score(frame.iloc[idx])
        for pos, i in enumerate(idx):
            got = outcomes[i].response
            want = expected["probability_of_default"].iat[pos]
            assert abs(got.probability_of_default - want) < 1e-9
            assert got.decision == expected["decision"].iat[pos], requests[i].entity_id
            assert [r.model_dump() for r in got.reasons] == expected["reasons"].iat[pos]
            assert got.features_as_of == as_of[i]
            assert got.model.version == served.version
            compared += 1
    assert compared == APPLICANTS
    # The holes were really exercised: declines with reasons quoting missing information.
    texts = [r.description for o in outcomes if o.status == 200 for r in o.response.reasons]
    assert any(t.startswith("No information on") for t in texts)
    old = datetime.now(UTC) - timedelta(days=2 * 365)
    assert any(o.response.features_as_of < old for o in outcomes if o.status == 200)

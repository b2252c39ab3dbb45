"""Decision replay against a real registry (MLflow on SQLite) and the real prediction log: the
decisions the API answered are reached again from their records, after the champion alias has
moved and the spec has changed; an altered record or artifact and an unknown id are refused
loudly."""

from __future__ import annotations

import pytest
import yaml
from fastapi.testclient import TestClient

from app.domain import DECLINE
from app.predictions.record import DIGEST
from app.serving import replay
from app.training import artifacts, registry
from tests.utils import isolated_settings, run_job
from tests.utils.registry import register_fitted
from tests.utils.serving import application

PD_EXACT = 1e-12


@pytest.fixture(scope="module")
def answered(api_settings, models, tokens, tmp_path_factory):
    """40 decisions answered by registered v1 (champion) and v2 (challenger, a quarter of the
    applicants, sticky) with shadow scoring; -> (settings, request ids)."""
    from app.serving.api import build_api
    from app.serving.routing import RoutingConfig
    from app.serving.service import DecisionService

    tmp = tmp_path_factory.mktemp("replay")
    settings = isolated_settings(
        data_dir=api_settings.data_dir,
        mlflow_tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
        mlflow_artifact_root=tmp / "artifacts",
        prediction_log_dir=tmp / "log",
    )
    assert register_fitted(settings, models.by_alias["champion"].model, "champion") == "1"
    assert register_fitted(settings, models.by_alias["challenger"].model, "challenger") == "2"
    service = DecisionService(settings)
    headers = {"Authorization": f"Bearer {tokens['all']}"}
    with TestClient(build_api(service), headers=headers) as http:
        http.portal.call(service.start)
        service.apply_config(RoutingConfig(challenger_weight=0.25, shadow=True))
        bodies = [
            {"applicant_id": f"A{i + 1:07d}", "application": application(i)} for i in range(40)
        ]
        done = http.post("/v1/decisions/batch", json={"requests": bodies})
        assert done.status_code == 200 and not done.json()["errors"], done.text[:300]
        ids = [r["request_id"] for r in done.json()["decisions"]]
    service.close()
    return settings, ids


def test_every_answered_decision_is_reproduced_exactly(answered):
    settings, ids = answered
    replayer = replay.Replayer(settings)
    found = [r for rid in ids for r in replay.by_request_id(settings, rid)]
    variants = {r["variant"] for r in found if not r["shadow"]}
    assert variants == {"champion", "challenger"} and any(r["shadow"] for r in found)
    assert any(r["decision"] == DECLINE and r["counter_offer_credit_amount"] for r in found)
    for record in found:
        done = replayer.replay(record)
        assert done.reproduced, done.line()
        assert abs(done.replayed_pd - record["probability_of_default"]) <= PD_EXACT
        if not record["shadow"]:
            assert f"routing re-derived: {record['variant']}" in done.notes, done.line()


def test_replay_holds_after_the_alias_moved_and_the_spec_changed(answered, tmp_path):
    settings, ids = answered
    client = registry.client(settings)
    registry.move_alias(client, settings.model_name, "champion", "2", "promote", "test")
    try:
        shipped = settings.dataset / "dataset.yaml"
        spec = yaml.safe_load(shipped.read_text())
        spec["description"] = "a later revision of the spec"
        spec["reasons"]["codes"]["duration_in_month"]["subject"] = "term of the loan"
        spec["sources"]["flat_file"]["path"] = str(
            (shipped.parent / spec["sources"]["flat_file"]["path"]).resolve()
        )
        changed = tmp_path / "dataset.yaml"
        changed.write_text(yaml.safe_dump(spec, sort_keys=False))
        later = settings.model_copy(update={"dataset": changed})
        assert later.load_dataset().spec_hash != settings.load_dataset().spec_hash
        replayer = replay.Replayer(later)
        for record in replay.by_request_id(later, ids[0]):
            assert replayer.replay(record).reproduced
    finally:
        registry.move_alias(client, settings.model_name, "champion", "1", "rollback", "test")


def test_an_altered_record_is_reported_not_replayed(answered):
    settings, ids = answered
    (record, *_) = replay.by_request_id(settings, ids[1])
    assert record[DIGEST]
    altered = {**record, "probability_of_default": record["probability_of_default"] / 2}
    done = replay.Replayer(settings).replay(altered)
    assert done.differences == ["the record was altered after it was written (digest)"]
    # A record altered with its digest written again is caught by the replay itself.
    from app.predictions.record import record_digest

    redigested = {**altered, DIGEST: record_digest(altered)}
    again = replay.Replayer(settings).replay(redigested)
    assert not again.reproduced and again.differences[0].startswith("PD ")


def test_the_job_exits_by_outcome_and_names_an_unknown_id(answered):
    settings, ids = answered
    env = {
        "CREDIT_DATA_DIR": str(settings.data_dir),
        "CREDIT_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "CREDIT_MLFLOW_ARTIFACT_ROOT": str(settings.mlflow_artifact_root),
        "CREDIT_PREDICTION_LOG_DIR": str(settings.prediction_log_dir),
    }
    done = run_job("jobs.replay", ids[2], env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{ids[2]}: reproduced by v" in done.stdout
    # An unknown id is a CreditRiskError naming it: one line and exit 2 from any job.
    with pytest.raises(replay.UnknownRequest, match="unknown request id 'no-such-request'"):
        replay.by_request_id(settings, "no-such-request")


def test_a_tampered_artifact_refuses_to_replay(answered, models, tmp_path):
    settings, ids = answered
    own = settings.model_copy(
        update={
            "mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "mlflow_artifact_root": tmp_path / "artifacts",
        }
    )
    assert register_fitted(own, models.by_alias["champion"].model, "champion") == "1"
    for file in (tmp_path / "artifacts").rglob("booster*"):
        file.write_bytes(file.read_bytes().replace(b"{", b"{ ", 1))
    found = (r for rid in ids for r in replay.by_request_id(settings, rid))
    record = next(r for r in found if r["model_version"] == "1")
    with pytest.raises(artifacts.ArtifactRefused, match="credit_risk v1"):
        replay.Replayer(own).replay(record)


def test_an_audit_draws_answered_decisions_since_a_time(answered):
    from datetime import UTC, datetime

    settings, ids = answered
    drawn = replay.sample_since(settings, datetime(2000, 1, 1, tzinfo=UTC), 5, seed=3)
    assert len(drawn) == 5 and not any(r["shadow"] for r in drawn)
    assert {r["request_id"] for r in drawn} <= set(ids)
    assert drawn == replay.sample_since(settings, datetime(2000, 1, 1, tzinfo=UTC), 5, seed=3)
    assert replay.sample_since(settings, datetime(2100, 1, 1, tzinfo=UTC), 5, seed=3) == []
    replayer = replay.Replayer(settings)
    assert all(replayer.replay(r).reproduced for r in drawn)

"""What the API tells whom: the open probes say only their status and are rate limited as a
whole, details are behind `monitoring:read`, failures reach callers as fixed messages with an
error id (the full error, secrets masked, in the log), one unreadable stored record fails only
its own request, and shadow scoring never queues without bound (the real app and service in
process, no Ray)."""

from __future__ import annotations

import shutil
import sqlite3
import threading

import pytest
from fastapi.testclient import TestClient

from tests.utils import wait_for
from tests.utils.serving import body as serving_body


def body(i: int) -> dict:
    return serving_body(i, prefix="A")


def test_the_open_probes_say_only_their_status_and_details_need_monitoring_read(client, tokens):
    for path in ("/healthz", "/readyz"):
        response = client.get(path, headers={"Authorization": ""})
        assert response.status_code == 200 and response.json() == {"status": "ok"}, path
    assert client.get("/v1/status", headers={"Authorization": ""}).status_code == 401
    denied = client.get("/v1/status", headers={"Authorization": f"Bearer {tokens['decide']}"})
    assert denied.status_code == 403
    status = client.get("/v1/status", headers={"Authorization": f"Bearer {tokens['monitor']}"})
    assert status.status_code == 200
    assert {"champion", "routing", "registry", "replica"} <= set(status.json())


def test_a_flood_of_probes_costs_one_store_round_trip_a_second(client, service):
    reader = service.upkeep.reader
    probes = []
    real_probe = reader.probe

    def counted() -> None:
        probes.append(1)
        real_probe()

    reader.probe = counted
    try:
        for _ in range(50):
            assert client.get("/readyz").status_code == 200
    finally:
        reader.probe = real_probe
    assert len(probes) <= 2, len(probes)  # at most one per second, even across its edge


def test_the_open_paths_have_one_rate_limit_for_everyone(make_client):
    http = make_client(api_open_rate_per_second=2)  # bursts of 4
    statuses = [http.get("/healthz").status_code for _ in range(6)]
    assert statuses[:4] == [200] * 4 and statuses[4:] == [429, 429], statuses
    refused = http.get("/readyz")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1


class Broken:
    """An online-store reader whose store fails with what redis-py would say: an address
    and (in a malformed URL) a password."""

    def __init__(self, settings) -> None:
        raise ConnectionError(
            "Error 111 connecting to redis://user:hunter2-pw@10.20.30.40:6390. Connection refused."
        )


def test_callers_get_fixed_messages_and_an_error_id_and_the_log_the_full_error(
    api_settings, models, tokens, caplog
):
    from app.serving.api import build_api
    from app.serving.service import DecisionService

    settings = api_settings.model_copy(update={"redis_password": "hunter2-pw"})
    service = DecisionService(
        settings, model_source_factory=lambda _: models, reader_factory=Broken
    )
    headers = {"Authorization": f"Bearer {tokens['all']}"}
    with TestClient(build_api(service), headers=headers) as http:
        http.portal.call(service.start)
        answers = [http.post("/v1/decisions", json=body(0)) for _ in range(3)]
        status = http.get("/v1/status").json()
        ready = http.get("/readyz")
    service.close()
    ids = {a.json()["error_id"] for a in answers}
    assert {a.status_code for a in answers} == {503} and len(ids) == 1  # one outage, one id
    (error_id,) = ids
    assert answers[0].json()["detail"] == f"feature store unavailable (error id {error_id})"
    assert answers[0].headers["Retry-After"] == "5"
    assert ready.status_code == 503 and ready.json() == {"status": "unavailable"}
    for text in [a.text for a in answers] + [ready.text]:
        assert "10.20.30.40" not in text and "hunter2" not in text
    # monitoring:read callers see what is wrong; nobody sees the password.
    assert "10.20.30.40" in status["detail"] and "hunter2" not in str(status)
    logged = [r.getMessage() for r in caplog.records if error_id in r.getMessage()]
    assert len(logged) == 1 and "10.20.30.40" in logged[0] and "hunter2" not in logged[0]


@pytest.fixture
def damaged_store(api_settings, service, tmp_path):
    """A copy of the SQLite online store in which applicant 6 has an undecodable age and
    applicant 7 a text where a number belongs; everyone else as materialized."""
    from feast.protos.feast.types.Value_pb2 import Value

    from app.features.layout import entity_key
    from app.features.online import SqliteOnlineReader

    reader = service.upkeep.reader
    path = tmp_path / "online.db"
    shutil.copy(reader.connection.execute("PRAGMA database_list").fetchone()[2], path)
    db = sqlite3.connect(path)
    for applicant, raw in (
        ("A0000006", b"\xff\xfe garbage"),
        ("A0000007", Value(string_val="forty").SerializeToString()),
    ):
        key = entity_key(applicant, reader.key_version, reader.dataset.entity_key)
        for table in reader.tables:
            db.execute(
                f'UPDATE "{table}" SET value = ? WHERE entity_key = ? AND '
                "feature_name = 'age_in_years'",
                (raw, key),
            )
    db.commit()
    db.close()
    return lambda settings: SqliteOnlineReader(
        reader.views, reader.key_version, reader.dataset, str(path), list(reader.tables)
    )


def test_an_unreadable_stored_record_fails_only_its_own_request(
    api_settings, models, tokens, damaged_store
):
    from app.serving.api import build_api
    from app.serving.service import DecisionService

    service = DecisionService(
        api_settings, model_source_factory=lambda _: models, reader_factory=damaged_store
    )
    headers = {"Authorization": f"Bearer {tokens['all']}"}
    with TestClient(build_api(service), headers=headers) as http:
        http.portal.call(service.start)
        batch = {"requests": [body(i) for i in (0, 5, 6, 7)]}
        out = http.post("/v1/decisions/batch", json=batch)
        alone = http.post("/v1/decisions", json=body(5))
        after = http.post("/v1/decisions", json=body(0))
    service.close()
    assert out.status_code == 200, out.text
    assert [d["applicant_id"] for d in out.json()["decisions"]] == ["A0000001", "A0000008"]
    errors = out.json()["errors"]
    assert [(e["index"], e["status"]) for e in errors] == [(1, 500), (2, 500)]
    assert all(e["detail"].startswith("the stored features of this applicant") for e in errors)
    assert alone.status_code == 500 and alone.json()["error_id"]
    assert after.status_code == 200  # the store is not "down" for everyone else


def test_shadow_scoring_queues_a_bounded_number_of_batches(client, service, routing):
    from app.serving.shadow import MAX_SHADOW_BATCHES

    routing(shadow=True)
    hold = threading.Event()
    service._work.submit(hold.wait, 30)  # the scoring thread busy: shadow work piles up
    try:
        for i in range(MAX_SHADOW_BATCHES + 20):
            assert client.post("/v1/decisions", json=body(i % 50)).status_code == 200
        queued = service._work._work_queue.qsize()
        assert queued <= MAX_SHADOW_BATCHES, queued
        assert service.shadow.skipped >= 20
    finally:
        hold.set()
    wait_for(lambda: service._work._work_queue.qsize() == 0, "shadow scoring to catch up", 30)

"""The decision service under `serve.run` in the shared Ray: real Redis, Feast, MLflow, models."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
import requests

from app.predictions.schema import schema_for
from app.serving.routing import RoutingConfig, sticky_bucket
from app.training.promote import promote
from tests.utils.datasets import german
from tests.utils.serving import (
    application,
    assert_decision_shape,
    body,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]


def test_decision_has_the_documented_shape(served):
    response = served.post("/v1/decisions", body(0))
    assert response.status_code == 200, response.text
    assert_decision_shape(response.json(), "S0000001")
    assert served.get("/healthz").json() == {"status": "ok"}
    assert served.get("/readyz").json() == {"status": "ok"}
    ready = served.status()
    assert (ready["champion"], ready["challenger"], ready["feature_store"]) == (
        "1",
        "2",
        "connected",
    )
    schema = served.get("/openapi.json").json()
    paths = {"/v1/decisions", "/v1/decisions/batch", "/v1/status", "/healthz", "/readyz"}
    assert paths <= set(schema["paths"])
    assert served.get("/docs").status_code == 200


def test_declines_always_carry_reasons_and_answers_match_feast_and_the_model(served):
    from app.features.store import get_online_features, get_store
    from app.training.source import RegistryModelSource

    batch = {"requests": [body(i) for i in range(100)]}
    out = served.post("/v1/decisions/batch", batch).json()
    assert not out["errors"] and len(out["decisions"]) == 100
    declines = [d for d in out["decisions"] if d["decision"] == "decline"]
    assert declines and all(1 <= len(d["reasons"]) <= 4 for d in declines)

    # What the replica answered is what Feast's own read (its on-demand view included) scored
    # by the registered model's DataFrame path gives (tests/integration/test_decision_parity.py
    # covers 2,000 applicants and the store's gaps in-process).
    rows = [{"applicant_id": b["applicant_id"], **b["application"]} for b in batch["requests"]]
    frame = get_online_features(
        get_store(served.settings), served.settings.feature_service_name, rows
    ).assign(**pd.DataFrame(rows).drop(columns="applicant_id"))
    versions = {d["model"]["version"] for d in out["decisions"]}
    for version in versions:
        model = RegistryModelSource(served.settings).load(version).model
        idx = [i for i, d in enumerate(out["decisions"]) if d["model"]["version"] == version]
        expected = model.score(frame.iloc[idx])
        for pos, i in enumerate(idx):
            got = out["decisions"][i]
            want = expected["probability_of_default"].iat[pos]
            assert abs(got["probability_of_default"] - want) < 1e-9
            assert got["decision"] == expected["decision"].iat[pos]
            assert got["reasons"] == expected["reasons"].iat[pos]


def test_ab_split_follows_the_weight_and_is_sticky(served):
    served.deploy(challenger_weight=0.3)

    local = threading.local()

    def variant(i: int) -> str:
        if not hasattr(local, "session"):
            local.session = served.new_session()
        response = local.session.post(f"{served.url}/v1/decisions", json=body(i), timeout=30)
        assert response.status_code == 200, response.text
        return response.json()["model"]["variant"]

    # The hash's uniformity and the weight arithmetic are proven exactly by the routing unit
    # tests; over HTTP it is enough that the replica routes each applicant as they say.
    applicants = 400
    with ThreadPoolExecutor(8) as pool:
        first = list(pool.map(variant, range(applicants)))
        again = list(pool.map(variant, range(0, applicants, 10)))
    assert again == first[::10]  # same applicant, same variant
    expected = [
        "challenger" if sticky_bucket(f"S{i + 1:07d}", RoutingConfig().salt) < 0.3 else "champion"
        for i in range(applicants)
    ]
    assert first == expected
    share = first.count("challenger") / applicants
    assert abs(share - 0.3) <= 0.05, share


def test_weights_change_with_a_redeploy_and_no_restart(served):
    before = served.status()["replica"]
    served.deploy(challenger_weight=1.0)
    wait_for(
        lambda: served.post("/v1/decisions", body(5)).json()["model"]["variant"] == "challenger",
        "the new weight to apply",
    )
    variants = {served.post("/v1/decisions", body(i)).json()["model"]["version"] for i in range(30)}
    assert variants == {"2"}
    served.deploy(challenger_weight=0.0)
    assert served.status()["replica"] == before  # reconfigured in place


def test_shadow_scores_a_copy_and_never_changes_the_response(served):
    from app.predictions.log import read_prediction_log

    served.deploy(challenger_weight=0.0, shadow=False)
    plain = [served.post("/v1/decisions", body(i)).json() for i in range(40)]
    served.deploy(challenger_weight=0.0, shadow=True)
    shadowed = [served.post("/v1/decisions", body(i)).json() for i in range(40)]

    def strip(out):
        return {k: v for k, v in out.items() if k != "request_id"}

    assert [strip(o) for o in shadowed] == [strip(o) for o in plain]
    ids = {o["request_id"] for o in shadowed}
    log_dir = served.settings.prediction_log_dir

    def shadow_rows():
        table = read_prediction_log(log_dir, schema_for(german())).to_pandas()
        rows = table[table["request_id"].isin(ids)]
        return rows if len(rows) == 80 else None

    rows = wait_for(shadow_rows, "the champion and shadow records of 40 requests")
    assert sorted(rows.groupby(["variant", "shadow", "model_version"]).size().items()) == [
        (("challenger", True, "2"), 40),
        (("champion", False, "1"), 40),
    ]
    served.deploy(challenger_weight=0.0, shadow=False)


def test_prediction_log_keeps_features_and_reasons(served):
    from app.predictions.log import read_prediction_log

    out = served.post("/v1/decisions", body(7)).json()

    def record():
        table = read_prediction_log(
            served.settings.prediction_log_dir, schema_for(german())
        ).to_pandas()
        found = table[table["request_id"] == out["request_id"]]
        return found.iloc[0] if len(found) else None

    row = wait_for(record, "the decision in the prediction log")
    assert row["applicant_id"] == "S0000008" and row["model_version"] == "1"
    assert row["probability_of_default"] == pytest.approx(out["probability_of_default"])
    assert json.loads(row["reasons"]) == out["reasons"]
    assert row["credit_amount"] == application(7)["credit_amount"]
    assert row["purpose"] == application(7)["purpose"] and row["age_in_years"] > 0


# Every bad-body case is in tests/api (in-process, the same app); over HTTP, that Serve's
# ingress passes the app's own 422 answer through.
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"applicant_id": "S0000001"}, "application"),
        (
            {"applicant_id": "S0000001", "application": {**application(0), "purpose": "yacht"}},
            "application.purpose",
        ),
    ],
)
def test_invalid_bodies_get_422_naming_the_field(served, payload, field):
    response = served.post("/v1/decisions", payload)
    assert response.status_code == 422
    assert field in [p["field"] for p in response.json()["detail"]]


def test_malformed_json_and_unknown_applicant(served):
    response = served.session.post(
        served.url + "/v1/decisions",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422 and "Traceback" not in response.text

    unknown = served.post("/v1/decisions", {**body(0), "applicant_id": "NOBODY"})
    assert unknown.status_code == 404 and "NOBODY" in unknown.json()["detail"]

    # The batch limit and per-item errors: tests/api (the same app, in-process).


def metric_total(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples (over replicas and other labels) with these labels."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def settled(scrape, name: str, quiet: float = 3.0):
    """A wait_for check: the scrape once `name` has not changed for `quiet` seconds (the
    exporter has caught up with every count made before)."""
    seen = {"total": None, "since": 0.0}

    def check():
        text = scrape()
        total = metric_total(text, name)
        now = time.monotonic()
        if total != seen["total"]:
            seen.update(total=total, since=now)
            return None
        return text if now - seen["since"] >= quiet else None

    return check


def test_metrics_count_decisions_by_variant(served):
    import ray

    port = ray._private.worker.global_worker.node.metrics_export_port

    def scrape() -> str:
        return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text

    # Ray exports application metrics with a `ray_` prefix, a second or so after they change.
    decisions = "ray_credit_decisions_total"
    errors = "ray_credit_decision_errors_total"
    before = wait_for(settled(scrape, decisions), "earlier tests' decisions to be exported", 60)
    answered = [served.post("/v1/decisions", body(i)).json() for i in range(5)]
    assert served.post("/v1/decisions", {**body(0), "applicant_id": "NOBODY"}).status_code == 404
    expected = {
        decision: sum(a["decision"] == decision for a in answered)
        for decision in ("approve", "decline")
    }

    def grown(text: str, name: str, **labels) -> float:
        return metric_total(text, name, **labels) - metric_total(before, name, **labels)

    def counted():
        text = scrape()
        done = grown(text, decisions, variant="champion", shadow="0") >= 5 and grown(
            text, errors, error="unknown_applicant"
        )
        return text if done else None

    text = wait_for(counted, "the new decisions on Ray's Prometheus endpoint", 90, 1.0)
    for decision, count in expected.items():
        assert grown(text, decisions, variant="champion", decision=decision, shadow="0") == count
        # Attributed to the key that asked (tests/utils/serving.py's `tests` key).
        tagged = grown(text, decisions, decision=decision, shadow="0", caller="tests")
        assert tagged == count
    assert grown(text, decisions, variant="challenger") == 0
    assert grown(text, errors, error="unknown_applicant") == 1
    for histogram in ("ray_credit_decision_latency_ms", "ray_credit_feature_fetch_latency_ms"):
        # Six requests went through the feature store; five were answered by the champion.
        assert grown(text, histogram + "_count") >= (6 if "fetch" in histogram else 5)


def test_batch_job_equals_the_online_answers(served):
    from app.scoring import score_table, scores_path

    served.deploy(challenger_weight=0.0)
    requests_ = [body(i) for i in range(60)]
    online = {
        o["applicant_id"]: o
        for o in served.post("/v1/decisions/batch", {"requests": requests_}).json()["decisions"]
    }
    table = pd.DataFrame(
        [
            {"application_id": f"X{i:05d}", "applicant_id": b["applicant_id"], **b["application"]}
            for i, b in enumerate([*requests_, {**body(0), "applicant_id": "NOBODY"}])
        ]
    )
    input_path = served.settings.data_dir / "to_score.parquet"
    table.to_parquet(input_path)
    report = score_table(
        served.settings,
        output_path=served.settings.data_dir / "scored",
        input_path=input_path,
        cpus_per_actor=0.25,  # beside the test replica (0.25 CPU) in the 2-CPU test Ray
    )
    assert (report.rows, report.scored, report.unknown) == (61, 60, 1)
    batch = pd.read_parquet(scores_path(served.settings.data_dir / "scored"))
    for _, row in batch[batch["status"] == "scored"].iterrows():
        answer = online[row["applicant_id"]]
        assert row["model_version"] == answer["model"]["version"]
        assert row["probability_of_default"] == pytest.approx(answer["probability_of_default"])
        assert row["decision"] == answer["decision"]
        assert json.loads(row["reasons"]) == answer["reasons"]
    assert batch.loc[batch["applicant_id"] == "NOBODY", "status"].item() == "unknown_applicant"


def test_batch_job_reads_and_writes_snowflake(served, fakesnow_service):
    """Snowflake in, Snowflake out (through fakesnow): the same answers as the API."""
    import dataclasses

    from app.config import load_settings
    from app.data.snapshot import load_snapshot
    from app.data.snowflake import connect, connection_parameters, seed_snowflake
    from app.scoring import input_columns, score_table
    from tests.utils import snowflake_overrides
    from tests.utils.datasets import german

    spine = german().tables["loan_applications"]
    REQUEST_COLUMNS = german().request_columns
    # What a table to score holds: its row key, the entity key and the request fields (no
    # label: outcomes are not known when applications are scored).
    wanted = [spine.key, *input_columns(german())]
    APPLICATIONS = dataclasses.replace(
        spine, columns={c: spine.columns[c] for c in wanted}, label=None
    )

    settings = load_settings(
        **served.overrides, **snowflake_overrides(fakesnow_service.port), _env_file=None
    )
    applications = load_snapshot(settings.offline_dir, APPLICATIONS.name).head(60)[wanted]
    seed_snowflake({APPLICATIONS.name: applications}, {APPLICATIONS.name: APPLICATIONS}, settings)
    report = score_table(
        settings,
        snowflake_table=APPLICATIONS.name,
        snowflake_output="credit_decisions",
        cpus_per_actor=0.25,
    )
    assert (report.rows, report.scored) == (60, 60)
    assert report.output == "Snowflake table credit_decisions"

    served.deploy(challenger_weight=0.0)
    bodies = [
        {
            "applicant_id": row["applicant_id"],
            "application": {c: row[c] if c == "purpose" else int(row[c]) for c in REQUEST_COLUMNS},
        }
        for row in applications.to_dict("records")
    ]
    online = served.post("/v1/decisions/batch", {"requests": bodies}).json()["decisions"]
    with connect(connection_parameters(settings)) as conn:
        cursor = conn.cursor()
        cursor.execute(
            "SELECT row_id, applicant_id, decision, probability_of_default, reasons "
            "FROM CREDIT.RAW.CREDIT_DECISIONS ORDER BY row_id"
        )
        written = cursor.fetchall()
    assert [r[0] for r in written] == sorted(applications["application_id"])
    by_applicant = {o["applicant_id"]: o for o in online}
    for _, applicant_id, decision, pd_, reasons in written:
        answer = by_applicant[applicant_id]
        assert decision == answer["decision"]
        assert float(pd_) == pytest.approx(answer["probability_of_default"])
        assert json.loads(reasons) == answer["reasons"]


def test_promotion_during_traffic_drops_no_request(served):
    statuses: list[int | str] = []
    versions: list[str] = []
    stop = threading.Event()

    def stream():
        session = served.new_session()
        i = 0
        while not stop.is_set():
            # Every outcome is kept: a dropped connection or timeout is a failure too, and a
            # thread that raised would otherwise end silently.
            try:
                response = session.post(
                    f"{served.url}/v1/decisions", json=body(i % 500), timeout=30
                )
            except requests.RequestException as exc:
                statuses.append(type(exc).__name__)
            else:
                statuses.append(response.status_code)
                if response.status_code == 200:
                    versions.append(response.json()["model"]["version"])
            i += 1

    threads = [threading.Thread(target=stream) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(statuses) >= 20, "traffic to flow")
        promote(served.settings, force=True)  # v2 becomes champion while requests flow
        wait_for(lambda: versions[-20:] == ["2"] * 20, "serving to switch to v2", 60)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert statuses and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    assert versions[0] == "1" and versions[-1] == "2"
    ready = served.status()
    assert (ready["champion"], ready["challenger"]) == ("2", None)

"""The decision API over every shipped dataset spec, in-process: the same code answers German
credit (applicant_id and four request fields, counter-offers) and the GMSC-shaped data (the
entity key alone, no levers) with the dataset's own body, reasons and log records, and the
request path decides as the model does on Feast's own online features."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.features.store import get_online_features, get_store, request_row
from app.serving.client import decision_body
from app.training.source import ServedModel
from tests.utils import ROOT, isolated_settings
from tests.utils.api import FixedModels, fit_in_process
from tests.utils.datasets import validated
from tests.utils.v2 import rows, same_answer

SPECS = sorted(p.parent.name for p in (ROOT / "datasets").glob("*/dataset.yaml"))
SAMPLE = 40


class Loop:
    """One dataset's store, model, service and client."""

    def __init__(self, name: str, root) -> None:
        from app.data.snapshot import load_snapshot, write_snapshot
        from app.data.warehouse import source_tables
        from app.features.store import materialize
        from app.serving.api import build_api
        from app.serving.keys import KeyFile
        from app.serving.service import DecisionService
        from app.training.dataset import load_training_frame

        self.settings = isolated_settings(data_dir=root / "data", dataset=ROOT / "datasets" / name)
        self.dataset = dataset = self.settings.load_dataset()
        tables = source_tables(self.settings)
        write_snapshot(
            self.settings.offline_dir,
            validated(tables, dataset),
            {},
            {"type": "test"},
            dataset.tables,
        )
        materialize(self.settings)
        self.model = fit_in_process(self.settings, load_training_frame(self.settings))
        models = FixedModels({"champion": ServedModel(self.settings.model_name, "1", self.model)})
        self.service = DecisionService(self.settings, model_source_factory=lambda _: models)
        keys = KeyFile.read(self.settings.api_keys_file)
        token = keys.add("all", ["decisions", "decisions:batch", "monitoring:read"], rate=0)
        keys.write()
        self.http = TestClient(
            build_api(self.service), headers={"Authorization": f"Bearer {token}"}
        )
        self.http.__enter__()
        self.http.portal.call(self.service.start)
        spine = load_snapshot(self.settings.offline_dir, dataset.spine.name)
        self.rows = [request_row(spine.iloc[i], dataset) for i in range(SAMPLE)]

    def close(self) -> None:
        self.http.__exit__(None, None, None)
        self.service.close()


@pytest.fixture(scope="module", params=SPECS)
def loop(request, tmp_path_factory):
    made = Loop(request.param, tmp_path_factory.mktemp(request.param))
    yield made
    made.close()


def test_the_openapi_body_is_the_datasets_own(loop):
    dataset = loop.dataset
    schemas = loop.http.get("/openapi.json").json()["components"]["schemas"]
    body = schemas["DecisionRequest"]
    assert set(body["properties"]) == {dataset.entity_key, "application"}
    required = set(body.get("required", []))
    # `application` is required exactly when the dataset has request fields.
    assert required == {dataset.entity_key, *(["application"] if dataset.request_columns else [])}
    if dataset.request_columns:
        assert list(schemas["Application"]["properties"]) == list(dataset.request_columns)
    response = schemas["DecisionResponse"]["properties"]
    assert dataset.entity_key in response and "entity_id" not in response


def test_decisions_come_with_reasons_on_the_datasets_columns(loop):
    dataset = loop.dataset
    codes = {c: r.code for c, r in dataset.spec.reasons.codes.items()}
    answers = []
    for row in loop.rows:
        response = loop.http.post("/v1/decisions", json=decision_body(row, dataset))
        assert response.status_code == 200, response.text
        answers.append(response.json())
    assert {a["decision"] for a in answers} <= {"approve", "decline"}
    for row, answer in zip(loop.rows, answers, strict=True):
        assert answer[dataset.entity_key] == row[dataset.entity_key]
        if answer["decision"] == "decline":
            assert answer["reasons"], answer
        for reason in answer["reasons"]:
            assert reason["feature"] in dataset.model_columns
            assert reason["code"] == codes[reason["feature"]]
            assert reason["feature"] not in dataset.protected_columns
        if dataset.spec.offers is None:
            assert answer["counter_offer"] is None


def test_the_request_path_decides_as_the_model_does_on_feasts_online_features(loop):
    """Feast's on-demand view (the spec's expressions, as Feast runs them) and the request
    path (the same expressions on arrays) feed the same model the same inputs."""
    dataset = loop.dataset
    online = get_online_features(
        get_store(loop.settings), loop.settings.feature_service_name, loop.rows
    )
    # Feast answers the features; the request fields are the application's own.
    online = online.assign(**{c: [r[c] for r in loop.rows] for c in dataset.request_columns})
    expected = loop.model.score(online, threshold=None)
    for i, row in enumerate(loop.rows):
        got = loop.http.post("/v1/decisions", json=decision_body(row, dataset)).json()
        assert got["probability_of_default"] == pytest.approx(
            expected["probability_of_default"].iat[i], abs=1e-6
        )
        assert got["decision"] == expected["decision"].iat[i]
        assert [r["code"] for r in got["reasons"]] == [
            r["code"] for r in expected["reasons"].iat[i]
        ]


def test_unknown_entities_and_foreign_fields_are_refused_by_name(loop):
    dataset = loop.dataset
    key = dataset.entity_key
    body = decision_body(loop.rows[0], dataset) | {key: "NOBODY-1"}
    unknown = loop.http.post("/v1/decisions", json=body)
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == f"unknown {key} 'NOBODY-1': no features"
    extra = loop.http.post("/v1/decisions", json={**body, "entity_id": "x"})
    assert extra.status_code == 422
    assert extra.json()["detail"][0]["field"] == "entity_id"
    batch = loop.http.post(
        "/v1/decisions/batch", json={"requests": [decision_body(loop.rows[1], dataset), body]}
    )
    assert batch.status_code == 200
    assert batch.json()["errors"] == [
        {"index": 1, key: "NOBODY-1", "status": 404, "detail": unknown.json()["detail"]}
    ]


def test_log_records_carry_the_spec_hash_and_the_model_columns(loop):
    from app.predictions.log import read_prediction_log
    from app.predictions.schema import schema_for

    dataset = loop.dataset
    answer = loop.http.post("/v1/decisions", json=decision_body(loop.rows[2], dataset)).json()
    loop.service.prediction_log.flush(force=True)
    log = read_prediction_log(loop.settings.prediction_log_dir, schema_for(dataset)).to_pandas()
    (record,) = log[log["request_id"] == answer["request_id"]].to_dict("records")
    assert record["spec_hash"] == dataset.spec_hash
    assert record[dataset.entity_key] == answer[dataset.entity_key]
    assert json.loads(record["reasons"]) == answer["reasons"]
    stored = [c for c in loop.model.encoder.raw_columns if c not in dataset.derived_names]
    assert any(not _missing(record[c]) for c in stored)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def test_batch_scoring_answers_as_the_api_does(loop):
    """The batch job's per-batch function over the spine's rows: the API's decisions, under
    the spine's row key and the dataset's own offer columns."""
    import pandas as pd

    from app.data.snapshot import load_snapshot
    from app.predictions.schema import offer_columns
    from app.scoring import score_frame, scores_spec

    dataset = loop.dataset
    batch = load_snapshot(loop.settings.offline_dir, dataset.spine.name).head(SAMPLE)
    served = loop.service.models.champion
    scored = score_frame(batch, loop.service.upkeep.reader, served, None, loop.service.offer_bounds)
    assert set(scores_spec(dataset).columns) <= set(scored.columns)
    assert scored["row_id"].tolist() == batch[dataset.spine.key].astype(str).tolist()
    assert [c for c in scored.columns if c.startswith("counter_offer_")] == offer_columns(dataset)
    for row, (_, result) in zip(loop.rows, scored.iterrows(), strict=True):
        answer = loop.http.post("/v1/decisions", json=decision_body(row, dataset)).json()
        assert result[dataset.entity_key] == answer[dataset.entity_key]
        assert result["decision"] == answer["decision"]
        assert result["probability_of_default"] == pytest.approx(answer["probability_of_default"])
        offer = answer["counter_offer"] or {}
        for column in offer_columns(dataset):
            value = result[column]
            got = None if pd.isna(value) else value
            assert got == pytest.approx(offer.get(column.removeprefix("counter_offer_")))


def test_v2_metadata_and_answers_are_the_datasets_own(loop):
    """The Open Inference Protocol's inputs are the spec's entity key and request fields, and
    a tensor of the sample's rows (gmsc's with missing stored values) gets the /v1 answers."""
    from app.serving.v2 import inputs_of

    dataset = loop.dataset
    meta = loop.http.get(f"/v2/models/{loop.settings.model_name}").json()
    expected = [dataset.entity_key, *dataset.request_columns]
    assert [i["name"] for i in meta["inputs"]] == expected
    bodies = [decision_body(row, dataset) for row in loop.rows]
    v1 = [loop.http.post("/v1/decisions", json=b).json() for b in bodies]
    tensors = []
    for name, datatype in inputs_of(dataset):
        values = [b[name] if name == dataset.entity_key else b["application"][name] for b in bodies]
        tensors.append({"name": name, "datatype": datatype, "shape": [len(bodies)], "data": values})
    response = loop.http.post(
        f"/v2/models/{loop.settings.model_name}/infer", json={"inputs": tensors}
    )
    assert response.status_code == 200, response.text
    for answer, row in zip(v1, rows(response.json()), strict=True):
        same_answer(answer, row)

"""The registered model's signature takes what the API scores: integers the feature store lacks
(null / NaN) and missing categories, in MLflow's own schema check and its scoring server's
/invocations (in process), with the same PD, decision and reasons as the model itself."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.exceptions import MlflowException
from mlflow.models.utils import _enforce_schema, load_serving_example
from mlflow.pyfunc import scoring_server
from mlflow.types.schema import ColSpec, Schema
from mlflow.utils.proto_json_utils import dataframe_from_parsed_json

from app.training import registry
from app.training.pyfunc import model_input, model_signature, warehouse_types
from app.training.run_log import log_model
from tests.utils.datasets import german

FINANCIALS = german().tables["applicant_financials"]
LABEL = german().label
PROFILE = german().tables["applicant_profile"]
TABLES = german().tables

INTEGERS = [c for spec in TABLES.values() for c in spec.integer_columns if c != LABEL]


def _with_gaps(frame: pd.DataFrame, encoder) -> pd.DataFrame:
    """Four applicants as the API may score them: complete; age missing (a stored integer that
    a request-time feature also reads: that one is NaN too); two stored integers and a
    category missing; nothing stored at all (every stored feature null, request fields kept)."""
    rows = frame[encoder.raw_columns].head(4).astype(object).reset_index(drop=True)
    rows.loc[1, ["age_in_years", "credit_amount_per_age_year"]] = None
    rows.loc[2, ["number_of_existing_credits_at_this_bank", "present_residence_since"]] = None
    rows.loc[2, "credit_history"] = None
    stored = {c for spec in (PROFILE, FINANCIALS) for c in spec.feature_columns}
    rows.loc[3, [c for c in rows.columns if c in stored or c == "credit_amount_per_age_year"]] = (
        None
    )
    return rows


def _split(rows: pd.DataFrame) -> dict:
    """The `dataframe_split` JSON a client sends: null for every missing value."""
    return json.loads(rows.to_json(orient="split", index=False))


def test_numbers_are_double_in_the_signature_and_long_in_the_metadata(small_model):
    encoder = small_model.encoder
    signature = model_signature(encoder)
    inputs = signature.inputs.input_dict()
    assert list(inputs) == encoder.raw_columns
    assert {c: inputs[c].type.name for c in INTEGERS} == dict.fromkeys(INTEGERS, "double")
    types = warehouse_types(encoder)
    assert {c: types[c] for c in INTEGERS} == dict.fromkeys(INTEGERS, "long")
    assert {types[c] for c in encoder.categorical} == {"string"}
    assert [(p.name, p.dtype.name, p.default) for p in signature.params.params] == [
        ("explain", "boolean", False)
    ]


def test_schema_check_takes_missing_integers_that_long_rejects(frame, small_model):
    encoder = small_model.encoder
    rows = _with_gaps(frame, encoder)
    signature = model_signature(encoder)

    # In process: the frame model_input builds (Feast's nullable Int64 included).
    checked = _enforce_schema(model_input(rows, encoder), signature.inputs)
    assert np.isnan(checked.loc[1, "age_in_years"]) and checked.loc[2, "credit_history"] is None
    assert checked.loc[0, "age_in_years"] == frame["age_in_years"].iat[0]
    nullable = rows.astype({"age_in_years": "Int64"})
    checked = _enforce_schema(model_input(nullable, encoder), signature.inputs)
    assert np.isnan(checked.loc[1, "age_in_years"])

    # As /invocations parses a JSON body: null in an integer column.
    parsed = dataframe_from_parsed_json(_split(rows), "split", schema=signature.inputs)
    assert np.isnan(_enforce_schema(parsed, signature.inputs).loc[1, "age_in_years"])

    # What the signature declared before: a warehouse `long` cannot hold a missing value.
    long_age = Schema([ColSpec("long", "age_in_years")])
    with pytest.raises(MlflowException, match="age_in_years"):
        _enforce_schema(model_input(rows, encoder)[["age_in_years"]], long_age)


def test_logged_model_answers_invocations_like_the_model(
    frame, small_model, sqlite_uri, make_settings
):
    settings = make_settings(mlflow_tracking_uri=sqlite_uri)
    client = registry.client(settings)
    with mlflow.start_run(experiment_id=registry.experiment_id(settings, client)):
        uri = log_model(small_model, frame)
    loaded = mlflow.pyfunc.load_model(uri)
    assert loaded.metadata.metadata["warehouse_types"]["age_in_years"] == "long"
    server = TestClient(scoring_server.init(loaded))

    # The logged serving example is a ready /invocations body: a missing integer, reasons on.
    example = json.loads(load_serving_example(uri))
    assert example["params"] == {"explain": True}
    assert any(v is None for row in example["dataframe_split"]["data"] for v in row)
    answered = server.post("/invocations", json=example)
    assert answered.status_code == 200, answered.text
    assert all("reasons" in p for p in answered.json()["predictions"])

    rows = _with_gaps(frame, small_model.encoder)
    response = server.post(
        "/invocations", json={"dataframe_split": _split(rows), "params": {"explain": True}}
    )
    assert response.status_code == 200, response.text
    got = pd.DataFrame(response.json()["predictions"])
    want = small_model.score(rows)  # the raw values, None for missing, as the API holds them
    np.testing.assert_allclose(got["probability_of_default"], want["probability_of_default"])
    assert got["decision"].tolist() == want["decision"].tolist()
    assert [json.loads(r) for r in got["reasons"]] == want["reasons"].tolist()
    assert any("No information on" in r["description"] for rs in want["reasons"] for r in rs)

    # Without `explain`: the decision alone, as the signature's default says.
    plain = server.post("/invocations", json={"dataframe_split": _split(rows)}).json()
    assert set(plain["predictions"][0]) == {"probability_of_default", "decision"}

"""`mlflow models serve -m models:/credit_risk@champion --env-manager local` answers
/invocations with the API's PD, decision and reasons for the rows the API scored, missing
integers included (the registered model's signature is the contract pyfunc users score by)."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import requests

from app.localservices import ManagedProcess, free_port
from app.predictions.schema import schema_for
from app.serving.client import decision_body
from tests.utils import wait_for
from tests.utils.datasets import german
from tests.utils.serving import application, body

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]

# Applicants the feature store knows only in part (written below, ids no other test uses):
# stored integers and a category missing; and one with no financial record at all.
GAPS = "MLFLOW-GAPS-1"
PROFILE_ONLY = "MLFLOW-GAPS-2"


def _store_applicants_with_gaps(settings) -> None:
    """Write the two applicants into the online store through Feast, as a push would."""
    from tests.utils.datasets import german

    FINANCIALS = german().tables["applicant_financials"]
    PROFILE = german().tables["applicant_profile"]
    from app.features.store import get_store

    now = pd.Timestamp(datetime.now(UTC))
    profile = pd.DataFrame(
        {
            "applicant_id": [GAPS, PROFILE_ONLY],
            "event_timestamp": [now, now],
            "age_in_years": pd.array([None, 41], dtype="Int64"),
            "personal_status_and_sex": ["male : single", "male : single"],
            "job": ["skilled employee / official", None],
            "housing": ["rent", "own"],
            "property": ["unknown / no property", "real estate"],
            "present_residence_since": pd.array([None, 4], dtype="Int64"),
            "number_of_people_being_liable_to_provide_maintenance_for": pd.array(
                [1, None], dtype="Int64"
            ),
            "telephone": ["none", "none"],
            "foreign_worker": ["yes", "yes"],
        }
    )
    financials = pd.DataFrame(
        {
            "applicant_id": [GAPS],
            "event_timestamp": [now],
            "status_of_existing_checking_account": ["... < 0 DM"],
            "savings_account_and_bonds": ["... < 100 DM"],
            "credit_history": [None],
            "number_of_existing_credits_at_this_bank": pd.array([None], dtype="Int64"),
            "present_employment_since": ["... < 1 year"],
            "other_debtors_or_guarantors": ["none"],
            "other_installment_plans": ["none"],
        }
    )
    store = get_store(settings)
    store.write_to_online_store(PROFILE.name, profile[PROFILE.columns.keys()])
    store.write_to_online_store(FINANCIALS.name, financials[FINANCIALS.columns.keys()])


def _start_mlflow_serve(settings, log_dir: Path) -> ManagedProcess:
    """The command a user runs, against the app's registry; its log in `log_dir`."""
    port = free_port()
    bin_dir = Path(sys.executable).parent
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CREDIT_")},
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        # The scoring server is started as `uvicorn ...`: the virtualenv's, as when activated.
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    argv = [str(bin_dir / "mlflow"), "models", "serve"]
    argv += ["-m", f"models:/{settings.model_name}@champion", "--env-manager", "local"]
    argv += ["-h", "127.0.0.1", "-p", str(port)]
    return ManagedProcess.launch(
        "mlflow models serve",
        argv,
        port=port,
        log_path=log_dir / "mlflow-serve.log",
        env=env,
        cwd=log_dir,
    )


def _scored_rows(settings, request_ids: list[str], columns: list[str]) -> pd.DataFrame:
    """The feature rows the API scored, from its prediction log, in `request_ids` order."""
    from app.predictions.log import read_prediction_log

    def logged():
        table = read_prediction_log(settings.prediction_log_dir, schema_for(german())).to_pandas()
        rows = table[table["request_id"].isin(request_ids) & ~table["shadow"]]
        return rows if len(rows) == len(request_ids) else None

    rows = wait_for(logged, "the API's decisions in the prediction log")
    return rows.set_index("request_id").loc[request_ids, columns].reset_index(drop=True)


def test_mlflow_models_serve_answers_like_the_api(served, tmp_path):
    from mlflow.models import get_model_info

    from app.domain import CHAMPION
    from app.training import registry

    settings = served.settings
    # Started first: its start-up (imports, model download) overlaps the API's part.
    server = _start_mlflow_serve(settings, tmp_path)
    try:
        served.deploy(challenger_weight=0.0)
        champion = registry.alias_version(registry.client(settings), settings.model_name, CHAMPION)
        _store_applicants_with_gaps(settings)
        bodies = [body(i) for i in range(6)]
        bodies += [
            decision_body({"applicant_id": a, **application(i)}, german())
            for i, a in enumerate([GAPS, PROFILE_ONLY])
        ]
        response = served.post("/v1/decisions/batch", {"requests": bodies})
        assert response.status_code == 200, response.text
        out = response.json()
        assert not out["errors"], out["errors"]
        api = out["decisions"]
        assert [d["applicant_id"] for d in api] == [b["applicant_id"] for b in bodies]
        assert {(d["model"]["variant"], d["model"]["version"]) for d in api} == {
            ("champion", champion)
        }

        # A pyfunc client sends the columns the registered signature names.
        uri = f"models:/{settings.model_name}@champion"
        columns = get_model_info(uri).signature.inputs.input_names()
        rows = _scored_rows(settings, [d["request_id"] for d in api], columns)
        # The gaps reached the model: stored integers missing, as nulls on the wire.
        assert rows["number_of_existing_credits_at_this_bank"].iloc[-2:].isna().all()
        assert pd.isna(rows["age_in_years"].iat[-2]) and rows.iloc[:-2].notna().all().all()
        split = json.loads(rows.to_json(orient="split", index=False))

        server.wait_http("/ping", timeout=240)
        answer = requests.post(
            f"{server.url}/invocations",
            json={"dataframe_split": split, "params": {"explain": True}},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
    finally:
        server.stop()

    assert len(predictions) == len(api)
    for want, got in zip(api, predictions, strict=True):
        assert got["probability_of_default"] == pytest.approx(
            want["probability_of_default"], abs=1e-6
        ), want["applicant_id"]
        assert got["decision"] == want["decision"], want["applicant_id"]
        reasons = json.loads(got["reasons"])
        assert [r["code"] for r in reasons] == [r["code"] for r in want["reasons"]]
        assert reasons == want["reasons"], want["applicant_id"]
    # Reasons were compared, and some quote a feature the store lacked.
    cited = [r["description"] for d in api for r in d["reasons"]]
    assert any(text.startswith("No information on") for text in cited), cited

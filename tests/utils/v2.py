"""V2 (Open Inference Protocol) request bodies built from /v1 ones, for the tests."""

from __future__ import annotations

import json
from typing import Any

from tests.utils.datasets import german

MODEL = "credit_risk"
KEY = "applicant_id"


def columns(bodies: list[dict]) -> dict[str, list[Any]]:
    """The /v1 bodies' values by input name (the entity key, then each request field)."""
    fields = list(german().request_columns)
    out: dict[str, list[Any]] = {KEY: [b[KEY] for b in bodies]}
    for name in fields:
        out[name] = [b["application"][name] for b in bodies]
    return out


DATATYPES = {
    "credit_amount": "INT64",
    "duration_in_month": "INT64",
    "purpose": "BYTES",
    "installment_rate_in_percentage_of_disposable_income": "INT64",
    KEY: "BYTES",
}


def infer_body(bodies: list[dict], **extra: Any) -> dict[str, Any]:
    """The V2 JSON inference request deciding `bodies` (one row each)."""
    inputs = [
        {"name": name, "datatype": DATATYPES[name], "shape": [len(values)], "data": values}
        for name, values in columns(bodies).items()
    ]
    return {"inputs": inputs, **extra}


def rows(response: dict[str, Any]) -> list[dict[str, Any]]:
    """A JSON V2 response's outputs as one dict per row, JSON outputs decoded."""
    outputs = {o["name"]: o["data"] for o in response["outputs"]}
    n = len(outputs["decision"])
    out = []
    for i in range(n):
        row = {name: values[i] for name, values in outputs.items()}
        for name in ("reasons", "counter_offer"):
            if name in row:
                row[name] = json.loads(row[name])
        out.append(row)
    return out


def same_answer(v1: dict[str, Any], v2_row: dict[str, Any]) -> None:
    """A V2 row says what the /v1 answer says (PD to 1e-12)."""
    assert abs(v1["probability_of_default"] - v2_row["probability_of_default"]) <= 1e-12
    assert v2_row["decision"] == v1["decision"]
    assert v2_row["reasons"] == v1["reasons"]
    assert v2_row["counter_offer"] == v1["counter_offer"]
    assert str(v2_row["model_version"]) == v1["model"]["version"]
    assert v2_row["variant"] == v1["model"]["variant"]


def triton_inputs(module, bodies: list[dict]) -> list:
    """tritonclient InferInputs (`module`: tritonclient.http or .grpc) deciding `bodies`, with
    the client's default encoding (binary tensors)."""
    import numpy as np

    inputs = []
    for name, values in columns(bodies).items():
        array = np.array(values, dtype=object if DATATYPES[name] == "BYTES" else np.int64)
        tensor = module.InferInput(name, list(array.shape), DATATYPES[name])
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


def triton_rows(result) -> list[dict[str, Any]]:
    """A tritonclient InferResult as one dict per row (text decoded, JSON outputs parsed)."""
    values = {}
    for name in OUTPUT_NAMES:
        array = result.as_numpy(name)
        values[name] = [v.decode() if isinstance(v, bytes) else v for v in array.tolist()]
    out = []
    for i in range(len(values["decision"])):
        row = {name: column[i] for name, column in values.items()}
        for name in ("reasons", "counter_offer"):
            row[name] = json.loads(row[name])
        out.append(row)
    return out


OUTPUT_NAMES = (
    "request_id",
    "probability_of_default",
    "decision",
    "model_version",
    "variant",
    "reasons",
    "counter_offer",
    "features_as_of",
)

"""KServe's Python client asking the decision service over V2 REST and gRPC, in a process of its
own: KServe's stubs and tritonclient's define the same protobuf symbols, so the two clients
cannot share one (tests/integration/serving/test_v2_clients.py runs this).

    python -m tests.utils.kserve_client REST_URL GRPC_ADDRESS APP TOKEN BODIES_JSON
prints {"rest": rows, "grpc": rows, "live": [...], "ready": [...]} as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig

from tests.utils.v2 import DATATYPES, MODEL, columns

OUTPUTS = ("probability_of_default", "decision", "model_version", "variant", "reasons")


def request(bodies: list[dict]) -> InferRequest:
    inputs = []
    for name, values in columns(bodies).items():
        array = np.array(values, dtype=object if DATATYPES[name] == "BYTES" else np.int64)
        tensor = InferInput(name, list(array.shape), DATATYPES[name])
        tensor.set_data_from_numpy(array, binary_data=False)
        inputs.append(tensor)
    return InferRequest(model_name=MODEL, infer_inputs=inputs, request_id="kserve-1")


def rows(response) -> list[dict]:
    values = {o.name: o.as_numpy().tolist() for o in response.outputs}
    text = {k: [v.decode() if isinstance(v, bytes) else v for v in vs] for k, vs in values.items()}
    extra = ("counter_offer",)
    return [
        {name: text[name][i] for name in (*OUTPUTS, *extra)} for i in range(len(text["decision"]))
    ]


async def main(rest_url: str, grpc_address: str, app: str, token: str, path: str) -> dict:
    bodies = json.loads(Path(path).read_text())
    headers = {"Authorization": f"Bearer {token}"}
    rest = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
    grpc = InferenceGRPCClient(grpc_address, timeout=30)
    metadata = (("authorization", f"Bearer {token}"), ("application", app))
    out = {
        "live": [await rest.is_server_live(rest_url), await grpc.is_server_live(headers=metadata)],
        "ready": [
            await rest.is_model_ready(rest_url, MODEL, headers=headers),
            await grpc.is_model_ready(MODEL, headers=metadata),
        ],
        "rest": rows(await rest.infer(rest_url, request(bodies), MODEL, headers=headers)),
        "grpc": rows(await grpc.infer(request(bodies), headers=metadata)),
    }
    await rest.close()
    await grpc.close()
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:6]))))

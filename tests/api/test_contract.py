"""The OpenAPI schema is the contract: schemathesis generates requests from it (schema-valid
and schema-invalid, with a valid key) for every route, /v1 and V2 alike, and checks each
answer: a status and headers the schema declares, a body of the declared shape, no 5xx, and
schema-invalid requests refused.

Schemathesis's pytest plugin does not run under this pytest, so each operation's cases are
drawn with its strategies inside one hypothesis test per operation and mode."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS

EXAMPLES = 20
# Checks that cannot hold for an operation, and why:
EXCUSED = {
    # A schema-valid V2 tensor can still be refused (400): that every input has the same
    # number of rows, and as many values as its shape says, is beyond what JSON Schema says.
    ("POST", "/v2/models/{model}/infer"): ["positive_data_acceptance"],
    ("POST", "/v2/models/{model}/versions/{version}/infer"): ["positive_data_acceptance"],
    # In process no drift monitor runs: its documented 503 is every answer.
    ("GET", "/v1/monitoring/drift"): ["not_a_server_error"],
}


@pytest.fixture(scope="module")
def contract(api_settings, models):
    """A service of its own (what the generated requests decide stays out of the others')."""
    from app.serving.api import build_api
    from app.serving.service import DecisionService

    service = DecisionService(api_settings, model_source_factory=lambda _: models)
    app = build_api(service)
    with TestClient(app) as http:
        http.portal.call(service.start)
        yield schemathesis.openapi.from_asgi("/openapi.json", app)
    service.close()


def operations(schema) -> list:
    return [result.ok() for result in schema.get_all_operations()]


def check_operation(operation, mode: GenerationMode, headers: dict, excluded: list) -> None:
    """EXAMPLES generated requests to one operation, each answer checked."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case):
        case.call_and_validate(headers=headers, excluded_checks=excluded)

    try:
        check()
    except Unsatisfiable:
        # Nothing of this operation can be schema-invalid (no body, no constrained parameter).
        assert mode == GenerationMode.NEGATIVE, operation.path


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_answer_is_the_one_the_schema_declares(contract, tokens, mode):
    headers = {"Authorization": f"Bearer {tokens['all']}"}
    for operation in operations(contract):
        excused = EXCUSED.get((operation.method.upper(), operation.path), [])
        check_operation(operation, mode, headers, CHECKS.get_by_names(excused))

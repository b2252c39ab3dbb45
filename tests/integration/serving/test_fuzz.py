"""Property tests over the live HTTP API: whatever a client sends, the answer is a typed 2xx or
4xx with a JSON detail, never a 500 or a traceback."""

from __future__ import annotations

import json

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.data.schema import CATEGORIES
from tests.utils.serving import APPLICANTS, body

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,  # the same examples every run: a failure is reproducible from the log
)
# 400: a body Starlette cannot even decode (e.g. NUL bytes as JSON); 422: one that does not
# validate; 404: unknown applicant; 413: batch too large.
ALLOWED = {200, 400, 404, 413, 422}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    # JSON has no NaN or infinity; requests refuses to send them.
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=80)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=4)
    ),
    max_leaves=12,
)
applicant_ids = st.one_of(
    st.integers(1, APPLICANTS).map(lambda i: f"S{i:07d}"),  # known
    st.text(max_size=80),  # anything at all, including unicode and control characters
)
applications = st.fixed_dictionaries(
    {
        "credit_amount": st.one_of(st.integers(-(10**12), 10**12), json_values),
        "duration_in_month": st.one_of(st.integers(-1000, 1000), json_values),
        "purpose": st.one_of(st.sampled_from(CATEGORIES["purpose"]), st.text(max_size=30)),
        "installment_rate_in_percentage_of_disposable_income": st.one_of(
            st.integers(-10, 10), json_values
        ),
    },
    optional={"unexpected": json_values},
)
requests_ = st.one_of(
    st.fixed_dictionaries({"applicant_id": applicant_ids, "application": applications}),
    st.dictionaries(st.sampled_from(["applicant_id", "application", "x"]), json_values, max_size=3),
    json_values,
)


def _check(response: requests.Response) -> None:
    assert response.status_code in ALLOWED, (response.status_code, response.text[:500])
    assert "Traceback" not in response.text
    payload = response.json()  # every answer is JSON
    if response.status_code != 200:
        assert payload.get("detail"), payload


@FUZZ
@given(payload=requests_)
def test_decisions_never_answer_500(served, payload):
    _check(served.post("/v1/decisions", payload))


@FUZZ
@given(items=st.lists(st.one_of(requests_, st.just(body(0))), max_size=5))
def test_batches_never_answer_500(served, items):
    _check(served.post("/v1/decisions/batch", {"requests": items}))


@FUZZ
@given(
    raw=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(str.encode),
        json_values.map(lambda v: json.dumps(v).encode()),
    ),
    content_type=st.sampled_from(
        ["application/json", "text/plain", "application/x-www-form-urlencoded", ""]
    ),
)
def test_raw_bodies_never_answer_500(served, raw, content_type):
    response = served.session.post(
        f"{served.url}/v1/decisions",
        data=raw,
        headers={"Content-Type": content_type} if content_type else {},
        timeout=30,
    )
    _check(response)

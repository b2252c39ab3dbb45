"""What the property tests of the decision API send, and what every answer must be."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.utils.datasets import german

CATEGORIES = german().categories


def examples(count: int):
    return settings(
        max_examples=count,
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
    # JSON has no NaN or infinity; clients cannot send them.
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
raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    json_values.map(lambda v: json.dumps(v).encode()),
)
content_types = st.sampled_from(
    ["application/json", "text/plain", "application/x-www-form-urlencoded", ""]
)


def decision_requests(prefix: str, applicants: int):
    """Request bodies: well-formed with known or arbitrary ids, mangled, or any JSON at all."""
    applicant_ids = st.one_of(
        st.integers(1, applicants).map(lambda i: f"{prefix}{i:07d}"),  # known
        st.text(max_size=80),  # anything at all, including unicode and control characters
    )
    return st.one_of(
        st.fixed_dictionaries({"applicant_id": applicant_ids, "application": applications}),
        st.dictionaries(
            st.sampled_from(["applicant_id", "application", "x"]), json_values, max_size=3
        ),
        json_values,
    )


def check_answer(response) -> None:
    """A typed 2xx or 4xx, JSON, with a detail when it is not a decision; never a traceback."""
    assert response.status_code in ALLOWED, (response.status_code, response.text[:500])
    assert "Traceback" not in response.text
    payload = response.json()  # every answer is JSON
    if response.status_code != 200:
        assert payload.get("detail"), payload

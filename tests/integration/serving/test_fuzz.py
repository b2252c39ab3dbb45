"""Property tests over the live HTTP API: whatever a client sends, the answer is a typed 2xx or
4xx with a JSON detail, never a 500 or a traceback. The thorough run (150 examples a route) is
in-process, tests/api/test_api.py; these few go through Serve's proxy and replica."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.utils.fuzz import check_answer, content_types, decision_requests, examples, raw_bodies
from tests.utils.serving import APPLICANTS, body

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ray_session")]

FUZZ = examples(20)
requests_ = decision_requests("S", APPLICANTS)


@FUZZ
@given(payload=requests_)
def test_decisions_never_answer_500(served, payload):
    check_answer(served.post("/v1/decisions", payload))


@FUZZ
@given(items=st.lists(st.one_of(requests_, st.just(body(0))), max_size=5))
def test_batches_never_answer_500(served, items):
    check_answer(served.post("/v1/decisions/batch", {"requests": items}))


@FUZZ
@given(raw=raw_bodies, content_type=content_types)
def test_raw_bodies_never_answer_500(served, raw, content_type):
    response = served.session.post(
        f"{served.url}/v1/decisions",
        data=raw,
        headers={"Content-Type": content_type} if content_type else {},
        timeout=30,
    )
    check_answer(response)

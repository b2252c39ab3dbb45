"""The batch job's whole-batch paths give the request path's answers exactly: reasons as the
JSON `json.dumps` makes of `CompiledModel.score`'s, counter-offers as `counter_offers` makes
them (scored one amount level at a time), and the written result counted and swapped in."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.scoring import scores_path, scores_spec
from app.scoring.offers import batch_offers
from app.scoring.output import count_scores, replace_dir
from app.scoring.reasons import score_json
from app.training.compiled import CompiledModel
from app.training.offers import OfferBounds, counter_offers
from tests.utils.datasets import german


@pytest.fixture(scope="module")
def compiled(small_model) -> CompiledModel:
    return CompiledModel(small_model)


@pytest.fixture(scope="module")
def columns(frame, compiled) -> dict[str, list]:
    values = {c: frame[c].tolist() for c in compiled.raw_columns}
    # Missing and unusable values: reasons quote them, offers skip rows without usable terms.
    values["credit_amount"][:3] = [None, float("nan"), 0]
    values["duration_in_month"][3] = None
    values["purpose"][4] = "not a category"
    return values


@pytest.mark.parametrize("threshold", [None, 0.05, 0.0, 1.0])
def test_reasons_are_the_api_json(compiled, columns, threshold):
    n = len(columns["credit_amount"])
    expected = compiled.score(columns, n, threshold)
    pd_scores, declined, reasons = score_json(compiled, columns, n, threshold)
    np.testing.assert_array_equal(pd_scores, expected.probability_of_default)
    assert [("decline" if d else "approve") for d in declined] == expected.decisions
    assert reasons == [json.dumps(r) for r in expected.reasons]


@pytest.mark.parametrize(
    "bounds",
    [OfferBounds(), OfferBounds(0.8, 100, 4, (12, 24)), OfferBounds(0.25, 1, 64, (6, 60))],
)
@pytest.mark.parametrize("threshold", [None, 0.3])
def test_offers_are_counter_offers(compiled, columns, bounds, threshold):
    n = len(columns["credit_amount"])
    decisions = compiled.score(columns, n, threshold).decisions
    declined = [i for i, d in enumerate(decisions) if d == "decline"]
    assert len(declined) > 20
    expected = counter_offers(compiled, columns, declined, threshold, bounds)
    got = batch_offers(compiled, columns, declined, threshold, bounds)
    assert got.made.tolist() == [o is not None for o in expected]
    assert 0 < got.made.sum() < len(declined)  # some offers made, some not
    for k, offer in enumerate(expected):
        if offer is not None:
            terms = {"credit_amount": got.amount[k], "duration_in_month": got.term[k]}
            assert terms == offer.terms
            assert got.probability_of_default[k] == offer.probability_of_default


def test_no_declines_no_offers(compiled, columns):
    got = batch_offers(compiled, columns, [], None, OfferBounds())
    assert got.made.size == 0


def _part(path, spec, rows: list[dict]):
    pq.write_table(pa.Table.from_pylist(rows, schema=spec.arrow_schema), path)


def test_written_results_are_counted_and_swapped_in(tmp_path):
    spec = scores_spec(german())
    staging = tmp_path / "staging"
    staging.mkdir()
    row = {"row_id": "a", "status": "scored", "decision": "decline"}
    offered = {**row, "row_id": "b", "counter_offer_credit_amount": 1000}
    _part(staging / "1.parquet", spec, [row, offered])
    _part(staging / "2.parquet", spec, [{"row_id": "c", "status": "unknown_applicant"}])
    counts = count_scores(staging, spec)
    assert counts == {"rows": 3, "scored": 2, "unknown": 1, "declined": 2, "offered": 1}
    final = scores_path(tmp_path)
    final.write_bytes(b"an older single-file result")
    replace_dir(staging, final)
    assert sorted(pd.read_parquet(final)["row_id"]) == ["a", "b", "c"]
    assert [p.name for p in tmp_path.iterdir()] == [final.name]


def test_an_empty_result_is_readable(tmp_path):
    spec = scores_spec(german())
    assert count_scores(tmp_path, spec)["rows"] == 0
    assert pq.ParquetDataset(tmp_path).schema.equals(spec.arrow_schema)


def test_one_row_encodes_and_scores_as_in_a_batch(compiled, columns, small_model, frame):
    n = 60
    head = {c: values[:n] for c, values in columns.items()}
    batch = compiled.encode(head, n)
    scores = compiled.score(head, n)
    for i in range(n):
        row = {c: columns[c][i : i + 1] for c in compiled.raw_columns}
        np.testing.assert_array_equal(compiled.encode(row, 1), batch[i : i + 1])
        one = compiled.score(row, 1)
        assert one.probability_of_default[0] == scores.probability_of_default[i]
        assert (one.decisions, one.reasons) == ([scores.decisions[i]], [scores.reasons[i]])
    # The frame path encodes the same matrix (FeatureEncoder, as training and batch do).
    clean = frame.head(n)
    values = {c: clean[c].tolist() for c in compiled.raw_columns}
    np.testing.assert_array_equal(
        compiled.encode(values, n), small_model.encoder.transform_array(clean)
    )

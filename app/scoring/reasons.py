"""A batch's scores with its reasons already as the JSON text the API returns: the ranking and
phrasing of `app.training.reasons.explain_rows` (through its own helpers), written straight
to `json.dumps`'s output for each row instead of building a dict per reason and encoding it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np

from app.training.compiled import CompiledModel
from app.training.model import sigmoid
from app.training.reasons import citable_values, describe_cited


def score_json(
    compiled: CompiledModel, columns: Mapping[str, Sequence], n: int, threshold: float | None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """PD, declined (bool) and the reasons' JSON for n rows, as `CompiledModel.score` and
    `json.dumps` of its reasons give them."""
    contribs = compiled.contributions(compiled.encode(columns, n))
    # Contributions + bias add up to the margin: one pass gives score and reasons.
    pd_scores = sigmoid(contribs.sum(axis=1))
    cut = compiled.threshold if threshold is None else threshold
    declined = pd_scores >= cut
    aggregated = contribs[:, :-1] @ compiled.membership
    values = citable_values(np.round(aggregated, 6), compiled.take, declined)
    # A stable sort of the negated values keeps column order among ties.
    order = np.argsort(-values, axis=1, kind="stable")[:, : compiled.take]
    top = np.take_along_axis(values, order, axis=1)
    cited = np.isfinite(top)  # a prefix of each row: -inf sorts last
    citable = compiled.citable
    texts = describe_cited(
        order,
        cited,
        citable,
        lambda column, rows: [columns[column][i] for i in rows.tolist()],
        compiled.reasons,
    )
    return pd_scores, declined, _join(order, top, cited, texts, compiled)


def _join(order, top, cited, texts, compiled: CompiledModel) -> list[str]:
    """Each row's `json.dumps` of its reason dicts, slot by slot over whole columns."""
    dumps = json.dumps
    heads = np.array(
        [
            f'{{"code": {dumps(compiled.reasons[c].code)}, "feature": {dumps(c)}, "description": '
            for c in compiled.citable
        ],
        dtype=object,
    )
    quoted: dict[str, str] = {}  # descriptions repeat: each encoded once
    counts = cited.sum(axis=1)
    rows = np.full(len(order), "[", dtype=object)
    for k in range(order.shape[1]):
        (live,) = np.nonzero(counts > k)
        if not live.size:
            break
        said = [quoted.get(t) or quoted.setdefault(t, dumps(t)) for t in texts[live, k]]
        numbers = list(map(repr, top[live, k].tolist()))
        piece = heads[order[live, k]] + np.array(said, dtype=object) + ', "contribution": '
        piece = piece + np.array(numbers, dtype=object) + "}"
        rows[live] = rows[live] + (", " if k else "") + piece
    return (rows + "]").tolist()

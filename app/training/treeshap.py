"""Exact TreeSHAP contributions of an XGBoost booster as a few numpy gathers.

XGBoost's `predict(pred_contribs=True)` runs path-dependent TreeSHAP in C++, but one call for
one applicant costs ~0.5 ms on a 2-core VM: it builds a DMatrix (re-reading the cgroup CPU
quota each time) and its per-call bookkeeping outweighs the tree work. The request path scores
one applicant at a time, so this module computes the same values from tables worked out once
per model (`app.training.treepaths`):

- `CodedShap`, when no tree has more than 8 splits (depth <= 3, the default): a tree's
  contribution depends only on which way each of its splits goes, an 8-bit code, so each tree
  has a 256-row table. A row costs one comparison per split, one gather per tree and feature,
  and a sum per feature. The same codes give each tree's leaf, so it also answers margins
  (the counter-offer search scores dozens of candidate terms per decline).
- `PathShap` otherwise: each leaf's shares per agreement pattern; a row costs one gather per
  leaf and path feature.

Both score rows in chunks, so memory stays bounded at a million rows. `explainer_for` checks
the tables against XGBoost's own contributions on probe rows at load and returns None, and the
caller keeps XGBoost's path, for anything they do not cover: categorical splits, multi-output
or DART models, trees too deep to table, or any mismatch.
"""

from __future__ import annotations

import json
import sys
import weakref
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from app.training.treepaths import PathTables, table_size

MAX_TABLE_ENTRIES = 4_000_000  # 32 MB of float64 shares: depth 5 x ~800 trees
CHUNK_ENTRIES = 1_000_000  # rows per chunk x entries per row: bounds a chunk's arrays
CODE_BITS = 8  # splits per tree for CodedShap: one byte of outcomes
TOLERANCE = 1e-4  # margin scale; XGBoost accumulates in float32 (seen: ~2e-6)
_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_GATHER_BITS, _TOP_BYTE = np.uint64(0x0102040810204080), np.uint64(56)


class Explainer(Protocol):
    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """(rows x features + 1) float64 pushes towards default, the last column the bias."""
        ...


class PathShap:
    """Contributions from per-leaf tables: any tree depth the tables fit."""

    def __init__(self, tables: PathTables, n_features: int, bias: float) -> None:
        self.tables, self.n_features, self.bias = tables, n_features, bias
        self.rows = max(1, CHUNK_ENTRIES // max(1, tables.step_node.size))

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        return _with_bias(
            _by_chunks(matrix, self.rows, lambda c: self.tables.contributions(c, self.n_features)),
            self.bias,
        )


class CodedShap:
    """Contributions from per-tree tables indexed by the tree's split outcomes (<= 8 splits)."""

    def __init__(self, tables: PathTables, n_features: int, bias: float) -> None:
        self.n_features, self.bias, trees = n_features, bias, tables.trees
        # Splits laid out CODE_BITS per tree; a padded split never goes left (x < -inf).
        place = tables.node_tree * CODE_BITS + tables.node_rank
        self.feature = np.zeros(trees * CODE_BITS, dtype=np.intp)
        self.threshold = np.full(trees * CODE_BITS, -np.inf, dtype=np.float32)
        self.default_left = np.zeros(trees * CODE_BITS, dtype=bool)
        self.feature[place] = tables.feature
        self.threshold[place] = tables.threshold
        self.default_left[place] = tables.default_left
        codes = np.arange(1 << CODE_BITS)
        left = (codes[:, None] >> tables.node_rank[None, :]) & 1 == 1
        self._tabulate(tables, tables.shares(left))
        # The leaf each code reaches in each tree: the tree's output is its value.
        reached = tables.agree(left).all(axis=2) * tables.leaf_value  # codes x leaves
        leaf_table = np.zeros((trees, 1 << CODE_BITS))
        np.add.at(leaf_table.T, (slice(None), tables.leaf_tree), reached)
        self.leaf_table = leaf_table.ravel()
        self.tree_base = np.arange(trees) * (1 << CODE_BITS)
        self.base_margin = 0.0  # set by `_build` from XGBoost's own margins

    def _tabulate(self, tables: PathTables, shares: np.ndarray) -> None:
        """Sum each tree's leaves' shares per (code, feature of the tree)."""
        valid = tables.valid.astype(bool)
        leaf, slot = np.nonzero(valid)
        tree, feature = tables.leaf_tree[leaf], tables.slot_feature[leaf, slot]
        # Each tree's distinct features, numbered within the tree.
        pairs, position = np.unique(tree * self.n_features + feature, return_inverse=True)
        pair_tree, pair_feature = pairs // self.n_features, pairs % self.n_features
        first = np.searchsorted(pair_tree, np.arange(tables.trees))
        rank = np.arange(len(pairs)) - first[pair_tree]
        width = int(rank.max()) + 1 if len(pairs) else 1
        table = np.zeros((tables.trees, 1 << CODE_BITS, width))
        np.add.at(
            table,
            (tree[:, None], np.arange(1 << CODE_BITS)[None, :], rank[position][:, None]),
            shares[:, leaf, slot].T,
        )
        self.table = table.ravel()
        # Entries (tree, rank) ordered by feature, so one reduceat sums each feature.
        order = np.argsort(pair_feature, kind="stable")
        self.entry_tree = pair_tree[order]
        self.entry_offset = pair_tree[order] * (1 << CODE_BITS) * width + rank[order]
        self.entry_stride = width  # table entries per code
        features = pair_feature[order]
        self.present, self.starts = np.unique(features, return_index=True)
        self.rows = max(1, CHUNK_ENTRIES // max(1, len(pairs)))
        self.margin_rows = max(1, CHUNK_ENTRIES // max(1, len(self.feature)))

    def codes(self, matrix: np.ndarray) -> np.ndarray:
        """(rows x trees) intp in 0-255: bit j set where a row goes left at the tree's j-th
        split."""
        values = matrix.take(self.feature, axis=1)
        left = np.ascontiguousarray(
            (values < self.threshold) | (np.isnan(values) & self.default_left)
        )
        if sys.byteorder != "little":
            packed = np.packbits(
                left.reshape(len(matrix), -1, CODE_BITS), axis=2, bitorder="little"
            )
            return packed[:, :, 0].astype(np.intp)
        # A tree's 8 outcome bytes (0 or 1) read as one integer, times this constant, carry
        # byte j to bit 56 + j: one multiply per tree, ~40x faster than np.packbits on an axis.
        return (left.view(np.uint64) * _GATHER_BITS >> _TOP_BYTE).view(np.intp)

    def margins(self, matrix: np.ndarray) -> np.ndarray:
        """Log-odds (float64) per row: the reached leaves' values plus the base margin, what
        XGBoost's margin prediction gives, without its per-call cost."""
        return _by_chunks(matrix, self.margin_rows, self._margins)

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        return _with_bias(_by_chunks(matrix, self.rows, self._contributions), self.bias)

    def _margins(self, chunk: np.ndarray) -> np.ndarray:
        leaves = self.leaf_table.take(self.codes(chunk) + self.tree_base)
        return leaves.sum(axis=1) + self.base_margin

    def _contributions(self, chunk: np.ndarray) -> np.ndarray:
        out = np.zeros((len(chunk), self.n_features))
        if len(self.present):
            codes = self.codes(chunk)
            index = self.entry_offset + codes[:, self.entry_tree] * self.entry_stride
            out[:, self.present] = np.add.reduceat(self.table.take(index), self.starts, axis=1)
        return out


def _by_chunks(
    matrix: np.ndarray, rows: int, score: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """`score` over float32 row chunks of at most `rows`, so a chunk's arrays stay bounded."""
    matrix = np.asarray(matrix, dtype=np.float32)
    if len(matrix) <= rows:
        return score(matrix)
    return np.concatenate([score(matrix[i : i + rows]) for i in range(0, len(matrix), rows)])


def _with_bias(contributions: np.ndarray, bias: float) -> np.ndarray:
    return np.hstack([contributions, np.full((len(contributions), 1), bias)])


def explainer_for(booster: Any, n_features: int) -> Explainer | None:
    """The booster's tables (cached per booster), or None where XGBoost's own path must stay."""
    if booster not in _cache:
        _cache[booster] = _build(booster, n_features)
    return _cache[booster]


def _build(booster: Any, n_features: int) -> Explainer | None:
    model = json.loads(booster.save_raw("json"))["learner"]
    params, gbm = model["learner_model_param"], model["gradient_booster"]
    if gbm.get("name") != "gbtree" or int(params.get("num_class", 0)) > 1:
        return None
    if int(params.get("num_target", 1)) != 1 or int(params["num_feature"]) != n_features:
        return None
    trees = gbm["model"]["trees"]
    if any(any(kind != 0 for kind in tree.get("split_type", [])) for tree in trees):
        return None  # categorical splits
    if sum(table_size(tree) for tree in trees) > MAX_TABLE_ENTRIES:
        return None
    probe = _probe(trees, n_features)
    expected = _xgboost_contributions(booster, probe)
    tables = PathTables(trees)
    small = all(sum(c != -1 for c in t["left_children"]) <= CODE_BITS for t in trees)
    kind = CodedShap if small else PathShap
    explainer = kind(tables, n_features, float(expected[0, -1]))
    if not np.allclose(explainer.contributions(probe), expected, rtol=0, atol=TOLERANCE):
        return None
    if isinstance(explainer, CodedShap):
        margin = booster.inplace_predict(probe, predict_type="margin", validate_features=False)
        base = np.asarray(margin, dtype="float64") - explainer.margins(probe)
        if np.ptp(base) > TOLERANCE:
            return None
        explainer.base_margin = float(np.median(base))
    return explainer


def _xgboost_contributions(booster: Any, matrix: np.ndarray) -> np.ndarray:
    import xgboost as xgb

    dmatrix = xgb.DMatrix(matrix, missing=np.nan)
    values = booster.predict(dmatrix, pred_contribs=True, validate_features=False)
    return np.asarray(values, dtype="float64")


def _probe(trees: list[dict], n_features: int, rows: int = 64) -> np.ndarray:
    """Rows near every split's threshold on both sides, some missing, deterministically."""
    rng = np.random.default_rng(0)
    cuts: list[list[float]] = [[] for _ in range(n_features)]
    for tree in trees:
        for node, child in enumerate(tree["left_children"]):
            if child != -1:
                cuts[tree["split_indices"][node]].append(float(tree["split_conditions"][node]))
    out = rng.normal(size=(rows, n_features)).astype(np.float32)
    for j, values in enumerate(cuts):
        if values:
            out[:, j] = rng.choice(np.asarray(values), rows) + rng.choice([-1e-3, 0, 1e-3], rows)
    out[rng.random((rows, n_features)) < 0.1] = np.nan
    return out

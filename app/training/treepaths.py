"""Every leaf's share of path-dependent TreeSHAP, tabled per agreement pattern.

Path-dependent TreeSHAP (Lundberg et al. 2020, what XGBoost's `pred_contribs` runs) gives
feature k, for one leaf with value v whose path has d distinct features, cover fractions z
(product of cover(child) / cover(parent) over the path's splits on that feature) and
agreements o (1 when the row follows every split on that feature),

    v (o_k - z_k) sum_{S within the others} |S|! (d - |S| - 1)! / d! prod_S o prod_rest z,

and a row's contribution is the sum over every leaf of every tree. Only o depends on the row,
and it is one of 2^d bit patterns, so each leaf's shares are tabled per pattern at load (Fast
TreeSHAP v2, Yang 2021, arXiv:2109.09847). A row then costs one comparison per split and one
gather per leaf and path feature: it grows with leaves x depth, not leaves x depth^2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class _Leaf:
    tree: int
    value: float
    steps: list[tuple[int, bool]]  # (internal node, went left)
    features: list[int]  # the path's distinct features, first-seen order
    slots: list[int]  # each step's position in `features`
    zero: list[float]  # per feature: the product of the cover fractions of its splits


class PathTables:
    """The splits of XGBoost trees (its JSON model's `trees`) and their leaves' share tables."""

    def __init__(self, trees: list[dict]) -> None:
        nodes, leaves = _walk(trees)
        self.trees = len(trees)
        self.feature = np.array([n[0] for n in nodes], dtype=np.intp)
        self.threshold = np.array([n[1] for n in nodes], dtype=np.float32)
        self.default_left = np.array([n[2] for n in nodes], dtype=bool)
        self.node_tree = np.array([n[3] for n in nodes], dtype=np.intp)
        self.node_rank = np.array([n[4] for n in nodes], dtype=np.intp)  # within its tree
        self.leaf_tree = np.array([leaf.tree for leaf in leaves], dtype=np.intp)
        self.leaf_value = np.array([leaf.value for leaf in leaves])
        count, depth = len(leaves), max((len(leaf.steps) for leaf in leaves), default=0)
        # Padded steps point at an extra always-left column, so they always agree.
        self.step_node = np.full((count, depth), len(nodes), dtype=np.intp)
        self.step_left = np.ones((count, depth), dtype=bool)
        self.step_bit = np.zeros((count, depth), dtype=np.int64)
        self.full = np.zeros(count, dtype=np.int64)  # all of a leaf's path features agree
        self.width = np.zeros(count, dtype=np.int64)
        self.base = np.zeros((count, depth), dtype=np.intp)  # table index under pattern 0
        self.slot_feature = np.zeros((count, depth), dtype=np.intp)
        self.valid = np.zeros((count, depth), dtype=np.intp)
        self.table = self._fill(leaves)

    def left(self, matrix: np.ndarray) -> np.ndarray:
        """(rows x splits) bool: XGBoost sends x < threshold left, a missing x its default way."""
        values = matrix[:, self.feature]
        return (values < self.threshold) | (np.isnan(values) & self.default_left)

    def agree(self, left: np.ndarray) -> np.ndarray:
        """(rows x leaves x depth): whether each row follows each step of each leaf's path."""
        left = np.concatenate([left, np.ones((len(left), 1), dtype=bool)], axis=1)
        return left[:, self.step_node] == self.step_left

    def shares(self, left: np.ndarray) -> np.ndarray:
        """(rows x leaves x depth): each leaf's share of each of its path features
        (`slot_feature`), given the rows' split outcomes; zero in padded slots."""
        agree = self.agree(left)
        failed = np.bitwise_or.reduce(np.where(agree, 0, self.step_bit), axis=2)
        pattern = self.full & ~failed
        return self.table[self.base + (pattern * self.width)[:, :, None] * self.valid]

    def contributions(self, matrix: np.ndarray, n_features: int) -> np.ndarray:
        """(rows x n_features) float64, without the bias."""
        n = len(matrix)
        shares = self.shares(self.left(matrix))
        cells = (np.arange(n)[:, None, None] * n_features + self.slot_feature).ravel()
        phi = np.bincount(cells, weights=shares.ravel(), minlength=n * n_features)
        return phi.reshape(n, n_features)

    def _fill(self, leaves: list[_Leaf]) -> np.ndarray:
        """The index arrays; the shares, leaves grouped by path width, entry 0 a constant 0."""
        by_width: dict[int, list[int]] = {}
        for i, leaf in enumerate(leaves):
            by_width.setdefault(len(leaf.features), []).append(i)
            for s, ((node, went_left), slot) in enumerate(zip(leaf.steps, leaf.slots, strict=True)):
                self.step_node[i, s], self.step_left[i, s] = node, went_left
                self.step_bit[i, s] = 1 << slot
        chunks: list[np.ndarray] = [np.zeros(1)]
        offset = 1
        for d, members in sorted(by_width.items()):
            if not d:
                continue  # a single-leaf tree: all of it is in the bias
            values = np.array([leaves[i].value for i in members])
            zero = np.array([leaves[i].zero for i in members])
            chunks.append(leaf_shares(values, zero).ravel())
            for n, i in enumerate(members):
                self.full[i], self.width[i] = (1 << d) - 1, d
                self.slot_feature[i, :d] = leaves[i].features
                self.valid[i, :d] = 1
                self.base[i, :d] = offset + n * (1 << d) * d + np.arange(d)
            offset += len(members) * (1 << d) * d
        return np.concatenate(chunks)


def table_size(tree: dict) -> int:
    """An upper bound of a tree's table entries: the sum over leaves of 2^depth x depth."""
    left = tree["left_children"]
    depth = [0] * len(left)
    total = 0
    for node, child in enumerate(left):  # XGBoost numbers a parent before its children
        if child == -1:
            total += (2 ** depth[node]) * depth[node]
        else:
            depth[child] = depth[tree["right_children"][node]] = depth[node] + 1
    return total


def leaf_shares(value: np.ndarray, zero: np.ndarray) -> np.ndarray:
    """(leaves x 2^d patterns x d) shares for leaves with d distinct path features: the
    module docstring's formula, bit k of a pattern being o_k."""
    m, d = zero.shape
    weights = [math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d) for s in range(d)]
    out = np.empty((m, 1 << d, d))
    for pattern in range(1 << d):
        one = [(pattern >> k) & 1 for k in range(d)]
        for k in range(d):
            # Coefficients of t^s in prod_{j != k} (z_j + o_j t), for every leaf at once.
            poly = [np.ones(m)]
            for j in range(d):
                if j == k:
                    continue
                grown = [c * zero[:, j] for c in poly] + [np.zeros(m)]
                if one[j]:
                    for s in range(len(poly)):
                        grown[s + 1] = grown[s + 1] + poly[s]
                poly = grown
            total = sum(w * c for w, c in zip(weights, poly, strict=True))
            out[:, pattern, k] = value * (one[k] - zero[:, k]) * total
    return out


def _walk(trees: list[dict]) -> tuple[list[tuple], list[_Leaf]]:
    """Every split (feature, threshold, default left, tree, rank in tree); every leaf's path."""
    nodes: list[tuple] = []
    leaves: list[_Leaf] = []
    for t, tree in enumerate(trees):
        left, right = tree["left_children"], tree["right_children"]
        index: dict[int, int] = {}  # tree node -> position in `nodes`
        for node in range(len(left)):
            if left[node] != -1:
                index[node] = len(nodes)
                split = (tree["split_indices"][node], tree["split_conditions"][node])
                nodes.append((*split, bool(tree["default_left"][node]), t, len(index) - 1))
        stack: list[tuple[int, list[tuple[int, bool]]]] = [(0, [])]
        while stack:
            node, path = stack.pop()
            if left[node] == -1:
                leaves.append(_leaf(tree, t, node, path, index))
                continue
            for child, went_left in ((left[node], True), (right[node], False)):
                stack.append((child, [*path, (node, went_left)]))
    return nodes, leaves


def _leaf(
    tree: dict, t: int, leaf: int, path: list[tuple[int, bool]], index: dict[int, int]
) -> _Leaf:
    features: list[int] = []
    slots: list[int] = []
    zero: list[float] = []
    cover = tree["sum_hessian"]
    for node, went_left in path:
        feature = tree["split_indices"][node]
        child = tree["left_children"][node] if went_left else tree["right_children"][node]
        fraction = float(cover[child]) / float(cover[node])
        if feature in features:  # a feature split on twice counts once, fractions multiplied
            slot = features.index(feature)
            zero[slot] *= fraction
        else:
            slot = len(features)
            features.append(feature)
            zero.append(fraction)
        slots.append(slot)
    steps = [(index[node], went_left) for node, went_left in path]
    # XGBoost keeps a leaf's value in its split_conditions slot.
    return _Leaf(t, float(tree["split_conditions"][leaf]), steps, features, slots, zero)

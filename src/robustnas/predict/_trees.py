"""Fitted regression trees as plain arrays, evaluated with numpy: saving without pickle, loading without sklearn.

A fitted sklearn tree (``estimator.tree_``) holds per node ``children_left`` / ``children_right``
(-1 at leaves), ``feature``, ``threshold`` and ``value`` (node x output x 1). :class:`TreeArrays`
concatenates the trees of one ensemble, tree after tree, with children indices local to their
tree as in sklearn. Traversal reproduces sklearn bit for bit: sklearn casts X to float32 before
predicting and sends a sample left when ``x[feature] <= threshold`` (float32 value compared with
the float64 threshold; ``sklearn/tree/_tree.pyx``, ``_apply_dense``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from robustnas.errors import RobustnasError

LEAF = -1  # sklearn's TREE_LEAF: the children of a leaf
NAMES = ("starts", "children_left", "children_right", "feature", "threshold", "value")


class TreeArrays:
    """The nodes of ``n_trees`` trees; tree ``t`` is nodes ``starts[t]:starts[t + 1]``."""

    def __init__(
        self,
        starts: np.ndarray,
        children_left: np.ndarray,
        children_right: np.ndarray,
        feature: np.ndarray,
        threshold: np.ndarray,
        value: np.ndarray,
    ) -> None:
        self.starts = starts
        self.children_left = children_left
        self.children_right = children_right
        self.feature = feature
        self.threshold = threshold
        self.value = value  # (nodes, outputs)
        # For traversal: global child indices, leaves pointing at themselves (so they stay put)
        # and splitting on column 0 (their stored feature, -2, is no column).
        offset = np.repeat(starts[:-1], np.diff(starts))
        self._is_leaf = children_left == LEAF
        own = np.arange(len(children_left))
        self._next_left = np.where(self._is_leaf, own, children_left + offset)
        self._next_right = np.where(self._is_leaf, own, children_right + offset)
        self._split_feature = np.where(self._is_leaf, 0, feature)

    @property
    def n_trees(self) -> int:
        return len(self.starts) - 1

    @classmethod
    def from_sklearn(cls, trees: Sequence[object]) -> TreeArrays:
        """The arrays of sklearn ``Tree`` objects (``estimator.tree_`` of fitted regressors)."""
        sizes = [tree.node_count for tree in trees]
        return cls(
            starts=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            children_left=np.concatenate([tree.children_left for tree in trees]).astype(np.int64),
            children_right=np.concatenate([tree.children_right for tree in trees]).astype(np.int64),
            feature=np.concatenate([tree.feature for tree in trees]).astype(np.int64),
            threshold=np.concatenate([tree.threshold for tree in trees]).astype(np.float64),
            value=np.concatenate([tree.value[:, :, 0] for tree in trees]).astype(np.float64),
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """The plain arrays to save, by the names in ``NAMES``."""
        return {name: getattr(self, name) for name in NAMES}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], n_features: int, where: str) -> TreeArrays:
        """Trees read from an untrusted file, checked so that traversal cannot fail or loop forever."""
        missing = [name for name in NAMES if name not in arrays]
        if missing:
            raise RobustnasError(f"{where}: no tree array(s) {', '.join(missing)} (not a predictor file?)")
        try:
            typed = {name: _typed(arrays[name], name) for name in NAMES}
        except TypeError as error:
            typed, problem = None, str(error)
        else:
            problem = _problem(typed, n_features)
        if problem:
            raise RobustnasError(f"{where}: corrupt tree arrays ({problem}); save the predictor again")
        return cls(**typed)

    def leaf_values(self, x: np.ndarray) -> np.ndarray:
        """(n_trees, n_samples, outputs): each tree's leaf value for each row of float32 ``x``.

        All trees and samples advance one level per step, so the loop runs max-depth times.
        """
        rows = np.arange(x.shape[0])
        node = np.repeat(self.starts[:-1, None], x.shape[0], axis=1)
        while not self._is_leaf[node].all():
            goes_left = x[rows, self._split_feature[node]] <= self.threshold[node]
            node = np.where(goes_left, self._next_left[node], self._next_right[node])
        return self.value[node]


def _typed(array: np.ndarray, name: str) -> np.ndarray:
    """``array`` as int64 (float64 for thresholds and values); TypeError unless of that kind and rank."""
    dtype = np.float64 if name in ("threshold", "value") else np.int64
    ndim = 2 if name == "value" else 1
    if array.ndim != ndim or array.dtype.kind != np.dtype(dtype).kind:
        raise TypeError(f"'{name}' is {array.ndim}-D {array.dtype}, expected {ndim}-D {np.dtype(dtype)}")
    return array.astype(dtype)


def _problem(arrays: dict[str, np.ndarray], n_features: int) -> str | None:
    """What makes these arrays unusable, or None. Every child must come after its parent inside
    its own tree (so traversal ends) and every split must use an existing feature."""
    starts, left, right, feature = (arrays[name] for name in NAMES[:4])
    nodes = len(left)
    if any(len(arrays[name]) != nodes for name in NAMES[2:]):
        return "arrays of different lengths"
    if not (np.isfinite(arrays["threshold"]).all() and np.isfinite(arrays["value"]).all()):
        return "NaN or inf in thresholds or leaf values"
    sizes = np.diff(starts)
    if len(starts) < 2 or starts[0] != 0 or np.any(sizes < 1) or starts[-1] != nodes:
        return "tree starts do not partition the nodes"
    local = np.arange(nodes) - np.repeat(starts[:-1], sizes)
    size = np.repeat(sizes, sizes)
    leaf = left == LEAF
    if np.any(right[leaf] != LEAF):
        return "a leaf with a right child"
    inner = ~leaf
    for children in (left[inner], right[inner]):
        if np.any(children <= local[inner]) or np.any(children >= size[inner]):
            return "a child index outside its tree or before its parent"
    if np.any(feature[inner] < 0) or np.any(feature[inner] >= n_features):
        return f"a split on a feature outside 0..{n_features - 1}"
    return None

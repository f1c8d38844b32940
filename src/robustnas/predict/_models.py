"""Predicting accuracies from proxy values: the seed paper's random forest (spec §4.3) and a GB baseline.

``Predictor`` fits with sklearn, then keeps only the trees as plain arrays (trees.py) and predicts
by traversing them, fitted or loaded alike. Trees are summed in order, as sklearn does with
``n_jobs=1``; sklearn's threaded predict (``n_jobs=-1``) adds trees in completion order, so its
output can differ from call to call in the last bits (~1e-15).
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split

from robustnas.data._safe_npz import read_npz
from robustnas.errors import RobustnasError
from robustnas._files import atomic_write
from robustnas.predict._trees import TreeArrays

MODELS = ("rf", "gb")
FILE_FORMAT = "robustnas.predict.Predictor"
FORMAT_VERSION = 1
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def split(
    features: pd.DataFrame,
    targets: pd.DataFrame | pd.Series,
    test_size: float = 0.2,
    random_state: int = 42,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | pd.Series, pd.DataFrame | pd.Series]:
    """(X_train, X_test, y_train, y_test): sklearn's shuffled ``train_test_split`` (spec §4.3),
    so every target of the same rows gets the same split."""
    _check_rows(features, targets)
    x_train, x_test, y_train, y_test = train_test_split(
        features, targets, test_size=test_size, random_state=random_state
    )
    return x_train, x_test, y_train, y_test


def r2(y_true: pd.DataFrame | pd.Series | np.ndarray, y_pred: np.ndarray) -> float:
    """R², averaged uniformly over outputs: the spec's test metric, as ``rf.score`` (§4.3)."""
    return float(r2_score(y_true, y_pred, multioutput="uniform_average"))


class Predictor:
    """Regressor from feature columns (proxy values) to one or several target columns.

    ``model="rf"``: the spec's ``RandomForestRegressor(n_estimators=100, bootstrap=True,
    oob_score=True, n_jobs=-1)``, other parameters default; several targets make one
    multi-output forest (§4.3). ``model="gb"``: ``GradientBoostingRegressor`` with defaults,
    one model per target; ``feature_importances_`` is then the mean of the per-target importances.
    """

    def __init__(self, model: str = "rf", random_state: int | None = 42) -> None:
        if model not in MODELS:
            raise RobustnasError(
                f"unknown model kind {model!r}: use 'rf' (random forest, spec §4.3) or 'gb' (gradient boosting)"
            )
        if random_state is not None and (isinstance(random_state, bool)
                                         or not isinstance(random_state, (int, np.integer))):
            raise RobustnasError(f"random_state must be an integer or None, got {random_state!r}")
        self.model = model
        self.random_state = None if random_state is None else int(random_state)
        # What the features and targets came from (JSON-able; saved with the file), e.g. the study's
        # dataset and the scoring settings of its proxies, so a user of the file can check them.
        self.fitted_on: dict = {}
        self._fitted: dict | None = None

    # ---- fitting and predicting ------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: pd.DataFrame | pd.Series) -> Predictor:
        """Fit on the feature frame ``X`` and the target column(s) ``y`` (same rows, same index)."""
        _check_rows(X, y)
        if len(X) < 2:
            raise RobustnasError(f"X has {len(X)} rows; fitting needs at least 2")
        features = _names(X, "X")
        x = _values(X, "X", float32=True)
        target_frame = _target_frame(y)
        targets = _names(target_frame, "y")
        y_values = _values(target_frame, "y")
        y_fit = y_values[:, 0] if len(targets) == 1 else y_values
        fit = _fit_rf if self.model == "rf" else _fit_gb
        self._fitted = {"features": features, "targets": targets} | fit(x, y_fit, self.random_state)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predictions for the rows of ``X``: 1-D for one target, (rows, targets) for several.

        Columns are taken by name, so their order and any extra columns do not matter.
        """
        x = _values(_select(X, self.features, "X", "feature"), "X", float32=True).astype(np.float32)
        fitted = self._fitted
        leaves = fitted["trees"].leaf_values(x)
        if self.model == "rf":
            total = np.zeros(leaves.shape[1:])
            for tree_values in leaves:
                total += tree_values
            total /= len(leaves)
        else:
            total = np.empty((len(x), len(self.targets)))
            per_target = fitted["n_estimators"]
            for k, init in enumerate(fitted["init"]):
                raw = np.full(len(x), init)
                for tree_values in leaves[k * per_target:(k + 1) * per_target, :, 0]:
                    raw += fitted["learning_rate"] * tree_values
                total[:, k] = raw
        return total[:, 0] if len(self.targets) == 1 else total

    def score(self, X: pd.DataFrame, y: pd.DataFrame | pd.Series) -> float:
        """Test R² of the predictions for ``X`` against ``y``, mean over targets (spec §4.3)."""
        _check_rows(X, y)
        if len(X) < 2:
            raise RobustnasError(f"X has {len(X)} rows; R² needs at least 2")
        y_values = _select(_target_frame(y), self.targets, "y", "target").to_numpy(dtype=np.float64)
        predicted = self.predict(X)
        return r2(y_values[:, 0] if len(self.targets) == 1 else y_values, predicted)

    # ---- what was fitted -------------------------------------------------------------------------
    @property
    def features(self) -> list[str]:
        """Feature column names seen in fit, in order."""
        return list(self._state()["features"])

    @property
    def targets(self) -> list[str]:
        """Target column names seen in fit, in order (a Series' name; "y" when it has none)."""
        return list(self._state()["targets"])

    @property
    def feature_importances_(self) -> pd.Series:
        """Mean decrease in impurity ("Gini importance") per feature, normalised to sum 1."""
        return pd.Series(self._state()["importances"], index=self.features, name="importance")

    @property
    def oob_score_(self) -> float | None:
        """The random forest's out-of-bag R² (printed by the seed study, §4.3); None for "gb"."""
        return self._state().get("oob_score")

    def _state(self) -> dict:
        if self._fitted is None:
            raise RobustnasError("this Predictor is not fitted: call fit(X, y) or Predictor.load(path) first")
        return self._fitted

    # ---- saving without pickle -------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write one ``.npz`` file: every tree as plain arrays plus JSON metadata (no pickle)."""
        fitted = self._state()
        meta = {
            "format": FILE_FORMAT,
            "format_version": FORMAT_VERSION,
            "model": self.model,
            "random_state": self.random_state,
            "features": fitted["features"],
            "targets": fitted["targets"],
            "sklearn_version": sklearn.__version__,
            "fitted_on": self.fitted_on,
        } | {key: fitted[key] for key in _MODEL_META[self.model]}
        try:
            meta_text = json.dumps(meta, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise RobustnasError(f"fitted_on must hold JSON values (str, numbers, lists, dicts): {error}") from None
        arrays = fitted["trees"].arrays() | {
            "importances": fitted["importances"],
            "meta": np.array(meta_text),
        }
        path = Path(path)
        try:
            with atomic_write(path) as stream:  # a crash while writing never leaves a truncated predictor
                np.savez_compressed(stream, **arrays)
        except OSError as error:
            raise RobustnasError(f"cannot write the predictor to {path}: {error.strerror or error}") from None

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        """The predictor saved at ``path``, read with the safe ``.npz`` reader; needs no sklearn object."""
        arrays = read_npz(Path(path))
        meta = _read_meta(arrays, path)
        predictor = cls(meta["model"], meta["random_state"])
        predictor.fitted_on = meta.get("fitted_on", {})  # files saved before it existed have none
        features = meta["features"]
        trees = TreeArrays.from_arrays(arrays, len(features), str(path))
        importances = arrays.get("importances")
        if (importances is None or importances.shape != (len(features),) or importances.dtype.kind != "f"
                or not np.isfinite(importances).all()):
            raise RobustnasError(f"{path}: corrupt predictor file (no importance per feature); save it again")
        _check_tree_count(meta, trees, path)
        predictor._fitted = {
            "features": features,
            "targets": meta["targets"],
            "trees": trees,
            "importances": importances.astype(np.float64),
        } | {key: meta[key] for key in _MODEL_META[meta["model"]]}
        return predictor


# Metadata kept per model kind beyond features and targets (saved in the file's JSON).
_MODEL_META = {"rf": ("oob_score",), "gb": ("n_estimators", "learning_rate", "init")}


def _fit_rf(x: np.ndarray, y: np.ndarray, random_state: int) -> dict:
    """The spec's forest (§4.3): one multi-output forest when ``y`` has several columns."""
    with warnings.catch_warnings():
        # On a loaded machine sklearn's threaded tree building can warn once per tree that its
        # config did not reach the worker (seen: ~8,000 lines per study); harmless here.
        warnings.filterwarnings("ignore", message=".*sklearn.utils.parallel.delayed", category=UserWarning)
        forest = RandomForestRegressor(
            n_estimators=100, bootstrap=True, oob_score=True, n_jobs=-1, random_state=random_state
        ).fit(x, y)
        importances = forest.feature_importances_.astype(np.float64)
    return {
        "trees": TreeArrays.from_sklearn([tree.tree_ for tree in forest.estimators_]),
        "importances": importances,
        "oob_score": float(forest.oob_score_),
    }


def _fit_gb(x: np.ndarray, y: np.ndarray, random_state: int) -> dict:
    """One default ``GradientBoostingRegressor`` per target; prediction = init + lr * sum of trees."""
    columns = y.reshape(len(y), -1).T
    models = [GradientBoostingRegressor(random_state=random_state).fit(x, column) for column in columns]
    return {
        "trees": TreeArrays.from_sklearn([tree.tree_ for m in models for tree in m.estimators_[:, 0]]),
        "importances": np.mean([m.feature_importances_ for m in models], axis=0),
        "n_estimators": models[0].estimators_.shape[0],
        "learning_rate": float(models[0].learning_rate),
        "init": [float(m.init_.constant_[0, 0]) for m in models],
    }


# ---- checking inputs -----------------------------------------------------------------------------
def _check_rows(X: object, y: object) -> None:
    """``X`` a DataFrame and ``y`` a DataFrame/Series with the same row index (rows pair by label)."""
    if not isinstance(X, pd.DataFrame):
        raise RobustnasError(f"X must be a pandas DataFrame with one column per feature, not {type(X).__name__}")
    if not isinstance(y, (pd.DataFrame, pd.Series)):
        raise RobustnasError(f"y must be a pandas DataFrame or Series of targets, not {type(y).__name__}")
    if len(X) != len(y) or not X.index.equals(y.index):
        raise RobustnasError(
            f"X ({len(X)} rows) and y ({len(y)} rows) do not have the same row index: "
            "align them first, e.g. y = y.loc[X.index]"
        )


def _target_frame(y: pd.DataFrame | pd.Series) -> pd.DataFrame:
    """``y`` as a frame; an unnamed Series becomes the column "y"."""
    return y.to_frame("y" if y.name is None else y.name) if isinstance(y, pd.Series) else y


def _names(frame: pd.DataFrame, what: str) -> list[str]:
    """The column names of ``frame``: at least one, all distinct strings (they are saved as JSON)."""
    names = list(frame.columns)
    if not names:
        raise RobustnasError(f"{what} has no columns")
    if not all(isinstance(name, str) for name in names) or len(set(names)) != len(names):
        raise RobustnasError(f"{what} column names must be distinct strings, got {names}")
    return names


def _select(frame: object, names: list[str], what: str, kind: str) -> pd.DataFrame:
    """The columns ``names`` of ``frame`` in that order; an error names the missing ones."""
    if not isinstance(frame, pd.DataFrame):
        raise RobustnasError(f"{what} must be a pandas DataFrame with the {kind} columns {names}")
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise RobustnasError(f"{what} lacks the {kind} column(s) {missing} the predictor was fitted on")
    repeated = [name for name in names if (frame.columns == name).sum() > 1]
    if repeated:
        raise RobustnasError(f"{what} has the {kind} column(s) {repeated} more than once: keep one of each")
    return frame[names]


def _values(frame: pd.DataFrame, what: str, float32: bool = False) -> np.ndarray:
    """``frame`` as float64, refusing non-numeric columns, NaN, inf and, with ``float32`` (tree
    inputs, which sklearn casts to float32), magnitudes beyond float32. Finite sentinels such
    as the suite's -1e8 pass unchanged."""
    text = [str(name) for name in frame.columns if not pd.api.types.is_numeric_dtype(frame[name])]
    if text:
        raise RobustnasError(f"{what} has non-numeric column(s) {text}: convert them to numbers or drop them")
    values = frame.to_numpy(dtype=np.float64)
    limit = _FLOAT32_MAX if float32 else np.inf
    bad = ~(np.abs(values) <= limit)  # True for NaN too
    if bad.any():
        counts = {str(name): int(n) for name, n in zip(frame.columns, bad.sum(axis=0)) if n}
        listed = ", ".join(f"'{name}' ({n} rows)" for name, n in counts.items())
        beyond = " or beyond float32" if float32 else ""
        raise RobustnasError(
            f"{what} has NaN/inf{beyond} values in column(s) {listed} of {len(values)} rows: "
            "drop or fill those rows first"
        )
    return values


# ---- reading saved files -------------------------------------------------------------------------
def _read_meta(arrays: dict[str, np.ndarray], path: str | Path) -> dict:
    """The JSON metadata of a predictor file, checked for format, version and field types."""
    meta_array = arrays.get("meta")
    if meta_array is None or meta_array.dtype.kind != "U" or meta_array.ndim != 0:
        raise RobustnasError(f"{path}: not a robustnas predictor file (no JSON 'meta' array)")
    try:
        meta = json.loads(str(meta_array[()]))
    except json.JSONDecodeError as error:
        raise RobustnasError(f"{path}: corrupt predictor metadata ({error}); save it again") from None
    if not isinstance(meta, dict) or meta.get("format") != FILE_FORMAT:
        raise RobustnasError(f"{path}: not a robustnas predictor file (format is not {FILE_FORMAT!r})")
    if type(meta.get("format_version")) is not int or meta["format_version"] != FORMAT_VERSION:
        raise RobustnasError(
            f"{path}: predictor file format version {meta.get('format_version')!r}, this robustnas reads "
            f"version {FORMAT_VERSION}: fit and save the predictor again"
        )
    model = meta.get("model")
    if model not in MODELS:
        raise RobustnasError(f"{path}: corrupt predictor metadata (model {model!r} is not one of {list(MODELS)})")
    wrong = [key for key, ok in _META_CHECKS[model].items() if key not in meta or not ok(meta[key])]
    if not isinstance(meta.get("fitted_on", {}), dict):
        wrong.append("fitted_on")
    if wrong:
        raise RobustnasError(f"{path}: corrupt predictor metadata (bad field(s) {wrong}); save it again")
    return meta


def _names_ok(value: object) -> bool:
    return (isinstance(value, list) and bool(value) and all(isinstance(name, str) for name in value)
            and len(set(value)) == len(value))


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_COMMON_CHECKS = {
    "random_state": lambda value: value is None or isinstance(value, int),
    "features": _names_ok,
    "targets": _names_ok,
}
_META_CHECKS = {
    "rf": _COMMON_CHECKS | {"oob_score": _number},
    "gb": _COMMON_CHECKS | {
        "n_estimators": lambda value: isinstance(value, int) and value > 0,
        "learning_rate": _number,
        "init": lambda value: isinstance(value, list) and all(_number(v) for v in value),
    },
}


def _check_tree_count(meta: dict, trees: TreeArrays, path: str | Path) -> None:
    """Each tree's outputs and the number of trees must match the targets of the metadata."""
    n_targets = len(meta["targets"])
    if meta["model"] == "rf":
        fits = trees.value.shape[1] == n_targets
    else:
        fits = (
            trees.value.shape[1] == 1
            and len(meta["init"]) == n_targets
            and trees.n_trees == meta["n_estimators"] * n_targets
        )
    if not fits:
        raise RobustnasError(f"{path}: corrupt predictor file (trees do not match its {n_targets} targets)")

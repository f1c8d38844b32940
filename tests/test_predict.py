"""Tests for robustnas.predict: the spec's RF protocol (§4.3), GB baseline, pickle-free save/load."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.model_selection import train_test_split

from robustnas.data._safe_npz import read_npz
from robustnas.errors import RobustnasError
from robustnas.predict import Predictor, r2, split

FEATURES = ["jacov", "snip", "nwot", "zen"]


def _data(rows: int = 150) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Proxy-like features (one with the suite's -1e8 sentinel) and two accuracy targets,
    indexed by non-consecutive uids as the NB201 tables are."""
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES, index=np.arange(rows) * 7 + 3)
    x.iloc[::10, 3] = -1e8
    clean = 1 / (1 + np.exp(-x["jacov"] - 0.5 * x["snip"])) + 0.02 * rng.normal(size=rows)
    y = pd.DataFrame({"clean": clean, "pgd@Linf, eps=1.0": 0.4 * clean + 0.1 * x["nwot"].clip(-1, 1)})
    return x, y


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return split(*_data())


def _spec_forest() -> RandomForestRegressor:
    """sklearn's forest with the seed study's parameters, built here independently (spec §4.3)."""
    return RandomForestRegressor(n_estimators=100, bootstrap=True, oob_score=True, n_jobs=-1, random_state=42)


# ---- split and R² --------------------------------------------------------------------------------
def test_split_is_train_test_split_with_the_spec_seed() -> None:
    x, y = _data()
    expected = train_test_split(x, y, test_size=0.2, random_state=42)
    got = split(x, y)
    for want, have in zip(expected, got):
        pd.testing.assert_frame_equal(want, have)
    assert len(got[1]) == 30 and got[1].index.equals(got[3].index)
    # Every target gets the same rows: a single column splits like the frame.
    assert split(x, y["clean"])[3].index.equals(got[3].index)


def test_r2_hand_values() -> None:
    # Column 1: SS_res = 1, SS_tot = 2 -> 0.5. Column 2: SS_res = 1, SS_tot = 2/3 -> -0.5. Mean 0.
    assert r2(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0])) == 0.5
    y_true = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 1.0]])
    y_pred = np.array([[1.0, 0.0], [2.0, 1.0], [4.0, 1.0]])
    assert r2(y_true, y_pred) == pytest.approx(0.0, abs=1e-15)


# ---- the spec's forest ---------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["clean", None])
def test_rf_reproduces_sklearn_with_spec_parameters(data, target) -> None:
    x_train, x_test, y_train, y_test = data
    y_fit, y_eval = (y_train, y_test) if target is None else (y_train[target], y_test[target])
    predictor = Predictor("rf").fit(x_train, y_fit)
    forest = _spec_forest().fit(x_train, y_fit)
    forest.set_params(n_jobs=1)  # sklearn then sums trees in order, as Predictor does
    np.testing.assert_array_equal(predictor.predict(x_test), forest.predict(x_test))
    assert predictor.score(x_test, y_eval) == forest.score(x_test, y_eval)
    np.testing.assert_array_equal(predictor.feature_importances_.to_numpy(), forest.feature_importances_)
    assert predictor.oob_score_ == forest.oob_score_
    assert predictor.features == FEATURES
    assert predictor.targets == (list(y_train.columns) if target is None else [target])
    assert predictor.predict(x_test).shape == ((len(x_test), 2) if target is None else (len(x_test),))


def test_trees_compare_in_float32_like_sklearn() -> None:
    # Thresholds fall at k + 0.5. In float64, k + 0.5 + 1e-9 lies right of them; sklearn casts X
    # to float32 first, which rounds it back onto the threshold, so the sample goes left.
    x = pd.DataFrame({"a": np.arange(10.0)})
    y = pd.Series(np.arange(10.0) ** 2, name="y")
    probe = pd.DataFrame({"a": np.arange(10.0) + 0.5 + 1e-9})
    references = {
        "rf": _spec_forest().fit(x, y).set_params(n_jobs=1),
        "gb": GradientBoostingRegressor(random_state=42).fit(x, y),
    }
    for kind, reference in references.items():
        predictor = Predictor(kind).fit(x, y)
        expected = reference.predict(probe)
        np.testing.assert_array_equal(predictor.predict(probe), expected)
        np.testing.assert_array_equal(predictor.predict(probe), predictor.predict(probe - 1e-9))


def test_multi_output_score_is_mean_of_per_output_r2(data) -> None:
    x_train, x_test, y_train, y_test = data
    predictor = Predictor("rf").fit(x_train, y_train)
    predicted = predictor.predict(x_test)
    truth = y_test.to_numpy()
    per_output = 1 - ((truth - predicted) ** 2).sum(axis=0) / ((truth - truth.mean(axis=0)) ** 2).sum(axis=0)
    assert predictor.score(x_test, y_test) == pytest.approx(per_output.mean(), rel=1e-12)
    assert per_output[0] != pytest.approx(per_output[1])  # so the mean is not trivially either one


def test_known_answer_top_feature_and_r2() -> None:
    # y = x0 exactly; the other columns are independent noise.
    rng = np.random.default_rng(1)
    x = pd.DataFrame(rng.uniform(size=(200, 4)), columns=["x0", "n1", "n2", "n3"])
    x_train, x_test, y_train, y_test = split(x, x["x0"].rename("y"))
    for kind in ("rf", "gb"):
        predictor = Predictor(kind).fit(x_train, y_train)
        importance = predictor.feature_importances_
        assert importance.idxmax() == "x0" and importance["x0"] > 0.9
        assert importance.sum() == pytest.approx(1.0, abs=1e-12)
        assert predictor.score(x_test, y_test) > 0.9


# ---- gradient boosting ---------------------------------------------------------------------------
def test_gb_is_one_default_model_per_target(data) -> None:
    x_train, x_test, y_train, _ = data
    predictor = Predictor("gb").fit(x_train, y_train)
    models = [GradientBoostingRegressor(random_state=42).fit(x_train, y_train[name]) for name in y_train]
    expected = np.column_stack([model.predict(x_test) for model in models])
    np.testing.assert_array_equal(predictor.predict(x_test), expected)
    mean_importance = np.mean([model.feature_importances_ for model in models], axis=0)
    np.testing.assert_allclose(predictor.feature_importances_.to_numpy(), mean_importance, rtol=1e-15)
    assert predictor.oob_score_ is None


def test_predict_takes_columns_by_name(data) -> None:
    x_train, x_test, y_train, _ = data
    predictor = Predictor("gb").fit(x_train, y_train["clean"])
    shuffled = x_test[FEATURES[::-1]].assign(extra=1.0)
    np.testing.assert_array_equal(predictor.predict(shuffled), predictor.predict(x_test))


# ---- save / load ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["rf", "gb"])
@pytest.mark.parametrize("target", ["clean", None])
def test_save_load_round_trip_is_exact(data, tmp_path: Path, kind: str, target: str | None) -> None:
    x_train, x_test, y_train, y_test = data
    y_fit = y_train if target is None else y_train[target]
    fitted = Predictor(kind).fit(x_train, y_fit)
    path = tmp_path / "predictor.npz"
    fitted.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["predictor.npz"]
    stored = read_npz(path)
    assert {"children_left", "children_right", "feature", "threshold", "value", "meta"} <= set(stored)
    meta = json.loads(str(stored["meta"][()]))
    assert meta["model"] == kind and meta["features"] == FEATURES

    loaded = Predictor.load(path)
    assert loaded.model == kind and loaded.features == fitted.features and loaded.targets == fitted.targets
    np.testing.assert_array_equal(loaded.predict(x_test), fitted.predict(x_test))
    pd.testing.assert_series_equal(loaded.feature_importances_, fitted.feature_importances_)
    assert loaded.oob_score_ == fitted.oob_score_
    # The loaded trees alone reproduce sklearn (n_jobs=1 for a deterministic tree order).
    if kind == "rf":
        reference = _spec_forest().fit(x_train, y_fit).set_params(n_jobs=1).predict(x_test)
        np.testing.assert_array_equal(loaded.predict(x_test), reference)
    # A loaded predictor can be fitted again.
    assert loaded.fit(x_train, y_train["clean"]).targets == ["clean"]


# ---- bad inputs ----------------------------------------------------------------------------------
def test_unknown_model_kind() -> None:
    with pytest.raises(RobustnasError, match="unknown model kind 'svm'"):
        Predictor("svm")


def test_not_fitted() -> None:
    x, _ = _data()
    with pytest.raises(RobustnasError, match="not fitted"):
        Predictor().predict(x)
    with pytest.raises(RobustnasError, match="not fitted"):
        Predictor().save("unused.npz")


def test_nan_and_inf_are_refused_with_columns_and_counts() -> None:
    x, y = _data(30)
    x.iloc[[1, 4], 1] = np.nan
    x.iloc[2, 2] = np.inf
    with pytest.raises(RobustnasError, match=r"X has NaN/inf.*'snip' \(2 rows\), 'nwot' \(1 rows\) of 30 rows"):
        Predictor().fit(x, y)
    x, y = _data(30)
    x.iloc[0, 0] = 1e39  # finite in float64, inf in the float32 the trees compare
    with pytest.raises(RobustnasError, match="beyond float32.*'jacov' \\(1 rows\\)"):
        Predictor().fit(x, y)
    x, y = _data(30)
    y.iloc[3, 0] = np.nan
    with pytest.raises(RobustnasError, match=r"y has NaN/inf values in column\(s\) 'clean' \(1 rows\)"):
        Predictor().fit(x, y)


def test_missing_column_at_predict(data) -> None:
    x_train, x_test, y_train, _ = data
    predictor = Predictor("gb").fit(x_train, y_train["clean"])
    with pytest.raises(RobustnasError, match=r"lacks the feature column\(s\) \['snip', 'zen'\]"):
        predictor.predict(x_test.drop(columns=["zen", "snip"]))


def test_misaligned_rows_are_refused() -> None:
    x, y = _data(30)
    with pytest.raises(RobustnasError, match="same row index"):
        Predictor().fit(x, y.reset_index(drop=True))
    with pytest.raises(RobustnasError, match="must be a pandas DataFrame"):
        Predictor().fit(x.to_numpy(), y)
    with pytest.raises(RobustnasError, match="X has 1 rows; fitting needs at least 2"):
        Predictor().fit(x.iloc[:1], y.iloc[:1])


def test_files_that_are_not_predictors(data, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(RobustnasError, match="not a readable .npz file"):
        Predictor.load(garbage)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(RobustnasError, match="not a robustnas predictor file"):
        Predictor.load(other)

    x_train, _, y_train, _ = data
    good = tmp_path / "good.npz"
    Predictor("gb").fit(x_train, y_train["clean"]).save(good)
    arrays = read_npz(good)
    meta = json.loads(str(arrays["meta"][()]))
    _rewrite(tmp_path / "v2.npz", arrays, meta | {"format_version": 2})
    with pytest.raises(RobustnasError, match="format version 2, this robustnas reads version 1"):
        Predictor.load(tmp_path / "v2.npz")
    # A child pointing back at the root would make traversal loop forever: refused at load.
    looped = arrays | {"children_left": np.where(arrays["children_left"] > 0, 0, arrays["children_left"])}
    _rewrite(tmp_path / "loop.npz", looped, meta)
    with pytest.raises(RobustnasError, match="corrupt tree arrays.*before its parent"):
        Predictor.load(tmp_path / "loop.npz")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a, m: (a, {k: v for k, v in m.items() if k != "random_state"}), r"bad field\(s\) \['random_state'\]"),
        (lambda a, m: (a, m | {"features": [FEATURES[0]] * 3}), r"bad field\(s\) \['features'\]"),
        (lambda a, m: (a, m | {"format_version": True}), "format version True"),
        (lambda a, m: (a, m | {"learning_rate": float("nan")}), r"bad field\(s\) \['learning_rate'\]"),
        (lambda a, m: (a | {"value": np.full_like(a["value"], np.nan)}, m), "NaN or inf in thresholds or leaf values"),
        (lambda a, m: (a | {"importances": np.full_like(a["importances"], np.inf)}, m), "no importance per feature"),
    ],
    ids=["no random_state", "repeated feature", "bool version", "nan learning rate", "nan leaves", "inf importances"],
)
def test_corrupt_metadata_and_values_are_refused_at_load(data, tmp_path: Path, change, message) -> None:
    x_train, _, y_train, _ = data
    good = tmp_path / "good.npz"
    Predictor("gb").fit(x_train[FEATURES[:3]], y_train["clean"]).save(good)
    arrays = read_npz(good)
    arrays, meta = change(arrays, json.loads(str(arrays["meta"][()])))
    _rewrite(tmp_path / "bad.npz", arrays, meta)
    with pytest.raises(RobustnasError, match=message):
        Predictor.load(tmp_path / "bad.npz")


def test_save_errors_and_atomic_write(data, tmp_path: Path, monkeypatch) -> None:
    x_train, _, y_train, _ = data
    fitted = Predictor("rf", np.int64(3)).fit(x_train, y_train["clean"])
    assert fitted.random_state == 3 and type(fitted.random_state) is int
    with pytest.raises(RobustnasError, match="random_state must be an integer or None, got 'x'"):
        Predictor("rf", "x")
    with pytest.raises(RobustnasError, match=f"cannot write the predictor to {tmp_path / 'no' / 'p.npz'}"):
        fitted.save(tmp_path / "no" / "p.npz")
    target = tmp_path / "p.npz"
    fitted.save(target)
    before = target.read_bytes()

    def crash(stream, **arrays):
        stream.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", crash)
    with pytest.raises(RobustnasError, match="No space left on device"):
        fitted.save(target)
    assert target.read_bytes() == before and list(tmp_path.iterdir()) == [target]


def test_score_needs_two_rows(data) -> None:
    x_train, x_test, y_train, y_test = data
    fitted = Predictor("rf").fit(x_train, y_train["clean"])
    with pytest.raises(RobustnasError, match="X has 1 rows; R² needs at least 2"):
        fitted.score(x_test.iloc[:1], y_test["clean"].iloc[:1])


def test_saved_file_holds_no_python_objects(data, tmp_path: Path) -> None:
    x_train, _, y_train, _ = data
    path = tmp_path / "rf.npz"
    Predictor("rf").fit(x_train, y_train).save(path)
    with zipfile.ZipFile(path) as archive:
        assert all(name.endswith(".npy") for name in archive.namelist())
    assert all(not array.dtype.hasobject for array in read_npz(path).values())


def _rewrite(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    np.savez(path, **(arrays | {"meta": np.array(json.dumps(meta))}))

"""The robustness-prediction study (robustnas.report._study) and `robustnas study`."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from robustnas.bench import Benchmark
from robustnas.bench._names import SEVERITIES
from robustnas.cli import main
from robustnas.errors import RobustnasError
from robustnas.predict import Predictor
from robustnas.report import _study as study
from robustnas.report._document import Document
from robustnas.report._stats import CROZE_GROUPS
from robustnas.scoring import select_archs
from robustnas.spaces.nb201 import NB201Arch

SMALL = 150


class SmallBench(Benchmark):
    """The shipped benchmark restricted to the first SMALL representatives the suite covers."""

    def _keep(self) -> pd.Index:
        suite = super().suite_zero("cifar10")
        return suite.index[suite.index.isin(self.representatives())][:SMALL]

    def suite_zero(self, dataset: str) -> pd.DataFrame:
        frame = super().suite_zero(dataset)
        return frame.loc[frame.index.intersection(self._keep())]

    def table(self, dataset: str, **kwargs) -> pd.DataFrame:
        frame = super().table(dataset, **kwargs)
        return frame.loc[frame.index.intersection(self._keep())]


def test_tasks_are_the_papers_nine_fits():
    names = [(t.target, t.objective, t.columns) for t in study.tasks()]
    assert names == [
        ("clean", "single", ("clean",)),
        ("fgsm@1", "single", ("fgsm@1.0",)), ("pgd@1", "single", ("pgd@1.0",)),
        ("apgd-ce@1", "single", ("apgd-ce@1.0",)), ("square@1", "single", ("square@1.0",)),
        ("fgsm@1", "multi", ("clean", "fgsm@1.0")), ("pgd@1", "multi", ("clean", "pgd@1.0")),
        ("apgd-ce@1", "multi", ("clean", "apgd-ce@1.0")), ("square@1", "multi", ("clean", "square@1.0")),
    ]  # fmt: skip


def test_paper_values_are_seed_003_tables():
    assert study.paper_value("cifar10", "pgd@1", "single", "all") == 0.65
    assert study.paper_value("cifar100", "square@1", "multi", "all") == 0.82
    assert study.paper_value("cifar10", "pgd@1", "single", "top1") == -0.31
    assert study.paper_value("ImageNet16-120", "pgd@1", "multi", "without_top1") == 0.81
    assert math.isnan(study.paper_value("cifar10", "pgd@1", "single", "without_top1"))
    assert math.isnan(study.paper_value("cifar10", "apgd-ce@1", "multi", "without_top1"))


def test_croze_table_averages_spearman_per_group():
    rng = np.random.default_rng(0)
    proxy = pd.Series(rng.permutation(40).astype(float))
    targets = pd.DataFrame({"clean": proxy / 40, "fgsm@8.0": -proxy, "fgsm@4.0": proxy, "pgd@1.0": proxy ** 2})
    signs = {"snow": 1, "frost": -1, "fog": 1, "gaussian_noise": 1, "shot_noise": 1, "impulse_noise": 1,
             "defocus_blur": -1, "glass_blur": -1, "motion_blur": -1, "zoom_blur": -1,
             "contrast": 1, "brightness": -1, "jpeg_compression": -1, "elastic_transform": -1, "pixelate": -1}
    for name, sign in signs.items():
        for severity in SEVERITIES:
            targets[f"{name}@{severity}"] = sign * proxy
    table = study.croze_table(pd.DataFrame({"p": proxy}), targets)
    row = table.loc["p"]
    assert row["clean"] == 1.0 and row["fgsm@8"] == -1.0 and row["fgsm@4"] == 1.0 and row["pgd@1"] == 1.0
    assert row["weather"] == pytest.approx(1 / 3) and row["noise"] == 1.0 and row["blur"] == -1.0
    assert row["digital"] == pytest.approx(-1 / 3)
    # HRS with FGSM 8: 2 (p/40)(-p) / (p/40 - p) = 2p/39 rises with p although FGSM 8 itself falls.
    assert row["hrs fgsm@8"] == pytest.approx(1.0, abs=1e-12) and row["hrs fgsm@4"] == pytest.approx(1.0, abs=1e-12)
    assert set(CROZE_GROUPS) == {"weather", "noise", "blur", "digital"}


def test_croze_table_without_corruptions_has_no_groups():
    proxy = pd.Series(np.arange(10.0))
    targets = pd.DataFrame({"clean": proxy, "fgsm@8.0": proxy, "fgsm@4.0": proxy, "pgd@1.0": proxy})
    assert list(study.croze_table(pd.DataFrame({"p": proxy}), targets).columns) == [
        "clean", "fgsm@8", "fgsm@4", "pgd@1", "hrs fgsm@8", "hrs fgsm@4"]


def test_run_features_maps_isomorphs_to_representatives(tmp_path):
    bench = Benchmark()
    first, second = (int(r) for r in bench.representatives()[[100, 200]])

    def isomorph_of(representative: int) -> int:
        return next(i for i in range(15625) if bench.representative(i) == representative and i != representative)

    archs = [NB201Arch.from_index(i).to_string() for i in (isomorph_of(first), first, isomorph_of(second))]
    (tmp_path / "archs.txt").write_text("\n".join(archs) + "\n")
    run = tmp_path / "run"
    assert main(["score", "--proxies", "params,flops", "--archs", str(tmp_path / "archs.txt"), "--out", str(run)]) == 0
    features = study.run_features("cifar10", [run], bench)
    assert list(features.index) == [first, second]
    assert list(features.columns) == ["params", "flops"]
    with pytest.raises(RobustnasError, match="needs nb201/cifar100 runs"):
        study.run_features("cifar100", [run], bench)
    with pytest.raises(RobustnasError, match="pass --runs"):
        study.run_features("cifar10", [], bench)
    # What a live search source states for the same settings (the default score --batch-size is 64).
    expected = {"scoring": {"space": "nb201", "dataset": "cifar10", "data": None, "batch_size": 64}, "seed": 0}
    assert study.proxy_settings([run, run]) == [expected]


def test_undefined_values_become_the_suite_sentinel(tmp_path):
    dead = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"  # the output ignores the input
    alive = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|none~2|"
    (tmp_path / "archs.txt").write_text(f"{dead}\n{alive}\n")
    run = tmp_path / "run"
    assert main(["score", "--proxies", "jacov,params", "--archs", str(tmp_path / "archs.txt"),
                 "--batch-size", "8", "--out", str(run)]) == 0
    features = study.run_features("cifar10", [run], Benchmark())
    dead_index = Benchmark().representative(dead)
    assert features.loc[dead_index, "jacov"] == -1e8 and features.loc[dead_index, "params"] > 0
    assert -1e8 < features.drop(index=dead_index)["jacov"].iloc[0] < 0


def test_complete_drops_sparse_proxies_then_incomplete_rows():
    frame = pd.DataFrame({"a": [1.0, 2.0, np.nan, 4.0], "b": [np.nan, np.nan, np.nan, 1.0], "c": [-1e8, 1, 2, 3]})
    kept, notes = study.complete(frame)
    assert list(kept.columns) == ["a", "c"] and list(kept.index) == [0, 1, 3]
    assert notes == ["left out (computed for too few architectures): b (25%)",
                     "1 architectures left out: not every proxy was computed for them",
                     "1 undefined proxy values (e.g. networks whose output ignores the input) entered as -1e8, "
                     "as in NAS-Bench-Suite-Zero"]


def test_suite_features_refuses_cifar100():
    with pytest.raises(RobustnasError, match="no cifar100 values.*--features ours"):
        study.suite_features("cifar100", Benchmark())


def test_cost_caveat_names_what_differs_from_the_speed_benchmark():
    assert study._cost_caveat("cifar10", ["jacob_fro"]) == ""
    caveat = study._cost_caveat("cifar100", ["synflow", "jacob_fro"])
    assert caveat == ", measured on CIFAR-10 (32 px, 10 classes): here jacob_fro backpropagates 64 vectors instead of 10"
    assert "16 px" in study._cost_caveat("ImageNet16-120", ["suite_jacob_fro"])
    assert "64 vectors" in study._cost_caveat("ImageNet16-120", ["suite_jacob_fro"])
    assert study._cost_caveat("ImageNet16-120", ["synflow"]).endswith("here the images are 16 px")
    assert study._cost_caveat("cifar100", ["synflow"]) == ""


def test_robust_verdict_counts_attacks_beaten_without_clean():
    differences = pd.Series({"clean": 0.5, "fgsm@1": -0.0126, "pgd@1": 0.25, "square@1": float("nan")})
    assert study.robust_verdict(differences, "X") == (
        "**Verdict:** X beat the paper's robust single-target R² on 1 of 2 attacks (fgsm@1 -0.013, pgd@1 +0.250).")


def test_scoring_commands_rebuild_the_score_command(tmp_path):
    sample = select_archs("nb201", "sample:3", 7)
    (tmp_path / "archs.txt").write_text("\n".join(sample[1:]) + "\n")
    runs = [tmp_path / "sample", tmp_path / "file"]
    assert main(["score", "--proxies", "params", "--archs", "sample:3", "--seed", "7", "--out", str(runs[0])]) == 0
    assert main(["score", "--proxies", "params,flops", "--archs", str(tmp_path / "archs.txt"), "--seed", "7",
                 "--batch-size", "8", "--out", str(runs[1])]) == 0
    assert study.scoring_commands(runs) == [
        f"`{runs[0]}` (3 architectures): `robustnas score --space nb201 --dataset cifar10 --proxies params "
        f"--archs sample:3 --batch-size 64 --seed 7 --out {runs[0]}`",
        f"`{runs[1]}` (2 architectures): `robustnas score --space nb201 --dataset cifar10 --proxies params,flops "
        f"--archs FILE --batch-size 8 --seed 7 --out {runs[1]}`",
    ]


def synthetic(n: int = 300) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features a..d; clean = 3a, pgd = b, the other attacks = c, each plus small noise."""
    rng = np.random.default_rng(0)
    features = pd.DataFrame(rng.normal(size=(n, 4)), columns=list("abcd"))
    noise = lambda: 0.1 * rng.normal(size=n)  # noqa: E731
    targets = pd.DataFrame({"clean": 3 * features["a"] + noise(), "pgd@1.0": features["b"] + noise()})
    for attack in ("fgsm", "apgd-ce", "square"):
        targets[f"{attack}@1.0"] = features["c"] + noise()
    return features, targets


def test_fit_tasks_finds_the_informative_feature_and_drops_it_for_table_3():
    features, targets = synthetic()
    r2, importances, fig5 = study.fit_tasks(features, targets, "cifar10", ("rf",))
    rf = r2.set_index(["target", "objective", "features"])
    tops = {(t, o): rf.loc[(t, o, "all"), "top_feature"] for t, o, _ in rf.index}
    assert tops == {("clean", "single"): "a", ("pgd@1", "single"): "b", ("fgsm@1", "single"): "c",
                    ("apgd-ce@1", "single"): "c", ("square@1", "single"): "c",
                    **{(t, "multi"): "a" for t in ("fgsm@1", "pgd@1", "apgd-ce@1", "square@1")}}  # clean's variance 9
    assert rf.loc[("pgd@1", "single", "top1"), "r2"] > rf.loc[("pgd@1", "single", "all"), "r2"] - 0.02 > 0.95
    # clean + pgd without a: clean unpredictable, pgd still is -> about (0 + 1) / 2.
    assert 0.3 < rf.loc[("pgd@1", "multi", "without_top1"), "r2"] < 0.55
    assert list(importances) == ["fgsm@1", "pgd@1", "apgd-ce@1", "square@1"]
    assert importances["pgd@1"]["pgd@1"].idxmax() == "b" and importances["pgd@1"]["clean"].idxmax() == "a"
    assert list(fig5.columns) == [f"clean + {t} without a" for t in ("fgsm@1", "pgd@1", "apgd-ce@1", "square@1")]
    assert (fig5.loc["a"] == 0).all() and fig5["clean + pgd@1 without a"].idxmax() == "b"
    x_train, _, y_train, _ = study.split(features[list("bcd")], targets[["clean", "pgd@1.0"]])
    expected = study.Predictor("rf").fit(x_train, y_train).feature_importances_  # training split only
    assert fig5["clean + pgd@1 without a"].drop("a").tolist() == expected.tolist()


def test_fit_tasks_with_one_feature_has_no_table_3():
    features, targets = synthetic(150)
    r2, _, fig5 = study.fit_tasks(features[["a"]], targets, "cifar10", ("rf",))
    assert "without_top1" not in set(r2["features"]) and fig5.empty


def test_cheapest_subset_chooses_without_the_test_split():
    """Scrambling the test rows' features changes the test R² but not what is chosen."""
    features, targets = synthetic()
    steps = study.cheapest_subset(features, targets)
    assert steps["feature"].tolist() == ["b"] and steps["test r2"].iloc[0] > 0.95
    _, x_test, _, _ = study.split(features, targets["pgd@1.0"])
    scrambled = features.copy()
    scrambled.loc[x_test.index] = np.random.default_rng(1).normal(size=(len(x_test), 4))
    again = study.cheapest_subset(scrambled, targets)
    assert again["feature"].tolist() == ["b"]
    assert again["validation r2"].tolist() == steps["validation r2"].tolist()
    assert again["test r2"].iloc[0] < 0.2 and again.attrs["full_test"] < 0.2


def test_learning_curves_end_at_the_table_1_fit():
    features, targets = synthetic()
    curves = study.learning_curves(features, targets)
    r2, _, _ = study.fit_tasks(features, targets, "cifar10", ("rf",))
    table1 = r2[r2["features"] == "all"].set_index(["target", "objective"])["r2"]
    last = curves.groupby("series").last()
    assert last.loc["clean", "score"] == table1[("clean", "single")]
    assert last.loc["clean + pgd@1", "score"] == table1[("pgd@1", "multi")]
    assert (last["sd"] == 0).all() and (curves[curves["n"] < 240]["sd"] > 0).all()
    assert curves["n"].unique().tolist() == [50, 100, 200, 240]


def test_short_names_and_undefined_values():
    assert [study.short_name(c) for c in ("pgd@1.0", "fgsm@0.5", "fog@3", "clean", "nats_test")] == [
        "pgd@1", "fgsm@0.5", "fog@3", "clean", "nats_test"]
    frame = pd.DataFrame({"x": [1.0, study.UNDEFINED, 3.0]})
    assert study.without_undefined(frame)["x"].isna().tolist() == [False, True, False]


def test_run_study_end_to_end(tmp_path):
    out = tmp_path / "report"
    markdown = study.run_study("cifar10", "suite", [], out, "robustnas study --out x", bench=SmallBench())
    assert markdown == out / "report.md"
    for name in ("report.html", "kendall-heatmap.png", "spearman-heatmap.png", "importance-pgd-1.png",
                 "importance-without-top1.png",
                 "learning-curves.png", "r2-vs-paper.png", "r2-graph.png", "croze-table.csv", "proxy-subset.csv",
                 "predictor.npz", "predictor-graph.npz"):
        assert (out / name).stat().st_size > 0, name
    r2 = pd.read_csv(out / "r2.csv")
    assert list(r2.columns) == ["dataset", "target", "objective", "features", "model", "r2", "top_feature"]
    assert len(r2) == 9 * 2 + 9 + 4 + 9 * 2  # rf all/top1 x 9, gb all x 9, rf without_top1 x 4 multi, rf graph/all+graph x 9
    assert set(r2["features"]) == {"all", "top1", "without_top1", "graph", "all+graph"} and set(r2["model"]) == {"rf", "gb"}
    correlations = pd.read_csv(out / "correlations.csv")
    assert list(correlations.columns) == ["dataset", "proxy", "target", "kendall", "spearman"]
    assert len(correlations) == 13 * (1 + 11 + 7 + 7 + 7)  # clean + every attack at every epsilon
    assert {"clean", "pgd@1", "fgsm@8", "square@0.5"} <= set(correlations["target"])  # r2.csv's names
    assert not correlations["target"].str.endswith(".0").any()
    predictor = Predictor.load(out / "predictor.npz")
    assert predictor.targets == ["clean", "fgsm@1.0", "pgd@1.0", "apgd-ce@1.0", "square@1.0"]
    assert predictor.fitted_on == {"space": "nb201", "dataset": "cifar10", "features": "suite",
                                   "study": "robustnas study --out x", "proxy_settings": []}
    assert Predictor.load(out / "predictor-graph.npz").fitted_on == predictor.fitted_on
    features = SmallBench().suite_zero("cifar10").drop(columns="val_accuracy")
    assert predictor.predict(features).shape == (SMALL, 5)
    page = (out / "report.html").read_text()
    assert '<img src="kendall-heatmap.png"' in page and "Reproduce: <code>robustnas study --out x</code>" in page


def test_run_study_needs_enough_archs(tmp_path, monkeypatch):
    monkeypatch.setattr(study, "MIN_ARCHS", SMALL + 1)
    with pytest.raises(RobustnasError, match=f"only {SMALL} architectures.*>= {SMALL + 1}"):
        study.run_study("cifar10", "suite", [], tmp_path, "x", bench=SmallBench())


def test_cli_study_errors_are_one_line(tmp_path, capsys):
    assert main(["study", "--features", "ours", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip() == (
        "robustnas: error: --features ours/both needs scoring runs: pass --runs RUN_DIR (made by robustnas score)")


def test_document_renders_markdown_and_html(tmp_path):
    doc = Document("T")
    doc.heading("H")
    doc.text("a `b` **c** <d>")
    doc.table(pd.DataFrame({"x": ["p"], "v": [0.5], "w": [math.nan]}))
    doc.figure("f.png", "cap")
    assert doc.markdown() == "# T\n\n## H\n\na `b` **c** <d>\n\n| x | v | w |\n|---|---|---|\n| p | 0.500 | – |\n\n![cap](f.png)\n\n*cap*\n"
    page = doc.html()
    assert "<p>a <code>b</code> <strong>c</strong> &lt;d&gt;</p>" in page
    assert "<tr><td>p</td><td>0.500</td><td>–</td></tr>" in page and '<img src="f.png" alt="cap">' in page
    assert [p.name for p in doc.write(tmp_path)] == ["report.md", "report.html"]


def test_both_sources_report_the_gain_of_our_proxies(tmp_path, monkeypatch):
    bench = SmallBench()
    suite = study.suite_features("cifar10", bench)
    both = suite[["jacov", "snip"]].join(suite.add_prefix(study.SUITE_PREFIX))
    monkeypatch.setattr(study, "load_features", lambda dataset, source, runs, bench: both)
    study.run_study("cifar10", "both", [], tmp_path, "x", bench=bench)
    text = (tmp_path / "report.md").read_text()
    assert ("| target | paper (rf) | ours rf | ours gb | best - paper | ours rf, 5 other splits | "
            "suite only rf (same archs) | gain from ours |") in text


def test_graph_frame_rows_are_the_cells_graph_features():
    from robustnas.spaces.nb201 import GRAPH_FEATURES, graph_features

    index = pd.Index([0, 13433, 15624], name="nb201_index")
    frame = study.graph_frame(index)
    assert list(frame.columns) == list(GRAPH_FEATURES) and frame.index.equals(index)
    assert frame.loc[13433].to_dict() == graph_features(NB201Arch.from_index(13433))
    # index 0: e12 pool, e13 conv1x1, e14 conv1x1, e23/e24/e34 skip -> 1-2-4 and 1-2-3-4 are conv-free
    assert frame.loc[0, ["alive_paths", "conv_free_paths", "max_conv3x3_on_path"]].tolist() == [4.0, 2.0, 0.0]

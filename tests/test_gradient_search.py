"""The differentiable search (--strategy mgda): the hypergradient against exact autograd, the
combination of objectives, settings and errors, the command line's dry run, and resume."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from robustnas.search._hypergradient import first_order, second_order, weight_names
from robustnas.spaces._supernet import NB201Supernet

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_problem(seed: int = 0):
    """A float64 NB201 supernet (C=4, 1 cell per stage), SGD with a momentum buffer, two batches."""
    torch.manual_seed(seed)
    supernet = NB201Supernet(10, channels=4, cells_per_stage=1).double()
    with torch.no_grad():
        for alpha in supernet.arch_parameters():
            alpha.normal_(0, 0.5)  # away from uniform, so every term of the hypergradient matters
    optimizer = torch.optim.SGD(supernet.weight_parameters(), 0.05, momentum=0.9, weight_decay=3e-4)
    x_train, x_val = torch.rand(8, 3, 8, 8, dtype=torch.float64), torch.rand(8, 3, 8, 8, dtype=torch.float64)
    y_train, y_val = torch.randint(0, 10, (8,)), torch.randint(0, 10, (8,))
    F.cross_entropy(supernet(x_train), y_train).backward()
    optimizer.step()  # a momentum buffer exists, as after the first search step
    optimizer.zero_grad()
    inner = lambda forward: F.cross_entropy(forward(x_train), y_train)  # noqa: E731
    objectives = [
        lambda forward: F.cross_entropy(forward(x_val), y_val),
        lambda forward: 0.1 * F.cross_entropy(forward(x_val.flip(-1)), y_val),
    ]
    return supernet, optimizer, inner, objectives


def exact_unrolled_gradient(supernet, optimizer, inner, objective, lr):
    """d/dα L_val(w'(α), α) with w'(α) = w - lr (μ m + ∇_w L_train(w, α) + λ w), by double backward,
    with the second derivative of w' in α dropped as DARTS does (w' treated through ∇_w L_train only)."""
    names = weight_names(supernet)
    params = dict(supernet.named_parameters())
    weights = [params[n] for n in names]
    alphas = supernet.arch_parameters()
    grads = torch.autograd.grad(inner(supernet), weights, create_graph=True)
    group = optimizer.param_groups[0]
    unrolled = {
        n: w - lr * (group["momentum"] * optimizer.state[w]["momentum_buffer"] + g + group["weight_decay"] * w)
        for n, w, g in zip(names, weights, grads)
    }
    loss = objective(lambda x: functional_call(supernet, unrolled, (x,)))
    return torch.autograd.grad(loss, alphas)


def test_second_order_hypergradient_equals_exact_autograd(monkeypatch):
    # DARTS' r = 0.01 / ||v|| moves the weights across ReLU kinks of a net this small (relative
    # error ~1 here); a smaller step checks the computation itself: float64, r = 1e-6 / ||v||
    monkeypatch.setattr("robustnas.search._hypergradient.FINITE_DIFFERENCE_SCALE", 1e-6)
    supernet, optimizer, inner, objectives = tiny_problem()
    lr = 0.05
    gradients, losses = second_order(supernet, inner, objectives, optimizer, lr)
    assert len(gradients) == 2 and all(loss > 0 for loss in losses)
    first, _ = first_order(supernet, objectives)
    for approximate, at_w, objective in zip(gradients, first, objectives):
        (exact,) = exact_unrolled_gradient(supernet, optimizer, inner, objective, lr)
        error = float((approximate[0] - exact).norm() / exact.norm())
        assert error < 1e-7, error  # the finite-difference Hessian-vector product of DARTS
        assert float((at_w[0] - exact).norm() / exact.norm()) > 1e-3  # the unrolling matters here


def test_first_order_is_the_gradient_at_the_current_weights():
    supernet, _, _, objectives = tiny_problem()
    gradients, losses = first_order(supernet, objectives)
    for objective, gradient, loss in zip(objectives, gradients, losses):
        value = objective(supernet)
        (expected,) = torch.autograd.grad(value, supernet.arch_parameters())
        assert torch.equal(gradient[0], expected) and loss == float(value.detach())


# ---- combining, settings, the command line -----------------------------------------------------
import json  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from robustnas import spaces  # noqa: E402
from robustnas.cli import main  # noqa: E402
from robustnas.errors import RobustnasError  # noqa: E402
from robustnas.search import SearchSettings, plan, run  # noqa: E402
from robustnas.search._gradient import MGDASearch  # noqa: E402
from robustnas.search._gradient_step import combine  # noqa: E402

TINY = {"channels": 4, "layers": 1, "per_class": 3, "pgd_steps": 1}


def settings_of(**options) -> object:
    return MGDASearch(spaces.get("nb201"), 0, **options).settings


def test_combining_two_gradients_by_mgda_and_by_sum():
    a = [torch.tensor([[1.0, 0.0]]), torch.tensor([0.0])]
    b = [torch.tensor([[0.0, 2.0]]), torch.tensor([0.0])]
    weights, direction = combine(settings_of(), [a, b])
    # min ||γ a + (1-γ) b||: γ = 4/5, d = (0.8, 0.4), orthogonal to a - b
    assert weights == pytest.approx([0.8, 0.2]) and torch.allclose(direction[0], torch.tensor([[0.8, 0.4]]))
    assert float((direction[0] * (a[0] - b[0])).sum()) == pytest.approx(0.0, abs=1e-7)
    weights, direction = combine(settings_of(combine="sum"), [a, b])
    assert weights == [1.0, 1.0] and torch.equal(direction[0], torch.tensor([[1.0, 2.0]]))
    weights, direction = combine(settings_of(objectives="natural"), [a])
    assert weights == [1.0] and torch.equal(direction[0], a[0])


def test_settings_resolve_the_space_sizes_and_the_schedules():
    nb201 = settings_of()
    assert nb201.sizes == {"channels": 16, "cells_per_stage": 5} and nb201.order == 2 and nb201.batch_size == 32
    assert settings_of(channels=8, layers=1).sizes == {"channels": 8, "cells_per_stage": 1}
    arnas = MGDASearch(spaces.get("arnas"), 0).settings
    assert arnas.sizes == {"C": 24, "layers": 8} and arnas.objectives == ("natural", "adversarial")
    # cosine 0.025 -> 0.001 over 50 epochs (DARTS CosineAnnealingLR per epoch)
    assert nb201.lr_at(0) == 0.025 and nb201.lr_at(25) == pytest.approx(0.013) and nb201.lr_at(50) == pytest.approx(0.001)
    dsara = settings_of(adversarial_epochs=20)
    assert dsara.active_objectives(19) == ("adversarial",) and dsara.active_objectives(20) == ("natural", "adversarial")


@pytest.mark.parametrize("options, problem", [
    ({"objectives": "natural,natural"}, "distinct names"),
    ({"objectives": "natural,clean"}, "'clean' is no objective; choose from natural, adversarial, corruption"),
    ({"combine": "product"}, "combine must be one of mgda, sum"),
    ({"order": 3}, "order must be one of 1, 2"),
    ({"inner": "pgd"}, "inner must be one of adversarial, clean, trades"),
    ({"epochs": 0}, "epochs must be >= 1"),
    ({"adv_weight": 0.0}, "adv_weight must be a positive number"),
    ({"objectives": "natural", "adversarial_epochs": 2}, "needs the adversarial objective"),
    ({"epochs": 3, "adversarial_epochs": 3}, "must be below epochs"),
])
def test_bad_settings_are_one_line_errors(options, problem):
    with pytest.raises(RobustnasError, match=problem) as error:
        MGDASearch(spaces.get("nb201"), 0, **options)
    assert "\n" not in str(error.value)


def test_a_space_without_supernet_and_proxy_options_are_refused(capsys):
    assert main(["search", "--space", "croze-darts", "--strategy", "mgda", "--dry-run", "--out", "x"]) == 2
    assert "croze-darts space has no supernet" in capsys.readouterr().err
    for extra in (["--objective", "croze"], ["--budget", "5"], ["--proxy-seed", "1"]):
        assert main(["search", "--strategy", "mgda", "--dry-run", "--out", "x", *extra]) == 2
        err = capsys.readouterr().err
        assert f"{extra[0]} does not apply to --strategy mgda" in err and err.count("\n") == 1


def test_dry_run_prints_the_official_arnas_supernet_size_and_trains_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["search", "--space", "arnas", "--dataset", "cifar10", "--strategy", "mgda", "--strategy-option",
            "channels=24", "--strategy-option", "layers=8", "--dry-run", "--json", "--out", str(out)]
    assert main(argv) == 0
    planned = json.loads(capsys.readouterr().out)
    assert planned["supernet_weights"] == 1_882_930 and planned["supernet_alphas"] == 294  # issue 18, §B.1
    resolved = planned["settings"]["resolved"]
    assert resolved["sizes"] == {"C": 24, "layers": 8} and resolved["alpha_betas"] == [0.5, 0.999]
    assert planned["steps_per_epoch"] == 1000 // 32 and planned["steps"] == 50 * (1000 // 32)  # embedded 2,000 images
    assert not out.exists()


def test_an_ask_tell_dry_run_resolves_the_strategy_options(capsys):
    assert main(["search", "--strategy", "evolution", "--strategy-option", "sample=5", "--dry-run", "--json",
                 "--out", "x"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert planned["settings"]["resolved"] == {"population": 50, "sample": 5} and planned["budget"] == 100


def test_a_tiny_nb201_search_writes_its_logs_and_finds_a_benchmarked_cell(tmp_path):
    options = {**TINY, "epochs": 2, "objectives": "natural,adversarial,corruption", "adversarial_epochs": 1}
    settings = SearchSettings("nb201", "cifar10", "mgda", seed=1, batch_size=4, options=options)
    result = run(settings, tmp_path, progress=False)
    steps = pd.read_csv(tmp_path / "steps.csv")
    assert list(steps["epoch"]) == [0, 0, 0, 1, 1, 1] and list(steps["step"]) == [0, 1, 2] * 2
    first, second = steps[steps["epoch"] == 0], steps[steps["epoch"] == 1]
    assert (first["weight_adversarial"] == 1.0).all() and first["weight_natural"].isna().all()  # DSARA's first stage
    weights = second[["weight_natural", "weight_adversarial", "weight_corruption"]].to_numpy()
    assert np.allclose(weights.sum(axis=1), 1.0) and (weights >= 0).all()  # MGDA: a point of the simplex
    alphas = pd.read_csv(tmp_path / "alphas.csv")
    assert len(alphas) == 2 * 6 * 5 and set(alphas["op"]) == {"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3",
                                                             "avg_pool_3x3"}
    last = alphas[alphas["epoch"] == 1].pivot(index="edge", columns="op", values="alpha")
    found = spaces.get("nb201").parse(result["best_arch"])
    from robustnas.spaces.nb201 import OPS

    assert [OPS[i] for i in found.ops] == [last.loc[e].idxmax() for e in range(6)]  # argmax per edge
    assert json.loads((tmp_path / "best_genotype.json").read_text()) == result["best_arch"]
    assert spaces.get("nb201").parse(str(tmp_path / "best_genotype.json")) == found  # what train and arch show read
    assert list(alphas.drop_duplicates("edge")["link"]) == ["1->2", "1->3", "1->4", "2->3", "2->4", "3->4"]
    assert result["benchmark"]["nb201_index"] == spaces.get("nb201").benchmark_index(found)
    assert (tmp_path / "alphas_cell.png").stat().st_size > 1000 and result["epochs"] == 2


def test_a_finished_search_resumes_to_its_result_and_other_settings_are_refused(tmp_path):
    settings = SearchSettings("nb201", "cifar10", "mgda", seed=0, batch_size=4,
                              options={**TINY, "epochs": 1, "order": 1, "inner": "clean", "objectives": "natural"})
    first = run(settings, tmp_path, progress=False)
    steps = (tmp_path / "steps.csv").read_bytes()
    (tmp_path / "steps.csv").unlink()  # as if killed between the last checkpoint and the files after it
    again = run(settings, tmp_path, progress=False)
    assert again["best_arch"] == first["best_arch"] and (tmp_path / "steps.csv").read_bytes() == steps
    other = SearchSettings("nb201", "cifar10", "mgda", seed=1, batch_size=4, options=settings.options)
    with pytest.raises(RobustnasError, match="holds a search with other settings"):
        run(other, tmp_path, progress=False)
    (tmp_path / "search.json").unlink()  # the checkpoint still knows its settings
    with pytest.raises(RobustnasError, match="checkpoint.pt belongs to a search with other settings"):
        run(other, tmp_path, progress=False)


def test_a_search_killed_by_sigkill_resumes_bit_for_bit(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    def command(out):
        argv = ["search", "--strategy", "mgda", "--batch-size", "4", "--seed", "2", "--out", str(out)]
        for key, value in {**TINY, "epochs": 3, "per_class": 5}.items():
            argv += ["--strategy-option", f"{key}={value}"]
        return [sys.executable, "-m", "robustnas.cli", *argv]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(command(whole), env=env, check=True, capture_output=True, timeout=600)
    process = subprocess.Popen(command(killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (killed / "checkpoint.pt").exists():  # the first epoch is done
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL and not (killed / "result.json").exists()
    subprocess.run(command(killed), env=env, check=True, capture_output=True, timeout=600)
    for name in ("steps.csv", "alphas.csv", "best_genotype.json"):
        assert (killed / name).read_bytes() == (whole / name).read_bytes(), name
    assert json.loads((killed / "result.json").read_text())["best_arch"] == json.loads(
        (whole / "result.json").read_text())["best_arch"]


def test_an_arnas_search_writes_a_genotype_that_train_reads(tmp_path, capsys):
    options = {"channels": 4, "layers": 5, "per_class": 2, "pgd_steps": 1, "epochs": 1, "order": 1}
    settings = SearchSettings("arnas", "cifar10", "mgda", seed=0, batch_size=4, options=options)
    result = run(settings, tmp_path, progress=False)
    assert result["supernet_alphas"] == 3 * 14 * 7 and "benchmark" not in result
    genotype = spaces.get("arnas").parse((tmp_path / "best_genotype.json").read_text())
    assert spaces.get("arnas").key(genotype) == result["best_arch"]
    assert {p.name for p in tmp_path.glob("alphas_*.png")} == {"alphas_accurate.png", "alphas_reduce.png",
                                                                "alphas_robust.png"}
    from robustnas.train._model_spec import ModelSpec

    spec = ModelSpec.from_arch(str(tmp_path / "best_genotype.json"), "arnas", "cifar10", 10)  # what train builds
    assert spaces.get("arnas").key(spaces.get("arnas").parse(spec.arch)) == result["best_arch"]


def test_trades_inner_loss_fixed_sum_and_the_adversarial_weight(tmp_path):
    def first_step(adv_weight: float) -> pd.Series:
        options = {**TINY, "epochs": 1, "order": 1, "inner": "trades", "combine": "sum", "adv_weight": adv_weight}
        settings = SearchSettings("nb201", "cifar10", "mgda", seed=0, batch_size=4, options=options)
        run(settings, tmp_path / str(adv_weight), progress=False)
        steps = pd.read_csv(tmp_path / str(adv_weight) / "steps.csv")
        assert (steps[["weight_natural", "weight_adversarial"]] == 1.0).all().all()  # a plain sum
        return steps.iloc[0]

    low, high = first_step(0.1), first_step(0.5)
    # same state and examples at the first step: the logged adversarial loss scales with adv_weight
    assert high["loss_adversarial"] == pytest.approx(5 * low["loss_adversarial"], rel=1e-6)
    assert high["loss_natural"] == low["loss_natural"] and high["loss_inner"] == low["loss_inner"]
    assert low["loss_inner"] > 0


def test_a_darts_search_and_too_few_cells(tmp_path, capsys):
    options = {"channels": 4, "layers": 3, "per_class": 2, "pgd_steps": 1, "epochs": 1, "order": 1}
    result = run(SearchSettings("darts", "cifar10", "mgda", batch_size=4, options=options), tmp_path, progress=False)
    genotype = spaces.get("darts").parse((tmp_path / "best_genotype.json").read_text())
    assert all(op != "none" for op, _ in genotype.normal + genotype.reduce)  # the DARTS rule never keeps none
    assert result["supernet_alphas"] == 2 * 14 * 8
    argv = ["search", "--space", "arnas", "--strategy", "mgda", "--strategy-option", "layers=3", "--dry-run",
            "--out", str(tmp_path / "x")]
    assert main(argv) == 2
    assert "3 cells are too few for the arnas supernet: it would have no robust cell; give layers >= 4" in capsys.readouterr().err
    assert main(["search", "--strategy", "mgda", "--batch-size", "1", "--dry-run", "--out", "x"]) == 2
    assert "--batch-size must be >= 2" in capsys.readouterr().err


def test_the_plain_dry_run_names_each_figure(capsys):
    assert main(["search", "--strategy", "mgda", "--strategy-option", "per_class=10", "--dry-run", "--out", "x"]) == 0
    lines = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["supernet_weights"] == "1686106" and lines["supernet_alphas"] == "30"  # NB201 C=16, 5 cells/stage
    assert lines["images_weights"] == "50" and lines["steps_per_epoch"] == "1" and lines["steps"] == "50"
    assert lines["passes_per_step"] == "22.0"  # 2 x PGD-7, 1 + 2 x 3 second-order passes, the weight step
    assert json.loads(lines["settings"])["resolved"]["per_class"] == 10
    assert main(["search", "--strategy", "mgda", "--strategy-option", "per_class=1", "--dry-run", "--out", "x"]) == 2
    assert "fewer than one batch" in capsys.readouterr().err  # as the run itself would say


def test_a_dry_run_checks_what_the_run_checks(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    other = tmp_path / "other"
    assert main(["search", "--strategy", "random", "--objective", "bench:clean", "--budget", "2", "--out", str(other)]) == 0
    capsys.readouterr()
    for extra, message in ((["--out", str(other)], "holds a search with other settings"),
                           (["--out", str(tmp_path / "file")], "is a file; give a folder"),
                           (["--scores", str(other), "--out", "x"], "--scores and --storage do not apply"),
                           (["--storage", "sqlite:///x.db", "--out", "x"], "--scores and --storage do not apply")):
        assert main(["search", "--strategy", "mgda", "--dry-run", *extra]) == 2
        assert message in capsys.readouterr().err


def test_a_long_search_says_its_cost_before_it_starts(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("robustnas.scoring.LONG_RUN_S", 0.0)  # every run counts as long
    monkeypatch.setattr("robustnas.scoring.MEASURE_FROM_PASSES", 0.0)
    settings = SearchSettings("nb201", "cifar10", "mgda", batch_size=4, options={**TINY, "epochs": 1, "order": 1})
    run(settings, tmp_path, progress=False)
    err = capsys.readouterr().err
    # 3 steps x (2 PGD-1 passes + 2 first-order objective passes + the weight step) = 15 passes
    assert "robustnas: search: 3 steps will take about" in err and "a step is about 5 of them" in err
    steps = (tmp_path / "steps.csv").read_bytes()
    run(SearchSettings("nb201", "cifar10", "mgda", batch_size=4, options={**TINY, "epochs": 1, "order": 1}),
        tmp_path / "again", progress=False)
    assert (tmp_path / "again" / "steps.csv").read_bytes() == steps  # the timing left the search untouched


def test_resume_across_the_dsara_switch_with_corruptions_and_trades(tmp_path):
    from robustnas.search._gradient_run import run_gradient

    options = {**TINY, "epochs": 2, "objectives": "natural,adversarial,corruption", "inner": "trades",
               "adversarial_epochs": 1}
    settings = SearchSettings("nb201", "cifar10", "mgda", seed=4, batch_size=4, options=options)

    def stop(row):
        if row["epoch"] == 1 and row["step"] == 1:
            raise KeyboardInterrupt

    run_gradient(settings, tmp_path / "whole", progress=False)
    with pytest.raises(KeyboardInterrupt):
        run_gradient(settings, tmp_path / "killed", progress=False, after_step=stop)
    run_gradient(settings, tmp_path / "killed", progress=False)
    for name in ("steps.csv", "alphas.csv", "best_genotype.json"):
        assert (tmp_path / "killed" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name

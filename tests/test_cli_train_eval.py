"""``robustnas train`` and ``robustnas evaluate`` end to end on a tiny NB201 network.

The network is the NB201 cell with skip connections on every edge (stem, two residual
reductions and the classifier carry all the weights), trained for one epoch on 96 images of a
small npz cut from the embedded CIFAR-10 sample, so the whole module runs in seconds on a CPU.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from robustnas.cli import main
from robustnas.data import load_dataset
from robustnas.train import HOLDOUT_SEED, TrainConfig, default_milestones, run_training, training_split

ARCH = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
OTHER = "|nor_conv_1x1~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
SUITE = "clean,fgsm,pgd20,corruptions"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def train_argv(data: Path, out: Path, arch: str = ARCH, adversarial: str = "pgd") -> list[str]:
    return ["train", "--arch", arch, "--space", "nb201", "--dataset", "cifar10", "--data", str(data),
            "--adversarial", adversarial, "--epochs", "1", "--batch-size", "32", "--lr", "0.05", "--cutout", "8",
            "--seed", "3", "--holdout", "32", "--limit", "96", "--device", "cpu", "--out", str(out)]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    """400 training and 64 test images of the embedded sample as a CIFAR-10 npz file."""
    train, test = load_dataset(split="train"), load_dataset(split="test")
    path = tmp_path_factory.mktemp("data") / "cifar10-mini.npz"
    np.savez(path, x_train=train.images[:400], y_train=train.labels[:400], x_test=test.images[:64],
             y_test=test.labels[:64])
    return path


@pytest.fixture(scope="module")
def trained(npz, tmp_path_factory) -> Path:
    """A finished run directory."""
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(train_argv(npz, out)) == 0
    return out


@pytest.fixture(scope="module")
def evaluated(trained, tmp_path_factory) -> tuple[Path, dict]:
    run_dir = trained
    out = tmp_path_factory.mktemp("eval")
    assert main(["evaluate", "--checkpoint", str(run_dir), "--suite", SUITE, "--n", "32", "--batch-size", "16",
                 "--seed", "0", "--device", "cpu", "--out", str(out)]) == 0
    return out, json.loads((out / "evaluation.json").read_text())


def rebuilt(run_dir: Path) -> torch.nn.Module:
    """The trained network rebuilt from model.json and final.pt without robustnas.evaluation."""
    from robustnas.train._model_spec import ModelSpec

    spec = ModelSpec.from_json(json.loads((run_dir / "model.json").read_text()), run_dir / "model.json")
    model = spec.build()
    model.load_state_dict(torch.load(run_dir / "final.pt", weights_only=True))
    return model.eval()


def first_test_images(path: Path, n: int, dataset: str = "cifar10") -> tuple[torch.Tensor, torch.Tensor]:
    test = load_dataset(path, dataset, split="test")
    x = torch.from_numpy(test.images[:n].transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255))
    return x, torch.from_numpy(test.labels[:n].copy())


# ---- train ---------------------------------------------------------------------------------------
def test_train_writes_the_run_with_every_option(trained, npz):
    run_dir = trained
    assert json.loads((run_dir / "model.json").read_text()) == {
        "format": "robustnas-model", "version": 1, "network": "nb201", "arch": ARCH, "dataset": "cifar10",
        "num_classes": 10, "options": {"channels": 16, "cells_per_stage": 5},
        "data": {"path": str(npz.resolve()), "holdout": 32, "limit": 96},
    }
    config = torch.load(run_dir / "checkpoint.pt", weights_only=True)["config"]
    keys = ("epochs", "batch_size", "lr", "cutout", "seed", "adversarial", "milestones", "amp")
    assert {k: config[k] for k in keys} == {
        "epochs": 1, "batch_size": 32, "lr": 0.05, "cutout": 8, "seed": 3, "adversarial": "pgd", "milestones": [],
        "amp": False,
    }
    rows = (run_dir / "log.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("1,0.05,")
    assert (run_dir / "curves.png").stat().st_size > 0


def test_training_split_is_the_documented_permutation(npz):
    train, held_out = training_split(str(npz), "cifar10", 32, 96, 32)
    order = np.random.default_rng(HOLDOUT_SEED).permutation(400)
    assert held_out.index.tolist() == sorted(order[:32].tolist())
    assert train.index.tolist() == sorted(order[32:128].tolist())
    everything, _ = training_split(str(npz), "cifar10", 32, None, 32)
    assert len(everything) == 368 and not set(everything.index) & set(held_out.index)


def test_default_milestones_are_half_and_three_quarters():
    assert default_milestones(200) == (100, 150)
    assert (default_milestones(4), default_milestones(2), default_milestones(1)) == ((2, 3), (1,), ())


def test_the_python_api_trains_what_the_command_trains(trained, npz, tmp_path):
    config = TrainConfig(epochs=1, batch_size=32, lr=0.05, milestones=default_milestones(1), cutout=8,
                         adversarial="pgd", seed=3)
    run = run_training(ARCH, config, tmp_path / "run", space="nb201", data=npz, holdout=32, limit=96)
    assert (run.trained, run.held_out, run.result.run_dir) == (96, 32, tmp_path / "run")
    assert (tmp_path / "run" / "model.json").read_text() == (trained / "model.json").read_text()
    before = torch.load(trained / "final.pt", weights_only=True)
    after = torch.load(run.result.final, weights_only=True)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_rerun_of_a_finished_run_is_a_no_op(trained, npz, capsys):
    run_dir = trained
    before = torch.load(run_dir / "final.pt", weights_only=True)
    log = (run_dir / "log.csv").read_bytes()
    code, out, _ = run(capsys, *train_argv(npz, run_dir))
    expected = f"{run_dir}: 0 epochs trained now, 1 before; 96 training images; held-out 32 images"
    assert code == 0 and out.startswith(expected)
    after = torch.load(run_dir / "final.pt", weights_only=True)
    assert (run_dir / "log.csv").read_bytes() == log
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_other_arch_on_an_existing_run_is_refused(trained, npz, capsys):
    run_dir = trained
    model_json = (run_dir / "model.json").read_text()
    code, _, err = run(capsys, *train_argv(npz, run_dir, arch=OTHER))
    assert code == 2 and err == (
        f"robustnas: error: {run_dir} holds a run of another network or data "
        f'(arch: "{ARCH}" -> "{OTHER}"); resume with the same --arch/--space/--dataset/--data/--holdout/--limit, '
        "or give another --out\n"
    )
    assert (run_dir / "model.json").read_text() == model_json


@pytest.mark.parametrize("adversarial, stored", [("none", None), ("trades", "trades")])
def test_standard_and_trades_training(npz, tmp_path, capsys, monkeypatch, adversarial, stored):
    from robustnas._progress import LoopProgress

    monkeypatch.setattr(LoopProgress, "LOG_EVERY_S", 0.0)  # a log line after every batch
    argv = train_argv(npz, tmp_path / "run", adversarial=adversarial)
    argv[argv.index("--limit") + 1] = "32"
    code, out, err = run(capsys, *argv)
    assert code == 0 and "1 epochs trained now, 0 before; 32 training images" in out
    assert "epoch 1/1: 1/1 (" in err and " batch/s, about 0 s left)" in err
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["config"]["adversarial"] == stored


@pytest.mark.parametrize(
    "change, message",
    [
        ({"--holdout": "400"}, "--holdout must be in 1..399 for 400 training images, got 400"),
        ({"--limit": "369"}, "--limit must be in 1..368 (training images left after --holdout 32), got 369"),
        ({"--batch-size": "128"},
         "96 training images are fewer than one batch (--batch-size 128); lower --batch-size or raise --limit"),
        ({"--dataset": "cifar100"}, "cifar10-mini.npz holds cifar10"),
        ({"--arch": "resnet18"}, "resnet18 belongs to no search space; drop --space"),
        ({"--epochs": "0"}, "TrainConfig: epochs must be >= 1, got epochs=0"),
        ({"--amp": None}, "--amp needs --device cuda (mixed precision is GPU-only here); drop --amp"),
    ],
)
def test_train_errors_are_one_line(npz, tmp_path, capsys, change, message):
    argv = train_argv(npz, tmp_path / "run")
    for flag, value in change.items():
        if value is None:
            argv.append(flag)
        else:
            argv[argv.index(flag) + 1] = value
    code, _, err = run(capsys, *argv)
    assert code == 2 and err.count("\n") == 1 and message in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")
@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_device_cuda_without_cuda(npz, tmp_path, capsys, command):
    argv = train_argv(npz, tmp_path) if command == "train" else ["evaluate", "--checkpoint", str(tmp_path)]
    code, _, err = run(capsys, *argv, "--device", "cuda")
    assert code == 2 and err == "robustnas: error: --device cuda: no CUDA device is available here; use --device cpu\n"


def test_model_specs_of_the_other_networks():
    from robustnas.train._model_spec import ModelSpec

    # the parameter counts of `robustnas arch show` (tests/test_cli.py) and of He et al.'s PreAct ResNet-18
    for arch, space, params in (("DARTS_V2", "darts", 3349342), ("ARNAS", "arnas", 4520394),
                                ("CROZE_CIFAR10", "croze-darts", 5524894), ("resnet18", "nb201", 11172170)):
        spec = ModelSpec.from_arch(arch, space, "cifar10", 10)
        again = ModelSpec.from_json(json.loads(json.dumps(spec.to_json())), Path("model.json"))
        assert again == spec and sum(p.numel() for p in again.build().parameters()) == params


def test_arnas_on_tiny_imagenet_is_the_size_arnas_trains():
    from robustnas.train._model_spec import ModelSpec

    # crose-and-arnas.md §B.5: C=84, 14 cells, 5.41 M parameters for Tiny-ImageNet-200's 200 classes
    for dataset in ("tiny-imagenet-200", "Tiny-ImageNet"):
        spec = ModelSpec.from_arch("ARNAS", "arnas", dataset, 200)
        assert spec.options == {"C": 84, "layers": 14}
        assert sum(p.numel() for p in spec.build().parameters()) == 5405684
    assert ModelSpec.from_arch("DARTS_V2", "darts", "tiny-imagenet-200", 200).options == {"C": 36, "layers": 20}


def test_train_and_evaluate_on_tiny_imagenet(shared_data, tmp_path, capsys):
    data = shared_data / "tiny-imagenet-200" / "tiny-imagenet-200-subset.zip"
    out = tmp_path / "tiny"
    argv = train_argv(data, out, adversarial="none")
    argv[argv.index("cifar10")] = "tiny-imagenet-200"
    argv[argv.index("--limit") + 1] = "64"
    code, printed, _ = run(capsys, *argv)
    assert code == 0 and "64 training images; held-out 32 images" in printed
    record = json.loads((out / "model.json").read_text())
    assert (record["dataset"], record["num_classes"]) == ("tiny-imagenet-200", 200)
    code, printed, _ = run(capsys, "evaluate", "--checkpoint", str(out), "--suite", "clean,fgsm,corruptions",
                           "--n", "16", "--batch-size", "16")
    result = json.loads((out / "evaluation.json").read_text())
    assert code == 0 and result["n"] == 16 and result["settings"]["corruptions"]["table"] == "imagenet"
    assert all((result[key] * 16).is_integer() for key in ("clean", "fgsm"))
    x, y = first_test_images(data, 16, "tiny-imagenet-200")
    with torch.no_grad():
        expected = (rebuilt(out)(x).argmax(1) == y).float().mean().item()
    assert result["clean"] == pytest.approx(expected, abs=1e-12)


def test_train_on_svhn_uses_its_normalisation(tmp_path, capsys):
    import scipy.io

    from robustnas.data import normalization

    train, test = load_dataset(split="train"), load_dataset(split="test")
    for name, images in (("train", train.images[:160]), ("test", test.images[:32])):
        digits = np.arange(len(images)) % 10
        scipy.io.savemat(tmp_path / f"{name}_32x32.mat",
                         {"X": images.transpose(1, 2, 3, 0), "y": np.where(digits == 0, 10, digits).reshape(-1, 1)})
    argv = train_argv(tmp_path, tmp_path / "run", adversarial="none")
    argv[argv.index("cifar10")] = "svhn"
    code, printed, _ = run(capsys, *argv)
    assert code == 0 and "96 training images; held-out 32 images" in printed
    model = rebuilt(tmp_path / "run")
    mean, std = normalization("svhn")
    assert torch.equal(model.mean.flatten(), torch.tensor(mean)) and torch.equal(model.std.flatten(), torch.tensor(std))
    assert json.loads((tmp_path / "run" / "model.json").read_text())["dataset"] == "svhn"


# ---- evaluate ------------------------------------------------------------------------------------
def test_evaluate_result_matches_direct_computation(evaluated, trained, npz):
    from robustnas.attacks import make_attack, robust_accuracy
    from robustnas.corruptions import CORRUPTIONS, corrupt

    out, result = evaluated
    run_dir = trained
    assert list(result) == ["clean", "fgsm", "pgd20", "corruptions", "corruption_accuracy", "settings", "sanity", "n",
                            "checkpoint"]
    assert result["n"] == 32 and result["checkpoint"] == str(run_dir / "final.pt")
    accuracies = [result[k] for k in ("clean", "fgsm", "pgd20")] + [
        a for by_severity in result["corruption_accuracy"].values() for a in by_severity.values()]
    assert len(accuracies) == 3 + 75 and all(0 <= a <= 1 and (a * 32).is_integer() for a in accuracies)
    assert result["corruptions"] == pytest.approx(np.mean(accuracies[3:]), abs=1e-15)

    model = rebuilt(run_dir)
    x, y = first_test_images(npz, 32)
    with torch.no_grad():
        assert result["clean"] == int((model(x).argmax(1) == y).sum()) / 32
    assert result["fgsm"] == robust_accuracy(model, (x, y), make_attack("fgsm"), batch_size=16)
    assert result["pgd20"] == robust_accuracy(model, (x, y), make_attack("pgd20", seed=0), batch_size=16)
    fog = corrupt(load_dataset(npz, "cifar10", split="test").images[:32], "fog", 3, seed=0)
    with torch.no_grad():
        fog_x = torch.from_numpy(fog.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255))
        assert result["corruption_accuracy"]["fog"]["3"] == int((model(fog_x).argmax(1) == y).sum()) / 32
    assert list(result["corruption_accuracy"]) == list(CORRUPTIONS)


def test_evaluate_settings_and_sanity(evaluated):
    _, result = evaluated
    settings = result["settings"]
    assert settings["pgd20"] == {"attack": "PGD", "eps": 8 / 255, "step": 2 / 255, "steps": 20, "norm": "linf",
                                 "start": "uniform", "restarts": 1, "seed": 0, "batch_size": 16}
    assert settings["fgsm"] == {"attack": "FGSM", "eps": 8 / 255, "batch_size": 16}
    assert settings["corruptions"]["seed"] == 0 and settings["corruptions"]["table"] == "cifar"
    assert settings["sanity"] == {"images": 32, "eps": 8 / 255, "steps": 20, "tol": 0.02, "seed": 0}
    assert set(result["sanity"]) == {"accuracy_falls_with_eps", "pgd_not_above_fgsm", "near_zero_at_huge_eps",
                                     "gradients_not_zero"}
    # eps = 1 reaches every image, so no image of an undefended network survives PGD there
    assert result["sanity"]["near_zero_at_huge_eps"]["accuracy"] == 0.0


def test_store_holds_the_reported_numbers(evaluated):
    from robustnas.store import Store

    out, result = evaluated
    with Store(out / "store.sqlite") as store:
        frame = store.frame("evaluate")
    stored = dict(zip(frame["quantity"], frame["value"]))
    assert len(frame) == 3 + 75 + 1 + 1 and set(frame["arch"]) == {f"nb201 {ARCH}"} and set(frame["seed"]) == {0}
    assert {k: stored[k] for k in ("clean", "fgsm", "pgd20", "corruptions")} == {
        k: result[k] for k in ("clean", "fgsm", "pgd20", "corruptions")}
    assert all(stored[f"corruption:{name}:{s}"] == acc for name, by in result["corruption_accuracy"].items()
               for s, acc in by.items())
    sanity_note = frame.loc[frame["quantity"] == "sanity", "note"].item()
    assert json.loads(sanity_note) == result["sanity"]
    assert stored["sanity"] == float(all(check["passed"] for check in result["sanity"].values()))


def test_evaluation_md_and_printed_table(evaluated, trained, npz, capsys):
    out, result = evaluated
    run_dir = trained
    table = (f"| suite | accuracy |\n|---|---:|\n| clean | {result['clean']:.4f} |\n| fgsm | {result['fgsm']:.4f} |\n"
             f"| pgd20 | {result['pgd20']:.4f} |\n| corruptions | {result['corruptions']:.4f} |\n")
    markdown = (out / "evaluation.md").read_text()
    assert table in markdown and "| fog |" in markdown and "## Gradient-masking sanity checks" in markdown
    # a re-run (checkpoint file instead of the run directory, --data given explicitly) computes nothing
    code, printed, _ = run(capsys, "evaluate", "--checkpoint", str(run_dir / "final.pt"), "--data", str(npz),
                           "--suite", SUITE, "--n", "32", "--batch-size", "16", "--out", str(out))
    assert code == 0 and printed.startswith(table)
    assert printed.splitlines()[-1].startswith("0 values computed now")
    assert json.loads((out / "evaluation.json").read_text()) == {**result, "checkpoint": str(run_dir / "final.pt")}


def test_evaluate_checkpoint_pt_with_seed_into_run_dir(trained, capsys):
    run_dir = trained
    code, _, _ = run(capsys, "evaluate", "--checkpoint", str(run_dir / "checkpoint.pt"), "--suite", "clean,pgd7",
                     "--n", "8", "--seed", "5")
    result = json.loads((run_dir / "evaluation.json").read_text())
    assert code == 0 and result["settings"]["pgd7"]["seed"] == 5 and result["settings"]["sanity"]["seed"] == 5
    assert result["settings"]["pgd7"]["batch_size"] == 256 and result["n"] == 8
    # checkpoint.pt after the last epoch holds the weights of final.pt
    x, y = first_test_images(Path(json.loads((run_dir / "model.json").read_text())["data"]["path"]), 8)
    with torch.no_grad():
        assert result["clean"] == int((rebuilt(run_dir)(x).argmax(1) == y).sum()) / 8


def test_evaluate_logs_batch_progress_when_not_a_terminal(trained, tmp_path, capsys, monkeypatch):
    from robustnas._progress import LoopProgress

    monkeypatch.setattr(LoopProgress, "LOG_EVERY_S", 0.0)
    code, _, err = run(capsys, "evaluate", "--checkpoint", str(trained), "--suite", "clean", "--n", "32",
                       "--batch-size", "16", "--out", str(tmp_path))
    assert code == 0 and "clean: 1/2 (" in err and "clean: 2/2 (" in err and " batch/s, about" in err


def test_checkpoint_of_another_arch_is_a_one_line_error(trained, tmp_path, capsys):
    run_dir = trained
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(run_dir / "final.pt", bad / "final.pt")
    spec = json.loads((run_dir / "model.json").read_text())
    (bad / "model.json").write_text(json.dumps({**spec, "arch": OTHER}))
    code, _, err = run(capsys, "evaluate", "--checkpoint", str(bad), "--suite", "clean")
    # a 1x1 ReLU-conv-BN edge has 6 entries (conv weight; BN weight, bias, running mean/var, count) in each of 15 cells
    assert code == 2 and err == (
        f"robustnas: error: {bad / 'final.pt'} does not match nb201 {OTHER} of {bad / 'model.json'} "
        "(missing: model.cells.0.edges.0.1.weight, model.cells.0.edges.0.2.weight, model.cells.0.edges.0.2.bias "
        "and 87 more); fix model.json or give the checkpoint of that network\n"
    )


def test_unknown_suite_item(trained, capsys):
    run_dir = trained
    code, _, err = run(capsys, "evaluate", "--checkpoint", str(run_dir), "--suite", "clean,pgd3")
    assert code == 2 and err == (
        "robustnas: error: unknown suite item pgd3; choose from clean, fgsm, pgd7, pgd10, pgd20, pgd100, pgd20-croze, "
        "pgd7-arnas, apgd-ce, apgd-t, fab-t, square, autoattack, corruptions (comma-separated)\n"
    )


@pytest.mark.parametrize("flags, message", [
    (["--n", "65"], "has 64 images; give a smaller --n"),
    (["--n", "0"], "--n must be >= 1, got 0"),
    (["--batch-size", "0"], "batch size must be a positive integer, got 0"),
    (["--seed", "-1"], "--seed must be in 0..4294967295, got -1"),
])
def test_evaluate_bad_numbers(trained, tmp_path, capsys, flags, message):
    code, _, err = run(capsys, "evaluate", "--checkpoint", str(trained), "--suite", "clean", "--out", str(tmp_path),
                       *flags)
    assert code == 2 and err.count("\n") == 1 and message in err and not list(tmp_path.iterdir())


@pytest.mark.parametrize("command, flags", [
    ("train", ["--arch", "--space", "--dataset", "--data", "--adversarial", "--epochs", "--batch-size", "--lr",
               "--cutout", "--seed", "--holdout", "--limit", "--device", "--amp", "--out"]),
    ("evaluate", ["--checkpoint", "--suite", "--data", "--n", "--batch-size", "--seed", "--device", "--out"]),
])
def test_help(capsys, command, flags):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and all(flag in out for flag in flags)
    if command == "evaluate":
        from robustnas.evaluation import suite_items

        assert all(item in " ".join(out.split()) for item in suite_items())

"""Issue 16, the fault-injection pass's findings beyond the listed ones: each test failed before its fix."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from robustnas.cli import main
from robustnas.data import load_dataset
from robustnas.store import Store, StoreError


def cli(capsys, *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_npz(path: Path, images: slice) -> Path:
    train, test = load_dataset(split="train"), load_dataset(split="test")
    np.savez(path, x_train=train.images[images], y_train=train.labels[images], x_test=test.images[:16],
             y_test=test.labels[:16])
    return path


def test_search_names_its_data_by_absolute_path(capsys, tmp_path, monkeypatch):
    """A relative --data in another folder is other data: it was read from the store as if it were the same."""
    for folder, images in (("a", slice(0, 64)), ("b", slice(64, 128))):
        (tmp_path / folder).mkdir()
        write_npz(tmp_path / folder / "mine.npz", images)
    argv = ("search", "--objective", "synflow", "--strategy", "random", "--budget", "2", "--data", "mine.npz",
            "--out", tmp_path / "run")
    monkeypatch.chdir(tmp_path / "a")
    assert cli(capsys, *argv)[0] == 0
    settings = json.loads((tmp_path / "run" / "search.json").read_text())
    assert settings["data"] == str(tmp_path / "a" / "mine.npz")
    monkeypatch.chdir(tmp_path / "b")
    code, _, err = cli(capsys, *argv)
    assert code == 2 and "holds a search with other settings (data" in err


@pytest.mark.parametrize("content", ["[]", '"x"'])
def test_search_settings_that_are_not_an_object_are_one_line(capsys, tmp_path, content):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "search.json").write_text(content)
    code, _, err = cli(capsys, "search", "--objective", "bench:clean", "--budget", "2", "--out", tmp_path / "run")
    assert code == 2 and err.count("\n") == 1 and "not search settings (a JSON object)" in err


@pytest.mark.parametrize(
    "argv, flag, value",
    [
        (("search", "--objective", "bench:clean", "--proxy-seed", "-1"), "--proxy-seed", "-1"),
        (("search", "--objective", "bench:clean", "--proxy-seed", str(10**23)), "--proxy-seed", str(10**23)),
        (("search", "--objective", "bench:clean", "--seed", str(2**32)), "--seed", str(2**32)),
        (("train", "--arch", "13433", "--seed", str(10**23)), "--seed", str(10**23)),
        (("evaluate", "--checkpoint", "nowhere", "--seed", str(10**23)), "--seed", str(10**23)),
        (("arch", "sample", "--seed", "-5"), "--seed", "-5"),
    ],
)
def test_out_of_range_seeds_are_one_line_errors(capsys, tmp_path, argv, flag, value):
    out = () if argv[0] == "arch" else ("--out", tmp_path / "run")
    code, _, err = cli(capsys, *argv, *out)
    assert code == 2 and err == f"robustnas: error: {flag} must be in 0..4294967295, got {value}\n"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"note": "x"}, "unknown or missing: note"),
        ({"proxies": None}, "unknown or missing: proxies"),
    ],
)
def test_run_settings_with_other_fields_fail_before_the_study_works(capsys, tmp_path, change, message):
    run = tmp_path / "scored"
    assert cli(capsys, "score", "--archs", "sample:2", "--proxies", "params", "--out", run)[0] == 0
    settings = json.loads((run / "run.json").read_text())
    settings.update(change)
    settings = {k: v for k, v in settings.items() if change.get(k, "") is not None}  # None: the key removed
    (run / "run.json").write_text(json.dumps(settings))
    code, _, err = cli(capsys, "study", "--features", "ours", "--runs", run, "--out", tmp_path / "report")
    assert code == 2 and err.count("\n") == 1 and message in err and "values in store.sqlite are intact" in err
    assert not (tmp_path / "report").exists()


def test_export_reads_without_changing_the_store(capsys, tmp_path):
    """An empty store.sqlite was turned into a 32 KB empty store by export."""
    run = tmp_path / "scored"
    assert cli(capsys, "score", "--archs", "sample:2", "--proxies", "params", "--out", run)[0] == 0
    (run / "store.sqlite").write_bytes(b"")
    code, _, err = cli(capsys, "export", run, "--out", tmp_path / "x.csv")
    assert code == 2 and "not a robustnas store" in err and (run / "store.sqlite").stat().st_size == 0


def test_a_readonly_store_reads_and_refuses_writes(tmp_path):
    from robustnas.store import Result

    with Store(tmp_path / "s.sqlite") as store:
        store.ensure_run("r")
        store.put("r", Result("a", "q", 0, "c", 1.5))
    with Store(tmp_path / "s.sqlite", readonly=True) as store:
        assert store.frame("r")["value"].tolist() == [1.5]
        with pytest.raises(StoreError, match="cannot write .*readonly database"):
            store.put("r", Result("b", "q", 0, "c", 2.0))
    with pytest.raises(StoreError, match="no such store file"):
        Store(tmp_path / "missing.sqlite", readonly=True)


def test_study_refuses_suite_with_runs_and_a_folder_of_other_files(capsys, tmp_path):
    code, _, err = cli(capsys, "study", "--features", "suite", "--runs", tmp_path, "--out", tmp_path / "r")
    assert code == 2 and "drop --runs" in err
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    code, _, err = cli(capsys, "study", "--features", "suite", "--out", tmp_path / "busy")
    assert code == 2 and "holds files other than a study report" in err
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_a_stopped_study_leaves_the_previous_report_whole(tmp_path, monkeypatch):
    """A study stopped halfway mixed its files with the previous report's; now it is swapped in at the end."""
    from robustnas.report import _study as study

    out = tmp_path / "report"
    out.mkdir()
    (out / "report.md").write_text("previous")
    (out / "r2.csv").write_text("previous")

    def stopped(dataset, source, runs, folder, command, bench):
        folder.mkdir()
        (folder / "r2.csv").write_text("new, half done")
        raise KeyboardInterrupt

    monkeypatch.setattr(study, "_write_study", stopped)
    with pytest.raises(KeyboardInterrupt):
        study.run_study("cifar10", "suite", [], out, "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no staging folder left
    assert (out / "r2.csv").read_text() == "previous" and (out / "report.md").read_text() == "previous"

    def finished(dataset, source, runs, folder, command, bench):
        folder.mkdir()
        (folder / "report.md").write_text("new")
        return folder / "report.md"

    monkeypatch.setattr(study, "_write_study", finished)
    assert study.run_study("cifar10", "suite", [], out, "x") == out / "report.md"
    assert sorted(p.name for p in out.iterdir()) == ["report.md"] and (out / "report.md").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    argv = ["train", "--arch", "13433", "--epochs", "1", "--batch-size", "32", "--holdout", "32", "--limit", "64",
            "--out", str(out)]
    assert main(argv) == 0
    return out


@pytest.mark.parametrize(
    "change, message",
    [
        ({"options": {"channels": "abc"}}, "cannot build"),
        ({"options": {"bogus": 1}}, "cannot build"),
        ({"num_classes": -3}, "num_classes (>= 1)"),
        ({"data": "notadict"}, "data must be an object"),
        ({"data": {"path": 5}}, "data must be an object"),
    ],
)
def test_malformed_model_json_is_one_line(capsys, tmp_path, trained, change, message):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    spec = json.loads((run / "model.json").read_text())
    spec.update(change)
    (run / "model.json").write_text(json.dumps(spec))
    code, _, err = cli(capsys, "evaluate", "--checkpoint", run, "--suite", "clean", "--n", "8")
    assert code == 2 and err.count("\n") == 1 and message in err


def test_a_checkpoint_without_its_model_is_one_line(capsys, tmp_path, trained):
    import shutil

    import torch

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "final.pt").unlink()
    payload = torch.load(run / "checkpoint.pt", weights_only=True)
    del payload["model"]
    torch.save(payload, run / "checkpoint.pt")
    code, _, err = cli(capsys, "evaluate", "--checkpoint", run, "--suite", "clean", "--n", "8")
    assert code == 2 and err.count("\n") == 1 and "holds no model state dict" in err

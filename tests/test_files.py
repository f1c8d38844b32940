"""Atomic writes: the target holds the old or the new content, never a torn one, and no temporary is left."""

from pathlib import Path

import pytest

from robustnas._files import atomic_write, replace_file


def test_replace_file_writes_text_as_utf8_and_bytes_as_given(tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    replace_file(target, "ε = 8/255\n")
    assert target.read_bytes() == "ε = 8/255\n".encode()
    replace_file(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


def test_an_error_inside_the_block_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"old")
    with pytest.raises(ZeroDivisionError):
        with atomic_write(target) as handle:
            handle.write(b"half of the new")
            1 / 0
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_the_target_is_untouched_until_the_block_ends(tmp_path: Path) -> None:
    target = tmp_path / "log.csv"
    target.write_bytes(b"old")
    with atomic_write(target) as handle:
        handle.write(b"new")
        handle.flush()
        assert target.read_bytes() == b"old"
        (temporary,) = [p for p in tmp_path.iterdir() if p.name != "log.csv"]
        assert temporary.name.startswith(".log.csv.") and temporary.name.endswith(".partial")
    assert target.read_bytes() == b"new"


def test_a_missing_folder_is_an_oserror_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        replace_file(tmp_path / "absent" / "x.json", "{}")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_is_held_by_one_command_at_a_time(tmp_path):
    """Issue 16 re-pass: two searches on one --out raced to create the Optuna tables ('table studies already exists')."""
    from robustnas.errors import RobustnasError
    from robustnas._files import run_lock

    with run_lock(tmp_path / "run"):
        with pytest.raises(RobustnasError, match="is in use by another robustnas command; wait for it to end"):
            with run_lock(tmp_path / "run"):
                pass
    with run_lock(tmp_path / "run"):  # released when the holder ends
        pass

"""``python -m hamod.verify A B``: output, exit status 0/1, and 2 with the argument
named on a usage error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hamod.verify.__main__ import main


def _tree(root: Path) -> Path:
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_bytes(b"x" * 3000)
    (root / "keep").write_bytes(b"k")
    return root


def test_equal_trees_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert main([str(a), str(b)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["verify: 4 entries compared, 5.9 KiB hashed: no difference"]


def test_differences_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    with (b / "d" / "f").open("r+b") as f:
        f.seek(2500)
        f.write(b"y")
    (b / "new.tmp").write_bytes(b"")
    os.chmod(b / "keep", 0o600)
    code = main([str(a), str(b), "--region-size", "1K", "--rounds", "1"])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[:-1] == [
        "/d/f: content differs at offset 2048 (region 2)",
        "/keep: mode 0644 != 0600",
        "/new.tmp: extra on peer",
    ]
    assert out[-1].endswith(": 3 differences")
    assert main([str(a), str(b), "--region-size", "1K", "--exclude", "*.tmp"]) == 1
    assert "/new.tmp" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{a}"], "the following arguments are required: B"),
        (["{a}/nope", "{a}"], "argument A: "),
        (["{a}", "{a}/keep"], "argument B: "),
        (["--region-size", "0", "{a}", "{a}"], "argument --region-size: '0'"),
        (["--region-size", "1X", "{a}", "{a}"], "argument --region-size: '1X'"),
        (["--rounds", "-1", "{a}", "{a}"], "argument --rounds"),
        (["--exclude", "/", "{a}", "{a}"], "argument --exclude: exclude pattern '/'"),
    ],
)
def test_usage_errors_exit_2_naming_the_argument(
    tmp_path: Path, args: list[str], message: str
) -> None:
    a = _tree(tmp_path / "a")
    argv = [x.format(a=a) for x in args]
    run = subprocess.run(
        [sys.executable, "-m", "hamod.verify", *argv], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert message in run.stderr

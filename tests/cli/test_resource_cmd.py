"""``hamod get -r`` / ``hamod set -r`` and ``hamod state -v``'s checker table, through a
real API served on the daemon's backend over a module with checkers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hamod.cli.main import main
from hamod.runtime.backend import DaemonBackend
from tests.runtime.api_thread import served
from tests.runtime.harness import rig
from tests.runtime.test_checks import module, runner_of

EXTRA = "checkers:\n  - {type: custom, name: gate}\n"


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    sock = tmp_path / "run" / "api.sock"
    monkeypatch.setenv("HAMOD_SOCKET", str(sock))
    runner = runner_of(tmp_path, module(EXTRA), rig(tmp_path))
    backend = DaemonBackend("n1", lambda: {"demo": runner})
    with served(backend, sock):  # type: ignore[arg-type]
        yield tmp_path


def test_set_then_get(api: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["set", "-r", "custom.gate", "-v", "down", "-m", "demo"]) == 0
    assert capsys.readouterr().out == "n1: demo: custom.gate = down\n"
    assert main(["get", "-r", "custom.gate", "-m", "demo"]) == 1  # not up: exit 1
    assert capsys.readouterr().out == "down\n"
    assert main(["set", "-r", "custom.gate", "-v", "up", "-m", "demo"]) == 0
    assert main(["get", "-r", "custom.gate", "-m", "demo"]) == 0
    assert capsys.readouterr().out.endswith("up\n")
    assert (api / "resources" / "custom.gate").read_text().strip() == "up"


def test_bad_resources_are_named(api: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", "-r", "custom.nope", "-m", "demo"]) == 2
    err = capsys.readouterr().err
    assert "resource: n1: no resource 'custom.nope' in module demo" in err
    assert "custom.gate" in err and "vip.vip" in err  # names what exists
    assert main(["set", "-r", "vip.vip", "-v", "up", "-m", "demo"]) == 1
    assert "'vip.vip' is not settable" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["set", "-r", "custom.gate", "-v", "maybe", "-m", "demo"])
    assert not (api / "resources" / "custom.gate").exists()  # nothing changed


def test_state_verbose_lists_checkers(api: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["checker", "off", "-c", "gate", "-m", "demo"]) == 0
    capsys.readouterr()
    assert main(["state", "-v", "-m", "demo"]) == 0
    out = capsys.readouterr().out.splitlines()
    head = next(i for i, line in enumerate(out) if line.startswith("NODE  MODULE  CHECKER"))
    rows = [line.split()[:5] for line in out[head + 1 :]]
    assert rows == [
        ["n1", "demo", "gate", "custom", "unknown"],
        ["n1", "demo", "vip", "vip", "unknown"],
        ["n1", "demo", "intf-eth7", "interface", "unknown"],
    ]
    assert " off " in out[head + 1]  # turned off by name

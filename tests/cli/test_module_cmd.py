"""``hamod start|stop|prim|...`` and the toggles against a real API on a fake backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hamod.api.models import Command
from hamod.cli.main import main
from hamod.errors import StateError
from hamod.testing.fake_backend import FakeBackend
from tests.runtime.api_thread import served


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBackend]:
    sock = tmp_path / "run" / "api.sock"
    monkeypatch.setenv("HAMOD_SOCKET", str(sock))
    with served(FakeBackend("n1"), sock) as backend:
        yield backend


def test_command_ok(api: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["swap", "-m", "pg"]) == 0
    assert api.commands[-1][1].command is Command.SWAP
    out = capsys.readouterr().out
    assert out.startswith("n1: pg: swap: ")


def test_toggles(api: FakeBackend) -> None:
    assert main(["failover", "off", "-m", "pg"]) == 0
    assert main(["boot", "auto", "-m", "pg"]) == 0
    assert [c[1].command for c in api.commands] == [Command.FAILOVER_OFF, Command.BOOT_AUTO]


def test_refused_is_one_line_exit_1(api: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    api.fail_next(StateError("pg: refused: swap not allowed in STOP/NotReady"))
    assert main(["swap", "-m", "pg"]) == 1
    err = capsys.readouterr().err
    assert err == "hamod: n1: pg: refused: swap not allowed in STOP/NotReady\n"


def test_unknown_module(api: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["start", "-m", "nope"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("hamod: n1: unknown module 'nope'") and "\n" not in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["start"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["boot", "maybe", "-m", "pg"])


def test_unreachable_daemon(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["start", "-m", "pg", "--socket", str(tmp_path / "none.sock")]) == 1
    err = capsys.readouterr().err
    assert "unreachable" in err and "is the hamod daemon running?" in err
    assert err.count("\n") == 1


def test_dash_h_unknown_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cluster.yaml").write_text(
        "cluster: c\nnetworks: [{name: lan, subnet: 10.0.0.0/24, replication: true}]\n"
        "nodes: [{name: n1, addresses: {lan: 10.0.0.1}}, {name: n2, addresses: {lan: 10.0.0.2}}]\n"
    )
    code = main(["start", "-m", "pg", "-H", "n9", "--config-dir", str(tmp_path)])
    assert code == 2
    assert "-H: unknown node 'n9'" in capsys.readouterr().err

"""``hamod state``, ``waitstate``, ``log``, ``printi``/``printe``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hamod.api.models import ModuleStatus, Phase, State
from hamod.cli.main import main
from hamod.testing.fake_backend import FakeBackend
from tests.runtime.api_thread import served


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBackend]:
    sock = tmp_path / "run" / "api.sock"
    monkeypatch.setenv("HAMOD_SOCKET", str(sock))
    with served(FakeBackend("n1"), sock) as backend:
        yield backend


def test_table(api: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["state"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NODE", "MODULE", "STATE", "UP-TO-DATE", "PEER", "REASON"]
    assert lines[1].split()[:4] == ["n1", "pg", "PRIM", "(ready)"]
    assert "\033[" not in "\n".join(lines)  # no colours when not a TTY


def test_json_shape(api: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["state", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [ModuleStatus.model_validate(d).module for d in doc] == ["pg", "web"]
    assert main(["state", "--json", "-m", "pg"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc) == 1 and doc[0]["state"] == "PRIM" and doc[0]["colour"] == "green"


@pytest.mark.parametrize(
    ("state", "code"),
    [(State.STOP, 0), (State.WAIT, 1), (State.ALONE, 2), (State.PRIM, 3), (State.SECOND, 4)],
)
def test_lq_codes(
    api: FakeBackend, state: State, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    api.set_status("pg", state=state, phase=Phase.READY)
    assert main(["state", "-lq", "-m", "pg"]) == code
    assert capsys.readouterr().out == ""


def test_lq_needs_module(api: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["state", "-lq"]) == 2
    assert capsys.readouterr().err == "hamod: -lq needs -m MODULE\n"


def test_waitstate(api: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["waitstate", "-m", "pg", "prim", "--timeout", "2"]) == 0
    assert main(["waitstate", "-m", "pg", "SECOND", "--timeout", "0.3"]) == 1
    assert "still PRIM" in capsys.readouterr().err


def test_log(api: FakeBackend, capsys: pytest.CaptureFixture[str]) -> None:
    api.emit("pg", "hello")
    api.emit("pg", "world")
    assert main(["log", "-m", "pg", "-n", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].endswith("world")


def test_printi_printe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "demo.log"
    monkeypatch.setenv("HAMOD_MODULE", "demo")
    monkeypatch.setenv("HAMOD_LOG", str(log))
    assert main(["printi", "app", "started"]) == 0
    assert main(["printe", "oops"]) == 0
    lines = log.read_text().splitlines()
    assert lines[0].endswith(" I app started") and lines[1].endswith(" E oops")
    cap = capsys.readouterr()
    assert cap.out == "app started\n" and cap.err == "oops\n"


def test_table_shows_a_resync_in_progress() -> None:
    from hamod.api.models import ResyncProgress
    from hamod.cli.state_cmd import table

    base = ModuleStatus(module="pg", node="n2", state=State.SECOND, phase=Phase.TRANSIENT,
                        up_to_date=False)  # fmt: skip
    rs = ResyncProgress(done_bytes=5, total_bytes=10, fraction=0.42, phase="rounds", eta_s=12.4)
    out = table([base.model_copy(update={"resync": rs})], False, False)
    assert "resync 42% (rounds, ETA 12s)" in out
    full = ResyncProgress(fraction=0.0, full=True)
    out = table([base.model_copy(update={"resync": full})], False, False)
    assert "resync 0% (full copy)" in out
    assert " no " in table([base], False, False)

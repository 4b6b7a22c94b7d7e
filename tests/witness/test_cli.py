"""``hamod witness serve|status``: input checks (one line, exit 2), the offline status
view, and the real command in a subprocess answering the client — including a crash
(SIGKILL) and restart on the same state file."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hamod.cli import main as cli_main
from hamod.cli import witness_cmd
from hamod.errors import UsageError
from hamod.witness.client import LeaseReply, WitnessClient
from hamod.witness.config import ListenAddress, load_keys, parse_listen

from .conftest import KEYS


def write_keys(directory: Path, keys: dict[str, bytes] = KEYS) -> Path:
    directory.mkdir(exist_ok=True)
    for cluster, key in keys.items():
        path = directory / f"{cluster}.key"
        path.write_text(key.hex() + "\n")
        path.chmod(0o600)
    return directory


def hamod(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = witness_cmd.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.0.0.0", ListenAddress("0.0.0.0", 9011)),
        ("10.0.0.9:9100", ListenAddress("10.0.0.9", 9100)),
        ("::", ListenAddress("::", 9011)),
        ("fd00::9", ListenAddress("fd00::9", 9011)),
        ("[fd00::9]:0", ListenAddress("fd00::9", 0)),
        ("[::1]", ListenAddress("::1", 9011)),
    ],
)
def test_listen_addresses(text: str, expected: ListenAddress) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("witness.example:9011", "'witness.example' is not an IP address"),
        ("10.0.0.9:http", "port 'http' is not a number"),
        ("10.0.0.9:70000", "port '70000' is not a number in 0..65535"),
        ("10.0.0.9:", "port '' is not a number"),
        ("[fd00::9", "is not ADDR, ADDR:PORT or [ADDR]:PORT"),
        ("[fd00::9]x", "is not ADDR, ADDR:PORT or [ADDR]:PORT"),
    ],
)
def test_bad_listen_addresses(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_listen(text)


def test_keys_directory_checks(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is not a directory"):
        load_keys(tmp_path / "missing")
    with pytest.raises(UsageError, match=r"no <cluster>\.key file"):
        load_keys(tmp_path)
    assert load_keys(write_keys(tmp_path / "k")) == KEYS
    (tmp_path / "k" / "Bad Name.key").write_text("00")
    with pytest.raises(UsageError, match="'Bad Name' is not a cluster name"):
        load_keys(tmp_path / "k")


def test_serve_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = write_keys(tmp_path / "keys")
    state = str(tmp_path / "w.json")
    code, out, err = hamod(
        "serve", "--keys", str(tmp_path / "nope"), "--state", state, capsys=capsys
    )
    assert (code, out) == (2, "")
    assert err == f"hamod: --keys: {tmp_path / 'nope'} is not a directory\n"
    argv = ["serve", "--listen", "1.2.3:9", "--keys", str(keys), "--state", state]
    code, _, err = hamod(*argv, capsys=capsys)
    assert code == 2 and err.count("\n") == 1 and "is not an IP address" in err
    (keys / "prod.key").chmod(0o644)
    code, _, err = hamod("serve", "--keys", str(keys), "--state", state, capsys=capsys)
    assert code == 1 and "readable by others" in err


def test_status_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = hamod("status", "--state", str(tmp_path / "none.json"), capsys=capsys)
    assert code == 2 and "does not exist" in err
    from hamod.core.arbiter import ArbiterState, Record
    from hamod.witness.state import FileGrantStore

    st = ArbiterState(
        (Record("prod", "pg", 3, "n1", 0.0, 5.0), Record("test", "pg", 1, "n2", 0.0, 5.0, True))
    )
    FileGrantStore(tmp_path / "w.json").save(st)
    code, out, _ = hamod("status", "--state", str(tmp_path / "w.json"), capsys=capsys)
    assert code == 0
    assert json.loads(out) == [
        {"cluster": "prod", "module": "pg", "term": 3, "holder": "n1", "lease_ms": 5000,
         "released": False, "remaining_ms": None},
        {"cluster": "test", "module": "pg", "term": 1, "holder": "n2", "lease_ms": 5000,
         "released": True, "remaining_ms": None},
    ]  # fmt: skip


def test_registers_like_the_other_commands() -> None:
    assert witness_cmd in cli_main.COMMANDS
    args = cli_main.build_parser().parse_args(["witness", "status", "--state", "x"])
    assert args.func.__name__ == "_status"


# --- the real command in a subprocess ---------------------------------------------------


def command() -> list[str]:
    """``hamod witness`` as a process: the real entry point once the lead wired it."""
    return [sys.executable, "-m", "hamod", "witness"]


class Serving:
    def __init__(self, keys: Path, state: Path) -> None:
        self.proc = subprocess.Popen(
            [*command(), "serve", "--listen", "127.0.0.1:0", "--keys", str(keys),
             "--state", str(state)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "listening on 127.0.0.1:" in line, (
            line,
            self.proc.stderr and self.proc.stderr.read(),
        )
        self.port = int(line.split("127.0.0.1:")[1].split()[0])

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=10)
        return self.proc.returncode, err


@pytest.fixture
def keys_dir(tmp_path: Path) -> Iterator[Path]:
    yield write_keys(tmp_path / "keys")


def ask(port: int, node: str, term: int, lease: float = 1.5) -> LeaseReply | None:
    async def go() -> LeaseReply | None:
        async with WitnessClient("127.0.0.1", port, KEYS, retry_interval=0.1) as client:
            return await client.request_lease("prod", "pg", node, term, lease, 3.0)

    return asyncio.run(go())


def test_serve_subprocess_grants_and_survives_a_crash(keys_dir: Path, tmp_path: Path) -> None:
    state = tmp_path / "state" / "witness.json"
    first = Serving(keys_dir, state)
    try:
        got = ask(first.port, "n1", 1)
        assert got is not None and got.granted and got.term == 1
        refused = ask(first.port, "n2", 2)
        assert refused is not None and not refused.granted and refused.holder == "n1"
    finally:
        code, err = first.stop(signal.SIGKILL)  # a crash: no clean shutdown
    assert code == -signal.SIGKILL and "term 1 granted to n1" in err
    time.sleep(2.0)  # n1's lease (1.5s) has ended by the old process's clock
    second = Serving(keys_dir, state)
    try:
        refused = ask(second.port, "n2", 2)  # only the restart rule keeps n1's lease live
        assert refused is not None and not refused.granted and refused.holder == "n1"
        renewed = ask(second.port, "n1", 1)  # n1 still holds its term and may renew
        assert renewed is not None and renewed.granted and renewed.reason == "renewed"
        while (got := ask(second.port, "n2", 2)) is not None and not got.granted:
            assert time.monotonic() - renewed.sent_at < 10
            time.sleep(0.1)
        assert got is not None and got.granted
        assert got.sent_at >= renewed.lease_end - 0.2  # no sooner than n1's lease ended
    finally:
        code, err = second.stop()
    assert code == 0, err
    assert "loaded 1 grant(s)" in err and "term 2 granted to n2" in err

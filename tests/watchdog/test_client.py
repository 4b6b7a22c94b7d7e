"""WatchdogClient never raises because of the watchdog (absent, stale socket, wrong
file) and reports why; invalid arguments raise UsageError. ``hamod watchdog`` CLI."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest

from hamod.cli import watchdog_cmd
from hamod.errors import UsageError
from hamod.watchdog.client import WatchdogClient, deadline_in
from hamod.watchdog.messages import Arm, StopEnv, StopSpec, decode

ENV = StopEnv(home="/h", bin="/h/bin", var="/v", user_var="/v/web", user_conf="/c")
STOP = StopSpec(bin_dir="/b", log_dir="/l", nice_timeout=2, force_timeout=1, env=ENV)


def test_missing_watchdog_is_false_with_a_reason(tmp_path: Path) -> None:
    with WatchdogClient(tmp_path / "none.sock") as client:
        assert client.arm("web", deadline_in(1.0), [], STOP) is False
        assert client.last_error is not None
        assert client.last_error.startswith("watchdog unreachable: ")
        assert "No such file or directory" in client.last_error
        assert client.disarm("web") is False and client.ping() is False


def test_stale_socket_is_unreachable(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(path))
    dead.close()
    client = WatchdogClient(path)
    assert client.ping() is False
    assert client.last_error is not None and "Connection refused" in client.last_error


def test_delivered_datagram_decodes_to_the_arm(tmp_path: Path) -> None:
    path = tmp_path / "w.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    try:
        client = WatchdogClient(path)
        assert client.arm("web", 42.0, [], STOP) is True and client.last_error is None
        message = decode(server.recv(65536))
        assert message == Arm(module="web", deadline=42.0, stop=STOP)
    finally:
        server.close()


def test_full_queue_is_unreachable_not_blocking(tmp_path: Path) -> None:
    path = tmp_path / "w.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    try:
        client = WatchdogClient(path)
        results = [client.ping() for _ in range(5000)]  # nobody reads
        assert results[0] is True and results[-1] is False
        assert client.last_error is not None and "queue full" in client.last_error
    finally:
        server.close()


def test_invalid_arguments_raise_usage_error(tmp_path: Path) -> None:
    client = WatchdogClient(tmp_path / "w.sock")
    with pytest.raises(UsageError, match="not a module name"):
        client.disarm("Not Valid")
    with pytest.raises(UsageError, match="watchdog arm"):
        client.arm("web", float("nan"), [], STOP)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hamod")
    watchdog_cmd.register(parser.add_subparsers(dest="command"))
    return parser


def test_cli_run_options() -> None:
    args = _parser().parse_args(["watchdog", "run", "--socket", "/x/w.sock", "--pid", "12"])
    assert args.socket == Path("/x/w.sock") and args.pid == 12 and args.log is None
    defaults = _parser().parse_args(["watchdog", "run"])
    assert defaults.socket == Path("/run/hamod/watchdog.sock")


def test_cli_ping_without_watchdog_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _parser().parse_args(["watchdog", "ping", "--socket", str(tmp_path / "w.sock")])
    assert args.func(args) == 1
    assert "watchdog unreachable" in capsys.readouterr().err

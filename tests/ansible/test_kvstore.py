"""The kvstore template's demo service (roles/hamod_module/files/hamod-kvstore.py) on the
loopback: values are files of its directory, written durably; / names the node."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "roles/hamod_module/files/hamod-kvstore.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def kv(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = _free_port()
    data = tmp_path / "data"
    data.mkdir()
    pidfile = tmp_path / "kv.pid"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--dir", str(data), "--port", str(port),
         "--host", "127.0.0.1", "--node", "n7", "--pidfile", str(pidfile)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert "listening" in proc.stdout.readline()
    try:
        yield f"http://127.0.0.1:{port}", data
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        assert not pidfile.exists()


def _call(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_put_get_list_delete(kv: tuple[str, Path]) -> None:
    base, data = kv
    assert _call(base + "/") == (200, b"n7\n")
    status, body = _call(base + "/kv/greeting", "PUT", b"hello")
    assert status == 201 and json.loads(body) == {"key": "greeting", "node": "n7"}
    assert (data / "greeting").read_bytes() == b"hello"
    assert not [p for p in data.iterdir() if p.name.endswith(".tmp")]
    assert _call(base + "/kv/greeting") == (200, b"hello")
    assert json.loads(_call(base + "/kv")[1])["keys"] == ["greeting"]
    assert _call(base + "/kv/greeting", "DELETE")[0] == 204
    assert _call(base + "/kv/greeting")[0] == 404
    assert json.loads(_call(base + "/health")[1]) == {"status": "ok", "node": "n7"}


def test_bad_keys_are_refused(kv: tuple[str, Path]) -> None:
    base, data = kv
    assert _call(base + "/kv/..%2Fescape", "PUT", b"x")[0] == 400
    assert _call(base + "/kv/.hidden", "PUT", b"x")[0] == 400
    assert _call(base + "/nothing")[0] == 404
    assert list(data.iterdir()) == []

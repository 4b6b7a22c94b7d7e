"""Host facts of a site's witness host deployed by the roles (pytest-testinfra; run by
molecule/shared/testinfra.yml): the arbitrator runs from hamod's virtualenv, with its
keys directory and its UDP port."""

from __future__ import annotations

from typing import Any

testinfra_hosts = ["ansible://hamod_witness"]


def test_witness_runs_the_arbitrator(host: Any) -> None:
    args = [p.args for p in host.process.filter(comm="python")]
    assert any("/opt/hamod/venv/bin/python -m hamod witness serve" in a for a in args), args
    assert "udp://0.0.0.0:9011" in host.socket.get_listening_sockets()
    out = host.check_output("stat -c '%U %G %a %F' /etc/hamod/witness/keys")
    assert out == "root root 700 directory"


def test_hamod_is_installed(host: Any) -> None:
    assert host.run("/opt/hamod/venv/bin/hamod --version").rc == 0

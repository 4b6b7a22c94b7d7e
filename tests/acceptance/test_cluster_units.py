"""Pure parts of the lab deployment (no lab, no daemon): the rendered files are valid
hamod configuration, the scripts say what they do, and the packet helpers of scenario 12
rebuild valid frames."""

from __future__ import annotations

import struct

from hamod.config.loader import parse_cluster, parse_module
from hamod.testing.cluster import _fib_local
from hamod.testing.cluster_files import (
    ModuleSpec,
    NodeAddresses,
    make_pki,
    render_cluster,
    render_module,
    render_script,
)
from hamod.testing.cluster_inject import _checksum, rebuild, udp_payload, variants

SUBNETS = {"net0": "10.202.4.0/24", "net1": "10.202.5.0/24", "net0v6": "fd48:0:1::/64"}
NODES = [
    NodeAddresses("n1", {"net0": "10.202.4.11", "net1": "10.202.5.11", "net0v6": "fd48:0:1::11"}),
    NodeAddresses("n2", {"net0": "10.202.4.12", "net1": "10.202.5.12", "net0v6": "fd48:0:1::12"}),
]


def test_rendered_files_are_valid_configuration() -> None:
    for witness in ("arbitrator", "ping", "none"):
        cluster = parse_cluster(render_cluster("lab", SUBNETS, NODES, witness, "10.202.4.1"))
        assert [n.name for n in cluster.networks] == ["net0", "net1", "net0v6"]
        assert (cluster.witness is None) == (witness == "none")
    cluster = parse_cluster(render_cluster("lab", SUBNETS, NODES, "arbitrator", "10.202.4.1"))
    spec = ModuleSpec("web", pulse="200ms", timeout="3s", defaultprim="n1", failover=False)
    module = parse_module(render_module(spec, ["10.202.4.200", "fd48:0:1::200"]), cluster)
    assert module.defaultprim == "n1" and module.failover is False
    assert [str(v.addr) for v in module.vips] == ["10.202.4.200", "fd48:0:1::200"]


def test_scripts_journal_and_service() -> None:
    spec = ModuleSpec("demo", port=7071, vips6=1)
    start = render_script("start_prim", spec, "/py")
    assert start.startswith("#!/bin/sh\n")
    assert 'echo "start_prim $*" >> /var/log/hamod-lab/demo.journal' in start
    assert "/py -m hamod.testing.outage serve --port 7071 --host ::" in start
    assert "kill -s $sig" in render_script("stop_prim", spec, "/py")
    assert "outage" not in render_script("prestart", spec, "/py")
    quiet = render_script("start_prim", ModuleSpec("bench", service=False), "/py")
    assert "outage" not in quiet and "bench.journal" in quiet


def test_pki_has_every_node() -> None:
    pki = make_pki("lab", {"n1": ["10.202.4.11"], "n2": ["10.202.4.12"]})
    assert len(bytes.fromhex(pki.cluster_key.strip())) == 32
    assert set(pki.node_cert) == set(pki.node_key) == {"n1", "n2"}
    assert pki.ca_cert.startswith("-----BEGIN CERTIFICATE-----")


def _frame(payload: bytes, dport: int = 9012) -> bytes:
    eth = bytes(6) + bytes(6) + b"\x08\x00"
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + len(payload), 1, 0, 64, 17, 0,
                               bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])))  # fmt: skip
    struct.pack_into("!H", ip, 10, _checksum(bytes(ip)))
    udp = struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0x1234)
    return eth + bytes(ip) + udp + payload


def test_frames_rebuilt_with_valid_headers() -> None:
    frame = _frame(b"x" * 100)
    assert udp_payload(frame, 9012) == b"x" * 100
    assert udp_payload(frame, 9013) is None
    kinds = variants([frame], 9012)
    replay, forged, cut = kinds["replay"][0], kinds["forged"][0], kinds["truncated"][0]
    assert udp_payload(replay, 9012) == b"x" * 100
    assert udp_payload(forged, 9012) == b"x" * 99 + bytes([ord("x") ^ 0xFF])
    assert udp_payload(cut, 9012) == b"x" * 40
    for f in (replay, forged, cut):
        assert _checksum(f[14:34]) == 0  # a valid IPv4 header checksum sums to 0
        assert f[40:42] == b"\x00\x00"  # no UDP checksum
    assert rebuild(frame, b"y")[16:18] == struct.pack("!H", 29)


def test_fib_trie_local_address() -> None:
    text = (
        "Main:\n  +-- 0.0.0.0/0 3 0 5\n     +-- 10.202.0.0/24 2 0 2\n"
        "        |-- 10.202.0.11\n           /32 host LOCAL\n"
        "        |-- 10.202.0.200\n           /32 host LOCAL\n"
        "        |-- 10.202.0.255\n           /32 link BROADCAST\n"
    )
    assert _fib_local(text, "10.202.0.200")
    assert not _fib_local(text, "10.202.0.255")
    assert not _fib_local(text, "10.202.0.20")

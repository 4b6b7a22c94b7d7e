"""Session messages (CONTROL frames) both ways, ordered with the mutations."""

from __future__ import annotations

import contextlib
import errno
import queue
import socket
import ssl
import threading
import time
from typing import Any

from hamod.datapath.mutation import Mutation, Op
from hamod.proto.wire import Writer
from hamod.replication.conn import tls_connector
from hamod.replication.frames import (
    MAGIC,
    VERSION,
    Control,
    Failure,
    FrameError,
    Kind,
    Level,
    MutationFrame,
    StreamDecoder,
    decode,
    encode,
    pack,
)
from hamod.replication.link import Mode, PeerLink
from hamod.replication.receiver import PeerReceiver, Reply
from hamod.replication.testing import RecordingApplier
from tests.replication.conftest import Cluster


class Echo:
    """A controller that answers every message with what it saw applied so far."""

    def __init__(self, applier: RecordingApplier) -> None:
        self.applier = applier
        self.closed_with: list[str] = []
        self.done = threading.Event()

    def control(self, payload: dict[str, Any], reply: Reply) -> None:
        if payload.get("fail"):
            raise OSError("refused by the controller")
        reply({"seen": payload, "applied": len(self.applier.applied)})

    def closed(self, reason: str) -> None:
        self.closed_with.append(reason)
        self.done.set()


def _raw_control(body: bytes) -> bytes:
    w = Writer()
    w.raw(MAGIC)
    w.u8(VERSION)
    w.u8(Kind.CONTROL)
    w.varint(1)
    w.varint(len(body))
    w.raw(body)
    return w.getvalue()


def test_control_round_trip_and_bad_payloads() -> None:
    f = Control(7, {"hello": 1, "module": "pg", "x": [1, 2]})
    assert decode(encode(f)) == f
    assert pack(f)[4:] == encode(f)
    assert decode(_raw_control(b'{"a":1}')) == Control(1, {"a": 1})
    for bad in (b"[1,2,3]", b"{not json", b"\xff\xfe", b'"text"', b""):
        out = decode(_raw_control(bad))
        assert isinstance(out, FrameError), (bad, out)


def test_control_is_ordered_with_mutations_and_answered(cluster: Cluster) -> None:
    applier = RecordingApplier()
    echo = Echo(applier)
    receiver = PeerReceiver(cluster.server(), applier, controller=echo)
    receiver.start()
    replies: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
    host, port = receiver.address
    link = PeerLink(
        tls_connector(cluster.client(), host, port), mode=Mode.SYNC, timeout=3.0,
        on_control=replies.put,
    )  # fmt: skip
    try:
        link.connect()
        for i in range(5):
            link.post(Mutation(Op.MKDIR, f"/d{i}", mode=0o755))
        link.control({"hello": 1})
        answer = replies.get(timeout=3)
        # every mutation posted before the message was applied before it was handled
        assert answer == {"seen": {"hello": 1}, "applied": 5}
        link.control({"fail": True}, wait=False)
        assert echo.done.wait(3), "a failing controller closes the session"
        assert link.lost is not None or replies.empty()
    finally:
        link.close()
        receiver.close()


def test_drop_session_makes_the_sender_reconnect(cluster: Cluster) -> None:
    applier = RecordingApplier()
    echo = Echo(applier)
    receiver = PeerReceiver(cluster.server(), applier, controller=echo)
    receiver.start()
    host, port = receiver.address
    link = PeerLink(tls_connector(cluster.client(), host, port), mode=Mode.SYNC, timeout=3.0)
    try:
        link.connect()
        link.ship(Mutation(Op.MKDIR, "/a", mode=0o755))
        receiver.drop_session("resync requested")
        assert echo.done.wait(3)
        assert echo.closed_with
        link.connect()
        link.ship(Mutation(Op.MKDIR, "/b", mode=0o755))
        assert [m.path for m, _ in applier.applied] == ["/a", "/b"]
    finally:
        link.close()
        receiver.close()


def test_large_frames_flow_without_stalling(cluster: Cluster) -> None:
    """Frames of several MiB (a 4 MiB write) go out in one turn of the I/O loop: the
    link's timeout (2 s here) is not hit (it was: one 256 KiB chunk per second)."""
    applier = RecordingApplier()
    receiver = PeerReceiver(cluster.server(), applier)
    receiver.start()
    link = PeerLink(tls_connector(cluster.client(), *receiver.address), mode=Mode.SYNC, timeout=2.0)
    try:
        link.connect()
        for size in (256 << 10, 1 << 20, 8 << 20):
            data = bytes(size)
            link.ship(Mutation(Op.WRITE, "/f", handle=1, length=size, data=data))
        assert [len(m.data or b"") for m, _ in applier.applied] == [256 << 10, 1 << 20, 8 << 20]
    finally:
        link.close()
        receiver.close()


def _raw_session(cluster: Cluster, receiver: PeerReceiver) -> ssl.SSLSocket:
    ctx = cluster.client()
    raw = socket.create_connection(receiver.address, timeout=5)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def _read_all(sock: ssl.SSLSocket, timeout: float = 3.0) -> bytes:
    sock.settimeout(timeout)
    out = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            out += chunk
    return out


def test_nothing_is_applied_after_a_protocol_error_in_the_same_read(cluster: Cluster) -> None:
    applier = RecordingApplier()
    receiver = PeerReceiver(cluster.server(), applier)
    receiver.start()
    try:
        sock = _raw_session(cluster, receiver)
        ok = Mutation(Op.MKDIR, "/ok", mode=0o755)
        evil = Mutation(Op.MKDIR, "/evil", mode=0o755)
        sock.sendall(
            pack(MutationFrame(1, Level.APPLIED, ok))
            + pack(MutationFrame(1, Level.APPLIED, ok))  # sequence number repeated
            + pack(MutationFrame(2, Level.APPLIED, evil))
        )
        _read_all(sock)  # the receiver closes the connection
        sock.close()
        assert applier.wait_for(1, 3)  # what came before the error is applied...
        time.sleep(0.2)
        assert [m.path for m, _ in applier.applied] == ["/ok"]  # ...nothing after it
    finally:
        receiver.close()


def test_a_failure_is_sent_then_the_connection_closed(cluster: Cluster) -> None:
    class Refusing(RecordingApplier):
        def apply(self, mutation: Mutation, *, durable: bool) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    receiver = PeerReceiver(cluster.server(), Refusing())
    receiver.start()
    try:
        sock = _raw_session(cluster, receiver)
        sock.sendall(
            pack(MutationFrame(1, Level.APPLIED, Mutation(Op.MKDIR, "/a", mode=0o755)))
            + pack(MutationFrame(2, Level.APPLIED, Mutation(Op.MKDIR, "/b", mode=0o755)))
        )
        frames = StreamDecoder().feed(_read_all(sock))  # ends: the server closed
        sock.close()
        assert frames == [Failure(1, "[Errno 28] No space left on device")]
    finally:
        receiver.close()


def test_the_connection_ends_right_after_the_failure(cluster: Cluster) -> None:
    class Refusing(RecordingApplier):
        def apply(self, mutation: Mutation, *, durable: bool) -> None:
            raise OSError(errno.EIO, "Input/output error")

    receiver = PeerReceiver(cluster.server(), Refusing())
    receiver.start()
    try:
        sock = _raw_session(cluster, receiver)
        sock.sendall(pack(MutationFrame(1, Level.APPLIED, Mutation(Op.MKDIR, "/a", mode=0o755))))
        started = time.monotonic()
        data = _read_all(sock, timeout=3.0)
        assert time.monotonic() - started < 0.5  # closed at once, not at the next poll
        assert StreamDecoder().feed(data) == [Failure(1, "[Errno 5] Input/output error")]
        sock.close()
    finally:
        receiver.close()

"""Session messages (CONTROL frames) both ways, ordered with the mutations."""

from __future__ import annotations

import queue
import threading
from typing import Any

from hamod.datapath.mutation import Mutation, Op
from hamod.proto.wire import Writer
from hamod.replication.conn import tls_connector
from hamod.replication.frames import MAGIC, VERSION, Control, FrameError, Kind, decode, encode, pack
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

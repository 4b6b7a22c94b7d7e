"""The secondary keeps the current session's ``mirroring`` record (the primary's
generation, since when) so that a daemon (re)connecting after the event was sent still
learns it from ``status``; the record ends with the session (a new hello, the
connection closed, the role left)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hamod.core.model import Generation
from hamod.replication.conn import tls_connector
from hamod.replication.dpconfig import DpConfig
from hamod.replication.link import Mode, PeerLink
from hamod.replication.process import DataPathProcess
from hamod.replication.receiver import PeerReceiver
from hamod.replication.secondary import TargetSide
from hamod.replication.testing import RecordingApplier
from hamod.runtime.codec import encode
from tests.replication.conftest import Cluster

GEN = Generation("n1", 3, 7)


def cfg(d: Path) -> DpConfig:
    return DpConfig(
        module="demo", node="n2", peer="n1", directories=(d / "data",), excludes=((),),
        mode=Mode.SYNC, durability="on-sync", link_timeout=3.0, bandwidth=None,
        region_size=1 << 20, my_address="127.0.0.1", peer_address="127.0.0.1", port=7000,
        ca=d / "ca", cert=d / "cert", key=d / "key", run=d / "run", var=d / "var",
        log=d / "log",
    )  # fmt: skip


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.cv = threading.Condition()

    def __call__(self, event: str, **fields: Any) -> None:
        with self.cv:
            self.seen.append((event, fields))
            self.cv.notify_all()

    def wait(self, event: str, n: int = 1) -> None:
        with self.cv:
            ok = self.cv.wait_for(lambda: sum(e == event for e, _ in self.seen) >= n, 5)
        assert ok, f"no {event!r} event: {self.seen}"


def test_record_kept_for_the_session_and_ended_with_it(cluster: Cluster, tmp_path: Path) -> None:
    events = Events()
    target = TargetSide(cfg(tmp_path), [], events)
    receiver = PeerReceiver(cluster.server(), RecordingApplier(), controller=target)
    receiver.start()
    links: list[PeerLink] = []

    def session() -> PeerLink:
        link = PeerLink(tls_connector(cluster.client(), *receiver.address), mode=Mode.SYNC,
                        timeout=3.0, on_control=lambda _: None)  # fmt: skip
        link.connect()
        link.control({"hello": 1, "module": "demo", "node": "n1"})
        links.append(link)
        return link

    try:
        link = session()
        assert target.mirroring is None
        before = time.time()
        link.control({"mirroring": True, "generation": encode(GEN)})
        rec = target.mirroring
        assert rec is not None and rec["generation"] == encode(GEN)
        assert before - 1 <= rec["since"] <= time.time() + 1
        events.wait("mirroring")
        assert ("mirroring", rec) in events.seen  # the event says the same
        # a new session (the primary says hello again): not mirroring until it says so
        session()
        events.wait("session", 2)
        assert target.mirroring is None
        # a primary of the previous version says no generation
        links[-1].control({"mirroring": True})
        assert target.mirroring is not None and target.mirroring["generation"] is None
        # the connection closed: no session, no record
        links[-1].close()
        deadline = time.monotonic() + 5
        while target.mirroring is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert target.mirroring is None
    finally:
        for link in links:
            link.close()
        receiver.close()


@pytest.mark.parametrize("bad", [{"node": "n1"}, "n1:3.7", 5, {"node": 1, "term": 3, "seq": 7}])
def test_a_bad_generation_fails_the_message_and_records_nothing(tmp_path: Path, bad: Any) -> None:
    events = Events()
    target = TargetSide(cfg(tmp_path), [], events)
    with pytest.raises(OSError, match=r"bad mirroring message: generation"):
        target.control({"mirroring": True, "generation": bad}, lambda _: None)
    assert target.mirroring is None and not events.seen


def test_status_answers_the_record(tmp_path: Path) -> None:
    proc = DataPathProcess(cfg(tmp_path))
    try:
        assert proc.handle({"cmd": "status"})["mirroring"] is None
        proc.target.control({"mirroring": True, "generation": encode(GEN)}, lambda _: None)
        rec = proc.handle({"cmd": "status"})["mirroring"]
        assert rec is not None and rec["generation"] == encode(GEN)
        proc.target.stop()  # the role left SECONDARY
        assert proc.handle({"cmd": "status"})["mirroring"] is None
    finally:
        for t in proc.trackers:
            t.close()

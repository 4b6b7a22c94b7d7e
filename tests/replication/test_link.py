"""The peer link over real TLS on 127.0.0.1: order, modes, link loss, authentication."""

from __future__ import annotations

import socket
import ssl
import threading
import time

import pytest

from hamod.datapath.mutation import Mutation, Op
from hamod.errors import PeerError
from hamod.replication.conn import tls_connector
from hamod.replication.link import LinkLost, Mode, PeerLink
from hamod.replication.testing import RecordingApplier
from tests.replication.conftest import Cluster, LinkFactory

MARGIN = 0.5


def write(i: int, size: int = 16, flags: int = 0) -> Mutation:
    return Mutation(
        Op.WRITE, "/f", handle=1, offset=i * size, length=size, data=bytes(size), flags=flags
    )


def test_frames_arrive_applied_in_order_from_many_threads(pair: LinkFactory) -> None:
    applier = RecordingApplier()
    _, link = pair(applier, Mode.SYNC)
    shipped: list[Mutation] = []
    lock = threading.Lock()

    def worker(base: int) -> None:
        for i in range(50):
            m = write(base * 1000 + i)
            with lock:  # the order the FUSE layer fixes; the link keeps it
                link.ship(m)
                shipped.append(m)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [m for m, _ in applier.applied] == shipped


def test_pipelined_async_frames_keep_their_order(pair: LinkFactory) -> None:
    applier = RecordingApplier()
    _, link = pair(applier, Mode.ASYNC)
    sent = [write(i) for i in range(500)]
    for m in sent:
        link.ship(m)
    link.barrier()
    assert [m for m, _ in applier.applied] == sent
    assert link.lag().frames == 0 and link.lag().bytes == 0


def test_sync_waits_until_the_peer_applied(pair: LinkFactory) -> None:
    applier = RecordingApplier(delay=0.2)
    _, link = pair(applier, Mode.SYNC)
    start = time.monotonic()
    link.ship(write(0))
    assert time.monotonic() - start >= 0.2
    assert len(applier.applied) == 1


def test_sync_asks_durability_for_fsync_and_o_sync_writes_only(pair: LinkFactory) -> None:
    import os

    applier = RecordingApplier()
    _, link = pair(applier, Mode.SYNC)
    link.ship(write(0))
    link.ship(write(1, flags=os.O_DSYNC))
    link.ship(Mutation(Op.FSYNC, "/f", handle=1, flags=1))
    link.flush()
    assert [durable for _, durable in applier.applied] == [False, True, True]
    assert applier.flushes == 1


def test_semisync_returns_on_receipt(pair: LinkFactory) -> None:
    applier = RecordingApplier()
    applier.gate.clear()  # the peer receives but cannot apply
    _, link = pair(applier, Mode.SEMISYNC)
    start = time.monotonic()
    for i in range(5):
        link.ship(write(i))
    assert time.monotonic() - start < 1.0
    assert applier.applied == []
    assert link.lag().frames == 5
    applier.gate.set()
    link.barrier()
    assert len(applier.applied) == 5 and link.lag().frames == 0


def test_async_does_not_wait_and_reports_the_lag(pair: LinkFactory) -> None:
    applier = RecordingApplier()
    applier.gate.clear()
    _, link = pair(applier, Mode.ASYNC)
    start = time.monotonic()
    for i in range(20):
        link.ship(write(i, size=1024))
    assert time.monotonic() - start < 0.5
    lag = link.lag()
    assert lag.frames == 20 and lag.bytes > 20 * 1024
    applier.gate.set()
    link.barrier()
    assert link.lag().frames == 0


def test_async_blocks_at_the_lag_bound_then_loses_the_link(pair: LinkFactory) -> None:
    applier = RecordingApplier()
    applier.gate.clear()
    _, link = pair(applier, Mode.ASYNC, timeout=0.5)
    link.max_lag_bytes = 4096
    link.ship(write(0, size=1024))
    with pytest.raises(LinkLost):
        for i in range(1, 10):
            link.ship(write(i, size=1024))
    applier.gate.set()


def test_a_peer_that_stops_applying_loses_the_link_within_the_timeout(pair: LinkFactory) -> None:
    applier = RecordingApplier()
    _, link = pair(applier, Mode.SYNC, timeout=0.5)
    link.ship(write(0))
    applier.gate.clear()
    start = time.monotonic()
    with pytest.raises(LinkLost, match=r"within 0\.5s"):
        link.ship(write(1))
    assert 0.5 <= time.monotonic() - start < 0.5 + MARGIN
    start = time.monotonic()
    for i in range(3):
        with pytest.raises(LinkLost):
            link.ship(write(2 + i))
    assert time.monotonic() - start < 0.05  # fail fast
    assert link.lost is not None
    applier.gate.set()


def test_a_silent_peer_loses_the_link_within_the_timeout(
    cluster: Cluster,
) -> None:
    """The peer completes the TLS handshake, then never reads nor answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[ssl.SSLSocket] = []

    def serve() -> None:
        raw, _ = listener.accept()
        accepted.append(cluster.server().wrap_socket(raw, server_side=True))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    link = PeerLink(
        tls_connector(cluster.client(), *listener.getsockname()[:2]),
        mode=Mode.SEMISYNC,
        timeout=0.3,
    )
    link.connect()
    start = time.monotonic()
    with pytest.raises(LinkLost):
        link.ship(write(0))
    assert time.monotonic() - start < 0.3 + MARGIN
    with pytest.raises(LinkLost):
        link.ship(write(1))
    for s in accepted:
        s.close()
    listener.close()


def test_reconnect_after_a_loss(pair: LinkFactory) -> None:
    applier = RecordingApplier()
    receiver, link = pair(applier, Mode.SYNC, timeout=0.3)
    applier.gate.clear()
    with pytest.raises(LinkLost):
        link.ship(write(0))
    applier.gate.set()
    link.reconnect()
    link.ship(write(1))
    assert applier.wait_for(2, 2.0)
    assert receiver.sessions == 2


def test_the_peer_failing_to_apply_loses_the_link(pair: LinkFactory, tmp_path: object) -> None:
    from hamod.replication.applier import DirectoryApplier

    applier = DirectoryApplier(tmp_path)  # type: ignore[arg-type]
    _, link = pair(applier, Mode.SYNC)
    with pytest.raises(LinkLost, match="could not apply frame 1"):
        link.ship(Mutation(Op.UNLINK, "/missing"))
    applier.close()


def test_a_server_from_another_ca_is_refused(cluster: Cluster, foreign: Cluster) -> None:
    applier = RecordingApplier()
    from hamod.replication.receiver import PeerReceiver

    with PeerReceiver(foreign.server(), applier) as receiver:
        link = PeerLink(
            tls_connector(cluster.client(), *receiver.address), mode=Mode.SYNC, timeout=1
        )
        with pytest.raises(PeerError, match="refused"):
            link.connect()
        with pytest.raises(LinkLost):
            link.ship(write(0))


def test_a_client_from_another_ca_is_refused_and_nothing_is_applied(
    cluster: Cluster, foreign: Cluster
) -> None:
    applier = RecordingApplier()
    from hamod.replication.receiver import PeerReceiver

    with PeerReceiver(cluster.server(), applier) as receiver:
        # The client trusts the cluster CA but presents a foreign certificate.
        ctx = foreign.client()
        ctx.load_verify_locations(cafile=cluster.root / "ca.crt")
        link = PeerLink(tls_connector(ctx, *receiver.address), mode=Mode.SYNC, timeout=1)
        try:
            link.connect()  # TLS 1.3: the client may finish before the server refuses
        except PeerError:
            pass
        else:
            with pytest.raises(LinkLost):
                link.ship(write(0))
        deadline = time.monotonic() + 2
        while receiver.rejected == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert receiver.rejected == 1 and receiver.sessions == 0
    assert applier.applied == []


def test_concurrent_shippers_never_wait_for_a_lost_wake_up(pair: LinkFactory) -> None:
    """Regression: a wake-up lost between the I/O thread's drain and its flag reset left
    frames queued until the 1 s poll."""
    _, link = pair(RecordingApplier(), Mode.SYNC)
    worst: list[float] = []

    def worker(base: int) -> None:
        slowest = 0.0
        for i in range(300):
            start = time.monotonic()
            link.ship(write(base * 1000 + i))
            slowest = max(slowest, time.monotonic() - start)
        worst.append(slowest)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(worst) < 0.5

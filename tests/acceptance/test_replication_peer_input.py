"""Issue #4, scenario 8: bad peer input on the secondary's replication ports.

From n1 (the only other host on the replication network), connections to n2's
replication port (9013) and full-copy port (9014):

- without the cluster certificate (a certificate of another CA made with
  :mod:`hamod.adapters.pki`, no certificate, plain TCP): refused at the TLS handshake,
  logged, nothing applied;
- with the node's own cluster certificate (``/etc/hamod/tls`` inside n1): garbage bytes,
  bad magic, bad version, unknown kind, oversized length, a control message that is not
  an object, sequence numbers going back, an ACK from the client → the connection is
  closed at that frame (a valid CREATE sent right behind it is never applied); an
  unknown control message and mutations whose paths escape the directory (``..``, a
  wrong directory index, resync ops included) → a FAILURE frame naming it, nothing
  applied after it; an rsync request writing outside its root → refused.

Every case checks that nothing was written on n2 — inside its copy (a manifest of the
directory underneath the mount, taken before and after) or outside (canaries in
``/srv/canary``; no ``hamod-evil*`` name anywhere) — and that n2's data-path log says
why. The receiver takes one session at a time, so each probe replaces the primary's
session: afterwards the cluster must recover by itself (n2 back in sync), a later write
on the primary must replicate, and ``hamod verify`` must be clean.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from hamod.datapath.mutation import Mutation, Op
from hamod.replication import frames
from hamod.replication.frames import Ack, Barrier, Control, Level, MutationFrame
from hamod.replication.rsync_proto import encode_request
from hamod.testing.cluster import LabCluster
from hamod.testing.replication import (
    DATA,
    ProbeResult,
    cluster_credentials,
    datapath_log,
    hamod_verify,
    host_path,
    probe,
    replicated_spec,
    rogue_credentials,
    snapshot,
    under,
    wait_in_sync,
)

pytestmark = pytest.mark.lab

MakeCluster = Callable[..., LabCluster]
PORT = 9013
RSYNC_PORT = 9014
CANARY = "/srv/canary"
OUT = "/0/../../../../.." + CANARY  # the canary directory, reached from the copy's root
EVIL = "hamod-evil"


def _create(seq: int, name: str) -> bytes:
    """A valid CREATE of ``/<name>`` in the copy, then its RELEASE: what a probe sends
    behind a bad frame (it must never be applied)."""
    m = Mutation(Op.CREATE, f"/0/{name}", handle=seq, mode=0o100644, flags=os.O_WRONLY)
    return frames.pack(MutationFrame(seq, Level.APPLIED, m)) + frames.pack(
        MutationFrame(seq + 1, Level.APPLIED, Mutation(Op.RELEASE, None, handle=seq))
    )


def _raw(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


def _mut(seq: int, m: Mutation) -> bytes:
    return frames.pack(MutationFrame(seq, Level.APPLIED, m))


@dataclass(frozen=True)
class Closing:
    """A probe that must make the receiver close the connection at its first frame;
    ``log``: a regular expression n2's data-path log must then match."""

    name: str
    send: bytes
    log: str


CLOSING = [
    Closing(
        "garbage", b"\x00\x00\x00\x10" + b"\xde\xad\xbe\xef" * 4, r"bad frame from peer: bad magic"
    ),
    Closing("bad magic", _raw(b"XX\x01\x02\x01"), r"bad frame from peer: bad magic"),
    Closing("bad version", _raw(b"HR\x09\x02\x01"), r"unsupported frame version 9"),
    Closing(
        "unknown kind", _raw(b"HR\x01\x63\x01"), r"bad frame from peer: 99 is not a valid Kind"
    ),
    Closing("oversized", b"\x7f\xff\xff\xff" + b"HR", r"frame length 2147483647 exceeds"),
    Closing(
        "control not an object",
        _raw(b"HR\x01\x06\x01\x03[1]"),
        r"control message is not a JSON object",
    ),
    Closing(
        "unknown field bits",
        _raw(b"HR\x01\x01\x01\x02\x00\xff\xff" + b"\x00" * 6),
        r"unknown field bits",
    ),
    Closing(
        "sequence going back",
        frames.pack(Barrier(5)) + frames.pack(Barrier(5)),
        r"protocol error: unexpected Barrier seq 5",
    ),
    Closing(
        "ACK from the client",
        frames.pack(Ack(1, Level.APPLIED)),
        r"protocol error: unexpected Ack seq 1",
    ),
]


@dataclass(frozen=True)
class Failing:
    """A probe whose frame 1 the secondary must refuse to apply (a FAILURE frame
    naming ``reason``), applying nothing after it."""

    name: str
    frame: bytes
    reason: str


def _escapes() -> list[Failing]:
    keep = "/0/keep/a"
    cases = [
        (
            "create ../../etc",
            Mutation(
                Op.CREATE, f"/0/../../etc/{EVIL}-1", handle=1, mode=0o100644, flags=os.O_WRONLY
            ),
        ),
        (
            "create into the canary",
            Mutation(Op.CREATE, f"{OUT}/{EVIL}-2", handle=1, mode=0o100644, flags=os.O_WRONLY),
        ),
        ("mkdir", Mutation(Op.MKDIR, f"{OUT}/{EVIL}-3", mode=0o40755)),
        ("symlink", Mutation(Op.SYMLINK, f"/0/../{EVIL}-4", target="/etc")),
        ("rename out", Mutation(Op.RENAME, keep, path2=f"{OUT}/{EVIL}-5")),
        ("link in", Mutation(Op.LINK, f"{OUT}/keep", path2=f"/0/{EVIL}-6")),
        ("unlink", Mutation(Op.UNLINK, f"{OUT}/keep")),
        ("rmdir", Mutation(Op.RMDIR, f"{OUT}/dir")),
        ("chmod", Mutation(Op.CHMOD, f"{OUT}/keep", mode=0o777)),
        ("chown", Mutation(Op.CHOWN, f"{OUT}/keep", uid=4242, gid=4242)),
        ("truncate", Mutation(Op.TRUNCATE, f"{OUT}/keep", length=0)),
        (
            "write",
            Mutation(Op.WRITE, f"{OUT}/keep", handle=77, offset=0, length=5, data=b"pwned"),
        ),
        ("setxattr", Mutation(Op.SETXATTR, f"{OUT}/keep", name="user.pwned", value=b"1")),
        ("remove (resync)", Mutation(Op.REMOVE, OUT)),
        ("ensure (resync)", Mutation(Op.ENSURE, f"{OUT}/{EVIL}-8", mode=0o100000)),
        ("setattrs (resync)", Mutation(Op.SETATTRS, OUT, mode=0o40777)),
        ("move (resync)", Mutation(Op.MOVE, keep, path2=f"{OUT}/{EVIL}-10")),
        ("relink (resync)", Mutation(Op.RELINK, f"{OUT}/keep", path2=f"/0/{EVIL}-11")),
        (
            "index ..",
            Mutation(
                Op.CREATE, f"/../srv/canary/{EVIL}-12", handle=1, mode=0o100644, flags=os.O_WRONLY
            ),
        ),
        ("index 9", Mutation(Op.MKDIR, f"/9/{EVIL}-13", mode=0o40755)),
        ("no leading slash", Mutation(Op.MKDIR, f"0/{EVIL}-14", mode=0o40755)),
    ]
    out = [
        Failing(
            name,
            _mut(1, m),
            r"invalid replicated path|path without a directory "
            r"index|no directory 9|outside|escap",
        )
        for name, m in cases
    ]
    out.append(
        Failing(
            "unknown control message",
            frames.pack(Control(1, {"evil": 1})),
            r"unknown control message",
        )
    )
    out.append(
        Failing(
            "hello for another module",
            frames.pack(Control(1, {"hello": 1, "module": "other", "node": "n1"})),
            r"hello for module 'other'",
        )
    )
    return out


def _frames(r: ProbeResult, kind: str) -> list[str]:
    return [f for f in r.received if f.startswith(kind)]


def _probe(
    c: LabCluster,
    spec: dict[str, object],
    *,
    done: Callable[[ProbeResult], bool] = lambda r: True,
    attempts: int = 20,
) -> ProbeResult:
    """One probe from n1; sent again (after a pause) while nobody listens — n2's receiver
    restarts when the probes make it leave SECOND for a while — or while ``done`` is false
    (the primary's reconnection replaced the probe's session too early)."""
    r = probe(c, "n1", spec)
    for _ in range(attempts - 1):
        if r.connected and done(r):
            break
        time.sleep(0.5 if r.connected else 1.0)
        r = probe(c, "n1", spec)
    return r


def _evil_names(c: LabCluster, node: str) -> list[str]:
    out = c.lab.exec(
        node, f"find /srv /etc /run /tmp /var /root -name '{EVIL}*' 2>/dev/null", check=False
    ).stdout
    return out.split()


def test_bad_peer_input_is_rejected_and_nothing_is_written(make_cluster: MakeCluster) -> None:
    c = make_cluster(replicated_spec())
    c.establish("demo", "n1")
    wait_in_sync(c, "n1", "n2")
    c.lab.exec("n1", f"mkdir -p {DATA}/keep && echo keep > {DATA}/keep/a")
    c.lab.exec(
        "n2",
        f"mkdir -p {CANARY}/dir && echo keep > {CANARY}/keep && "
        f"chmod 755 {CANARY} && chmod 644 {CANARY}/keep",
    )
    wait_in_sync(c, "n1", "n2")
    copy_before = snapshot(under(c, "n2"))
    canary_before = snapshot(host_path(c, "n2", CANARY))
    assert "/keep/a" in copy_before
    host = c.node_addresses("n2")["net1"]
    base = {"host": host, "port": PORT, "wait": 3.0}
    own = cluster_credentials()
    rogue = rogue_credentials(c, "n1")
    log_from = len(datapath_log(c, "n2"))
    problems: list[str] = []
    t0 = time.monotonic()

    # 1. no cluster certificate: refused at the handshake, nothing applied
    for name, creds, tls in (
        ("certificate of another CA", {"cert": rogue["cert"], "key": rogue["key"]}, True),
        ("no certificate", {}, True),
        ("plain TCP", {}, False),
    ):
        send = _create(1, f"{EVIL}-{name.replace(' ', '-')}")
        if not tls:
            send = b"GET / HTTP/1.0\r\n\r\n" + send
        r = _probe(c, {**base, **creds, "tls": tls, "send": send})
        if r.received or not r.ended:
            problems.append(f"{name}: not refused: {r}")
    for port_name, port in (("replication", PORT), ("rsync", RSYNC_PORT)):
        r = _probe(
            c,
            {
                **base,
                "port": port,
                "cert": rogue["cert"],
                "key": rogue["key"],
                "lines": port == RSYNC_PORT,
                "send": encode_request("0", ["--server", "-r", ".", "."]),
            },
        )
        if r.received or not r.ended:
            problems.append(f"{port_name} port, another CA: not refused: {r}")

    # 2. the cluster's certificate, rsync requests writing outside the root
    for args, root in (
        (["--server", "-r", ".", "../../../../../srv/canary"], "0"),
        (["--server", "-r", ".", "/srv/canary"], "0"),
        (["--server", "-r", "--temp-dir=/srv/canary", ".", "."], "0"),
        (["--server", "-r", ".", "."], "../etc"),
    ):
        r = _probe(
            c,
            {**base, **own, "port": RSYNC_PORT, "lines": True, "send": encode_request(root, args)},
        )
        reply = [json.loads(x) for x in r.received if x.startswith("{")]
        if not reply or reply[0].get("ok") is not False or not r.ended:
            problems.append(f"rsync {root} {args}: not refused: {r}")

    # 3. the cluster's certificate, bad frames: closed at once, nothing behind applied
    for case in CLOSING:
        marker = f"{EVIL}-{case.name.replace(' ', '-')}"
        r = _probe(c, {**base, **own, "send": case.send + _create(100, marker)})
        acked = [f for f in _frames(r, "Ack") if "seq=100" in f or "seq=101" in f]
        if r.handshake != "ok" or not r.ended or acked or _frames(r, "Failure"):
            problems.append(f"{case.name}: expected the connection closed, nothing applied: {r}")

    # 4. the cluster's certificate, frames the secondary must refuse to apply
    for fail in _escapes():
        # a short wait: the primary reconnects (replacing this session) after ~1 s; if it
        # replaced this one before the FAILURE came back, the probe is sent again
        spec = {**base, **own, "wait": 0.8, "send": fail.frame + _create(2, f"{EVIL}-after")}
        r = _probe(c, spec, done=lambda r: bool(_frames(r, "Failure")))
        failure = _frames(r, "Failure")
        if not failure or "seq=1," not in failure[0] or not re.search(fail.reason, failure[0]):
            problems.append(f"{fail.name}: expected a FAILURE of frame 1 ({fail.reason}): {r}")
        if any("Ack(seq=2" in f or "Ack(seq=3" in f for f in r.received):
            problems.append(f"{fail.name}: a frame after the refused one was applied: {r}")
        if not r.ended:
            problems.append(f"{fail.name}: the connection stayed open 0.8 s after the FAILURE")
    attack_s = time.monotonic() - t0

    # nothing written, inside the copy or outside it
    evil = _evil_names(c, "n2")
    if evil:
        problems.append(f"names written on n2 by the probes: {evil}")
    copy_after = snapshot(under(c, "n2"))
    if copy_after != copy_before:
        changed = sorted(set(copy_before.items()) ^ set(copy_after.items()))
        problems.append(f"n2's copy changed: {changed[:20]}")
    canary_after = snapshot(host_path(c, "n2", CANARY))
    if canary_after != canary_before:
        problems.append(f"{CANARY} on n2 changed: {canary_before} -> {canary_after}")

    # the secondary's data-path log says why, for each case
    log = datapath_log(c, "n2")[log_from:]
    expected = {
        "replication handshake refused (3 cases + the rsync-request probe)": (
            r"replication peer .* refused",
            4,
        ),
        "rsync handshake refused": (r"rsync peer .* refused", 1),
        "rsync request refused": (r"rsync request from n1 .* refused", 4),
        **{c_.name: (c_.log, 1) for c_ in CLOSING},
        **{f.name: (r"cannot apply frame 1: .*(" + f.reason + ")", 1) for f in _escapes()[-2:]},
        "path escapes": (
            r"cannot apply frame 1: .*(invalid replicated path|path without a "
            r"directory index|no directory 9)",
            len(_escapes()) - 2,
        ),
    }
    for what, (pattern, count) in expected.items():
        found = len(re.findall(pattern, log))
        if found < count:
            problems.append(
                f"n2's data-path log: {what}: {found} line(s) matching "
                f"{pattern!r}, expected at least {count}"
            )

    # the module recovers by itself: n2 back in sync, a later write replicates, verify
    t1 = time.monotonic()
    try:
        wait_in_sync(c, "n1", "n2", timeout=45)
    except AssertionError as exc:
        problems.append(f"the cluster did not recover after the probes: {str(exc)[:6000]}")
    recover_s = time.monotonic() - t1
    c.lab.exec("n1", f"echo later > {DATA}/keep/later && sync {DATA}/keep/later", check=False)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (under(c, "n2") / "keep/later").exists():
        time.sleep(0.2)
    if not (under(c, "n2") / "keep/later").exists():
        problems.append("a write on the primary after the probes did not reach n2 in 30 s")
    run = hamod_verify(c, "n1")
    if run.returncode != 0:
        problems.append(f"after the probes: {run}")
    assert not problems, (
        f"{len(problems)} problem(s) (probes {attack_s:.1f} s, recovery {recover_s:.1f} s):\n"
        + "\n".join(problems)
        + f"\n--- n2 data-path log during the probes:\n{log[-12000:]}\n"
        + c.diagnose("demo")
    )

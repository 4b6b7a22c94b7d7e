"""Micro-benchmark of the peer link on loopback: ``python -m hamod.replication.bench``.

Makes a throw-away cluster CA, starts a receiver on 127.0.0.1 and ships 8 KiB writes in
the given mode from 1 and 4 threads; prints round trips (acknowledged ships) per second.
``--disk`` applies them to a temporary directory instead of a recording fake.
"""

from __future__ import annotations

import argparse
import ipaddress
import tempfile
import threading
import time
from pathlib import Path

from hamod.adapters import pki
from hamod.datapath.mutation import Mutation, Op
from hamod.replication.applier import DirectoryApplier
from hamod.replication.conn import tls_connector
from hamod.replication.link import Mode, PeerLink
from hamod.replication.receiver import Applier, PeerReceiver


class _Null:
    def apply(self, mutation: Mutation, *, durable: bool) -> None:
        return None

    def flush(self) -> None:
        return None


def run(mode: Mode, threads: int, seconds: float, disk: bool) -> float:
    """Acknowledged 8 KiB writes per second."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ca = pki.create_ca("bench", days=1)
        files = pki.ca_files(ca, root / "tls")
        for node in ("n1", "n2"):
            cert = pki.issue_node_cert(ca, node, [ipaddress.ip_address("127.0.0.1")], days=1)
            files += pki.node_files(cert, root / "tls")
        pki.write_files(files, force=False)
        ca_cert = pki.ca_paths(root / "tls")[0]
        data_dir = root / "data"
        data_dir.mkdir()
        applier: Applier = DirectoryApplier(data_dir) if disk else _Null()
        server = pki.server_context(ca_cert, *pki.node_paths(root / "tls", "n2"))
        client = pki.client_context(ca_cert, *pki.node_paths(root / "tls", "n1"))
        with PeerReceiver(server, applier) as receiver:
            link = PeerLink(tls_connector(client, *receiver.address), mode=mode, timeout=10)
            link.connect()
            for t in range(threads):
                link.ship(Mutation(Op.CREATE, f"/f{t}", handle=t, mode=0o100644))
            payload = bytes(8192)
            counts = [0] * threads
            stop = time.monotonic() + seconds

            def worker(t: int) -> None:
                n = 0
                while time.monotonic() < stop:
                    off = (n % 1024) * 8192
                    link.ship(
                        Mutation(
                            Op.WRITE, f"/f{t}", handle=t, offset=off, length=8192, data=payload
                        )
                    )
                    n += 1
                counts[t] = n

            start = time.monotonic()
            workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            elapsed = time.monotonic() - start
            link.barrier()
            link.close()
        if isinstance(applier, DirectoryApplier):
            applier.close()
        return sum(counts) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=[m.value for m in Mode], default="sync")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--disk", action="store_true")
    args = parser.parse_args()
    for threads in (1, 4):
        rate = run(Mode(args.mode), threads, args.seconds, args.disk)
        where = "directory" if args.disk else "null applier"
        print(f"{args.mode} 8KiB writes, {threads} thread(s), {where}: {rate:,.0f} round trips/s")


if __name__ == "__main__":
    main()

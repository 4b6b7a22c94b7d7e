"""``hamod verify -m MOD`` in the daemon: both copies of every replicated directory
compared online (:mod:`hamod.verify`).

The local manifest is read underneath the mount (the data path's private view
``/run/hamod/dp/<m>/under/<i>``), the peer's is streamed from its API over mutual TLS
(``POST /api/v1/modules/<m>/manifest``). Differences are re-checked after a replication
barrier (``settle``), so writes in flight are not reported. The result is a stream of
JSON lines: ``{"progress": n, "dir": path}``, ``{"difference": ..., "text": ...}`` and
one ``{"report": ..., "dir": path}`` per directory, then ``{"done": true, "ok": bool}``.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from hamod.adapters.pki import client_context
from hamod.api.models import API_VERSION
from hamod.config.cluster import ClusterConfig
from hamod.errors import HamodError, PeerError, UsageError
from hamod.replication.dpconfig import DpConfig
from hamod.verify import Entry, manifest, verify

Settle = Callable[[], None]


def local_manifest(cfg: DpConfig, index: int, paths: Sequence[str] | None) -> Iterator[Entry]:
    """The manifest of directory ``index`` on this node, read underneath the mount."""
    if not 0 <= index < len(cfg.directories):
        raise UsageError(f"dir: {index} is not a directory of module {cfg.module}")
    root = cfg.under(index)
    if not root.is_dir():
        raise UsageError(f"dir: {root} is not available (is the data path running?)")
    return manifest(root, region_size=cfg.region_size, exclude=cfg.excludes[index], paths=paths)


def manifest_lines(cfg: DpConfig, index: int, paths: Sequence[str] | None) -> Iterator[bytes]:
    """What the manifest route streams: one JSON line per entry."""
    for entry in local_manifest(cfg, index, paths):
        yield entry.to_line()


class PeerManifest:
    """The peer's manifest of one directory, streamed from its API (blocking)."""

    def __init__(self, cfg: DpConfig, cluster: ClusterConfig, index: int) -> None:
        node = cluster.node(cfg.peer)
        if node is None:
            raise UsageError(f"{cfg.peer} is not in the cluster file")
        tls = cluster.tls
        ctx = client_context(Path(str(tls.ca)), Path(str(tls.cert)), Path(str(tls.key)))
        address = cfg.peer_address
        host = f"[{address}]" if ":" in address else address
        self._http = httpx.Client(
            base_url=f"https://{host}:{cluster.api_port}", verify=ctx,
            timeout=httpx.Timeout(10.0, read=300.0),
        )  # fmt: skip
        self._url = f"/api/{API_VERSION}/modules/{cfg.module}/manifest"
        self._ext = {"sni_hostname": cfg.peer}
        self._index = index
        self.peer = cfg.peer

    def __call__(self, paths: Sequence[str] | None) -> Iterator[Entry]:
        body = {"dir": self._index, "paths": None if paths is None else list(paths)}
        try:
            with self._http.stream("POST", self._url, json=body, extensions=self._ext) as ans:
                if ans.status_code != 200:
                    ans.read()
                    raise PeerError(f"{self.peer}: manifest: HTTP {ans.status_code}: {ans.text}")
                for line in ans.iter_lines():
                    if line:
                        yield Entry.from_line(line)
        except httpx.HTTPError as exc:
            raise PeerError(f"{self.peer}: manifest: {exc}") from exc

    def close(self) -> None:
        self._http.close()


def run_verify(
    cfg: DpConfig, cluster: ClusterConfig, settle: Settle, rounds: int = 3
) -> Iterator[str]:
    """Compare every directory of the module with the peer's copy (JSON lines, progress
    as it goes: the comparison runs in its own thread)."""
    ok = True
    for i, directory in enumerate(cfg.directories):
        out: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()

        def work(i: int = i, out: queue.SimpleQueue[tuple[str, Any]] = out) -> None:
            peer = PeerManifest(cfg, cluster, i)
            try:
                report = verify(
                    lambda paths: local_manifest(cfg, i, paths),
                    peer,
                    rounds=rounds,
                    settle=settle,
                    progress=lambda n: out.put(("progress", n)),
                )
                out.put(("report", report))
            except HamodError as exc:
                out.put(("error", exc))
            finally:
                peer.close()

        threading.Thread(target=work, name="hamod-verify", daemon=True).start()
        while True:
            kind, value = out.get()
            if kind == "progress":
                yield _line({"progress": value, "dir": str(directory)})
                continue
            if kind == "error":
                yield _line({"dir": str(directory), "error": str(value)})
                ok = False
                break
            for d in value.differences:
                yield _line({"dir": str(directory), "difference": d.to_json(),
                             "text": f"{directory}{d}"})  # fmt: skip
            ok = ok and value.ok
            yield _line({"dir": str(directory), "report": value.to_json()})
            break
    yield _line({"done": True, "ok": ok})


def _line(obj: dict[str, Any]) -> str:
    return json.dumps(obj) + "\n"

"""A small service whose health can be switched from outside, for the checker tests
(tests/acceptance/test_checkers.py) and benchmark (``python -m benchmarks.checkers``).

It speaks two protocols on one TCP port (stdlib only):

- **HTTP** (a request line starting with ``GET`` or ``HEAD``): ``/health`` answers the
  status written in the *health file* (``200`` when the file is missing or empty, e.g.
  ``500`` after ``echo 500 > FILE``; ``hang`` = never answer), any other path answers 200
  with the node's name;
- **the outage probe's line protocol** (:mod:`hamod.testing.outage`: any other line):
  the node's name, so the client probe of the lab tests can watch it.

::

    python -m hamod.testing.checked_service serve --port 7070 --health-file /run/x.health

In a :class:`~hamod.testing.cluster.LabCluster`, :func:`install` replaces a module's
``start_prim`` so that it starts this service (instead of the trivial one) with the
health file :func:`health_file`; journaling, pid file and ``stop_prim`` are unchanged
(:func:`hamod.testing.cluster_files.render_script`).
"""

from __future__ import annotations

import argparse
import socket
import socketserver
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hamod.testing.cluster_files import LAB_RUN_DIR, ModuleSpec, render_script

if TYPE_CHECKING:
    from hamod.testing.cluster import LabCluster

__all__ = ["health_file", "install", "render_checked_script", "serve", "set_health"]

_MAX_LINE = 8192
_REASONS = {200: "OK", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"}
_TRIVIAL = "-m hamod.testing.outage serve"


def health_file(name: str) -> str:
    """The health file of the service named ``name`` (a module, or a dependency) on a
    lab node (``/run``: per node, lost at power-off)."""
    return f"{LAB_RUN_DIR}/{name}.health"


def _health(path: Path | None) -> int | None:
    """The status /health answers now (None: hang)."""
    if path is None:
        return 200
    try:
        text = path.read_text().strip()
    except OSError:
        return 200
    if not text:
        return 200
    if text == "hang":
        return None
    try:
        return int(text)
    except ValueError:
        return 500


class _Handler(socketserver.StreamRequestHandler):
    timeout = 2.0

    def handle(self) -> None:
        try:
            line = self.rfile.readline(_MAX_LINE)
        except OSError:
            return
        name: str = getattr(self.server, "node_name", "")
        try:
            if line.startswith((b"GET ", b"HEAD ")):
                self._http(line, name)
            else:
                self.wfile.write(name.encode() + b"\n")
        except OSError:
            pass

    def _http(self, line: bytes, name: str) -> None:
        while True:  # the headers, up to the empty line
            header = self.rfile.readline(_MAX_LINE)
            if header in (b"\r\n", b"\n", b""):
                break
        parts = line.decode("latin-1").split()
        path = parts[1] if len(parts) > 1 else "/"
        status: int | None = 200
        body = name
        if path.split("?", 1)[0] == "/health":
            status = _health(getattr(self.server, "health_path", None))
            body = "ok" if status == 200 else "unhealthy"
        if status is None:  # "hang": hold the connection without answering
            time.sleep(60)
            return
        data = (body + "\n").encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(data)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        self.wfile.write(head if line.startswith(b"HEAD ") else head + data)


def serve(
    port: int,
    *,
    health: Path | None = None,
    name: str | None = None,
    host: str = "0.0.0.0",
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve on ``host:port`` until SIGTERM/SIGINT; ``ready`` is called once listening."""
    from hamod.testing.outage import run_server

    attrs = {"node_name": name or socket.gethostname(), "health_path": health}
    run_server(_Handler, host, port, attrs, ready,
               lambda bound: f"listening on {host}:{bound} (health file {health})")  # fmt: skip


# -- in a lab cluster -----------------------------------------------------------------------


def render_checked_script(script: str, spec: ModuleSpec, python: str | None = None) -> str:
    """``script`` of the lab module ``spec`` with this service in place of the trivial
    one: ``start_prim`` starts ``checked_service serve --health-file <health_file>``."""
    text = render_script(script, spec, python)
    if script != "start_prim" or not spec.service:
        return text
    if _TRIVIAL not in text:
        raise ValueError(f"start_prim of {spec.name} does not start {_TRIVIAL!r}: {text}")
    ours = f"-m hamod.testing.checked_service serve --health-file {health_file(spec.name)}"
    return text.replace(_TRIVIAL, ours)


def install(cluster: LabCluster, module: str = "demo", nodes: Sequence[str] | None = None) -> None:
    """Make ``module``'s ``start_prim`` start this service on ``nodes`` (default all);
    do it before the module starts."""
    from hamod.testing.cluster import PYTHON
    from hamod.testing.cluster_files import ETC

    spec = cluster.modules[module]
    path = f"{ETC}/modules/{module}/scripts/start_prim"
    text = render_checked_script("start_prim", spec, PYTHON)
    for node in nodes or cluster.nodes:
        cluster.write_files(node, {path: ("755", text)})


def set_health(cluster: LabCluster, node: str, name: str, status: int | str | None) -> None:
    """Make ``/health`` of the service ``name`` on ``node`` answer ``status`` (None:
    200 again, the file removed; ``"hang"``: no answer)."""
    path = health_file(name)
    if status is None:
        cluster.lab.exec(node, ["rm", "-f", path])
    else:
        cluster.write_files(node, {path: ("644", f"{status}\n")})


# -- command line ---------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hamod.testing.checked_service",
        description="A service whose /health answers the status in a file (checker tests).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve HTTP and the outage probe's protocol")
    s.add_argument("--port", type=int, default=7070)
    s.add_argument("--host", default="0.0.0.0")
    s.add_argument("--name", default=None, help="answer this instead of the hostname")
    s.add_argument("--health-file", type=Path, default=None,
                   help="its content is /health's status (missing: 200; 'hang')")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def ready(line: str) -> None:
        print(line, flush=True)

    serve(args.port, health=args.health_file, name=args.name, host=args.host, ready=ready)
    return 0


if __name__ == "__main__":
    sys.exit(main())

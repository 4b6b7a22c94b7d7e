#!/usr/bin/env python3
"""hamod-kvstore: a tiny HTTP key-value store, the demo application of hamod's `kvstore`
module template (roles/hamod_module). Python 3 standard library only.

Every value is a file of DATA_DIR (the module's replicated directory), written durably:
a temporary file, fsync, rename, fsync of the directory. So a PUT that answered 201 is
on the primary's disk and, through hamod's replication, on the secondary's too.

    PUT    /kv/KEY   body = value        -> 201 {"key": KEY, "node": NODE}
    GET    /kv/KEY                       -> 200 value | 404
    DELETE /kv/KEY                       -> 204 | 404
    GET    /kv                           -> 200 {"keys": [...]}
    GET    /health                       -> 200 {"status": "ok", "node": NODE}
    GET    /                             -> 200 NODE (the node serving: which one holds the VIP)

Run: hamod-kvstore.py --dir /srv/kv --port 8080 [--host 0.0.0.0] [--node NAME]
     [--pidfile FILE]. SIGTERM stops it cleanly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_VALUE = 16 * 1024 * 1024


def write_durably(directory: str, key: str, value: bytes) -> None:
    """``directory/key`` = ``value``, atomically and durably."""
    fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(value)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(directory, key))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    sync_dir(directory)


def sync_dir(directory: str) -> None:
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class Handler(BaseHTTPRequestHandler):
    server_version = "hamod-kvstore/1"
    directory = "/srv/kv"
    node = socket.gethostname()

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def _send(self, status: int, body: bytes = b"", ctype: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, doc: object) -> None:
        self._send(status, (json.dumps(doc) + "\n").encode(), "application/json")

    def _key(self) -> str | None:
        path = self.path.split("?", 1)[0]
        if not path.startswith("/kv/"):
            return None
        key = path[len("/kv/") :]
        return key if KEY_RE.match(key) else None

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._send(200, (self.node + "\n").encode())
        elif path == "/health":
            ok = os.access(self.directory, os.W_OK)
            self._json(
                200 if ok else 503, {"status": "ok" if ok else "read-only", "node": self.node}
            )
        elif path in ("/kv", "/kv/"):
            keys = sorted(n for n in os.listdir(self.directory) if KEY_RE.match(n))
            self._json(200, {"keys": keys, "node": self.node})
        else:
            key = self._key()
            if key is None:
                self._json(404, {"error": "no such path"})
                return
            try:
                with open(os.path.join(self.directory, key), "rb") as f:
                    self._send(200, f.read(), "application/octet-stream")
            except FileNotFoundError:
                self._json(404, {"error": f"no key {key}"})

    do_HEAD = do_GET

    def do_PUT(self) -> None:
        key = self._key()
        if key is None:
            self._json(400, {"error": "PUT /kv/KEY (KEY: letters, digits, . _ -)"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_VALUE:
            self._json(413, {"error": f"value larger than {MAX_VALUE} bytes"})
            return
        value = self.rfile.read(length)
        try:
            write_durably(self.directory, key, value)
        except OSError as exc:
            self._json(503, {"error": f"cannot write {key}: {exc.strerror}"})
            return
        self._json(201, {"key": key, "node": self.node})

    do_POST = do_PUT

    def do_DELETE(self) -> None:
        key = self._key()
        if key is None:
            self._json(400, {"error": "DELETE /kv/KEY"})
            return
        try:
            os.unlink(os.path.join(self.directory, key))
            sync_dir(self.directory)
        except FileNotFoundError:
            self._json(404, {"error": f"no key {key}"})
            return
        except OSError as exc:
            self._json(503, {"error": f"cannot delete {key}: {exc.strerror}"})
            return
        self._send(204)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="hamod's demo key-value store")
    p.add_argument("--dir", required=True, help="data directory (replicated by hamod)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--node", default=None, help="name answered on / (default: host name)")
    p.add_argument("--pidfile", default=None)
    args = p.parse_args(argv)
    if not os.path.isdir(args.dir):
        print(f"hamod-kvstore: {args.dir}: not a directory", file=sys.stderr)
        return 2
    Handler.directory = args.dir
    if args.node:
        Handler.node = args.node
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    ThreadingHTTPServer.address_family = family
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write(f"{os.getpid()}\n")

    def stop(_sig: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"hamod-kvstore: listening on {args.host}:{args.port}, data in {args.dir}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if args.pidfile:
            with contextlib.suppress(OSError):
                os.unlink(args.pidfile)
    return 0


if __name__ == "__main__":
    sys.exit(main())

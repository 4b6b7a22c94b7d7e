"""The "remote shell" hamod gives rsync (``rsync -e``): no shell, no SSH, no relay.

rsync starts it as ``python -I -S rsync_rsh.py --fd N <host> rsync --server ...`` with its
stdin and stdout connected to rsync. Descriptor N is one end of a Unix socket pair whose
other end the hamod process calling :func:`~hamod.replication.rsync.rsync_push` holds
(inherited through rsync). This helper sends that process, in one message, the remote
command (JSON list) and its own stdin and stdout (``SCM_RIGHTS``), points its stdin and
stdout at /dev/null so that only the hamod process holds rsync's ends, then waits for
one status byte: its exit status, which rsync reports as the remote shell's (EOF: 255).
The hamod process relays rsync's bytes over the authenticated TLS connection itself.

Standard library only, run by path with ``-I -S`` so that it starts in a few ms and
imports nothing from the environment.
"""

from __future__ import annotations

import json
import os
import socket
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] != "--fd" or not argv[1].isdigit():
        print("usage: rsync_rsh.py --fd N HOST COMMAND...", file=sys.stderr)
        return 2
    try:
        ctrl = socket.socket(fileno=int(argv[1]))
    except OSError as exc:
        print(f"hamod rsync transport: bad control descriptor: {exc}", file=sys.stderr)
        return 255
    command = argv[2:]
    payload = json.dumps(command).encode("utf-8", "surrogateescape")
    try:
        socket.send_fds(ctrl, [payload], [0, 1])
    except OSError as exc:
        print(f"hamod rsync transport: cannot reach the hamod process: {exc}", file=sys.stderr)
        return 255
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    try:
        status = ctrl.recv(1)
    except OSError:
        status = b""
    return status[0] if status else 255


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The one request line of the rsync transport, and the check of rsync's server arguments.

A client opens a TLS connection to :class:`~hamod.replication.rsync_server.RsyncServer`
and sends one line, ``{"v":1,"root":"<name>","args":["--server",...]}`` (JSON, at most
:data:`MAX_REQUEST` bytes with its newline). The server answers one line,
``{"ok":true}`` before the rsync stream starts, or ``{"ok":false,"error":"..."}`` and
closes. Pure code: no I/O.

The arguments are exactly what an rsync client passes to its remote shell for a push
(``rsync --server -lHogDtpAXrSe.LsfxCIvu --delete ... . .``, minus the program name).
:func:`check_server_args` accepts a small allow-list of options that only change *how*
the receiver writes into the root, and refuses anything that would make it read
(``--sender``), write elsewhere (absolute or ``..`` destinations, ``--temp-dir``,
``--log-file``, ``--backup-dir``, ``--*-dest``, ``-K``), take more arguments from the
stream (``-s``, secluded args) or overwrite files in place (``--inplace``, ``--append``:
a hard-linked aside copy must stay intact).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Final

VERSION: Final = 1
MAX_REQUEST: Final = 64 * 1024
"""Largest request line, newline included."""
MAX_REPLY: Final = 4096

# Short options rsync may put in the cluster it sends to its server for a push. Letters
# that would read or write outside the root or bypass this check are absent: b (backup),
# K (keep-dirlinks: follows symlinks on the receiver), s (secluded args: the real
# arguments come later through the stream), L/k (sender side only), T and e as options.
_SHORT_OK: Final = frozenset("lHogDtpAXrSRczdxWvqnIOJUEm")
_SHORT_RE: Final = re.compile(r"-(?P<flags>[A-Za-df-z]*)(?P<caps>e[0-9]*\.[A-Za-z]*)?")
_WINDOW_RE: Final = re.compile(r"-@-?[0-9]{1,9}")  # --modify-window, as rsync passes it
_FLAG_OK: Final = frozenset(
    {
        "--delete",
        "--delete-before",
        "--delete-during",
        "--delete-delay",
        "--delete-after",
        "--delete-missing-args",
        "--ignore-missing-args",
        "--numeric-ids",
        "--force",
        "--fsync",
        "--size-only",
        "--ignore-times",
        "--ignore-existing",
        "--existing",
        "--super",
        "--no-implied-dirs",
    }
)
_VALUED_OK: Final = {
    "--timeout": re.compile(r"[0-9]{1,9}"),
    "--bwlimit": re.compile(r"[0-9]{1,12}(\.[0-9]+)?[bBkKmMgG]?"),
    "--info": re.compile(r"[A-Za-z0-9,]{1,200}"),
    "--max-delete": re.compile(r"-?[0-9]{1,12}"),
    "--modify-window": re.compile(r"-?[0-9]{1,9}"),
    "--checksum-choice": re.compile(r"[a-z0-9,]{1,40}"),
    "--compress-choice": re.compile(r"[a-z0-9]{1,20}"),
    "--compress-level": re.compile(r"-?[0-9]{1,3}"),
    "--block-size": re.compile(r"[0-9]{1,12}"),
}
_ROOT_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class RequestError(ValueError):
    """A request the server refuses; the message is sent back to the client."""


def check_root_name(name: str) -> str:
    """``name`` if it can name a root (letters, digits, ``.``, ``_``, ``-``), else
    ValueError."""
    if not _ROOT_RE.fullmatch(name):
        raise ValueError(f"invalid rsync root name {name!r}: use 1-64 letters, digits, . _ -")
    return name


def encode_request(root: str, args: Sequence[str]) -> bytes:
    """The request line for ``root`` and rsync's server ``args``."""
    line = json.dumps({"v": VERSION, "root": root, "args": list(args)}, separators=(",", ":"))
    data = line.encode("utf-8", "surrogateescape") + b"\n"
    if len(data) > MAX_REQUEST:
        raise ValueError(f"rsync request of {len(data)} bytes exceeds {MAX_REQUEST}")
    return data


def parse_request(line: bytes) -> tuple[str, list[str]]:
    """(root name, args) of a request line (without its newline); RequestError if the
    line is not exactly a version-1 request. The arguments are not checked here."""
    try:
        obj = json.loads(line.decode("utf-8", "surrogateescape"))
    except (UnicodeDecodeError, ValueError):
        raise RequestError("request is not a JSON line") from None
    if not isinstance(obj, dict) or set(obj) != {"v", "root", "args"}:
        raise RequestError('request must be an object with exactly "v", "root" and "args"')
    if obj["v"] != VERSION:
        raise RequestError(f"unsupported request version {obj['v']!r} (this server: {VERSION})")
    root, args = obj["root"], obj["args"]
    if not isinstance(root, str):
        raise RequestError('"root" must be a string')
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise RequestError('"args" must be a list of strings')
    return root, list(args)


def encode_reply(error: str | None) -> bytes:
    """``{"ok":true}`` or the refusal carrying ``error`` (shortened to fit)."""
    obj: dict[str, object] = {"ok": True} if error is None else {"ok": False, "error": error}
    data = json.dumps(obj, separators=(",", ":")).encode() + b"\n"
    if len(data) > MAX_REPLY and error is not None:
        return encode_reply(error[: MAX_REPLY // 2] + "...")
    return data


def parse_reply(line: bytes) -> str | None:
    """None for an acceptance, else the server's reason (RequestError if malformed)."""
    try:
        obj = json.loads(line.decode("utf-8", "replace"))
    except ValueError:
        raise RequestError(f"malformed reply from the rsync server: {line[:200]!r}") from None
    if isinstance(obj, dict) and obj.get("ok") is True:
        return None
    if isinstance(obj, dict) and obj.get("ok") is False and isinstance(obj.get("error"), str):
        return str(obj["error"])
    raise RequestError(f"malformed reply from the rsync server: {line[:200]!r}")


def check_server_args(args: Sequence[str]) -> list[str]:
    """``args`` when they are a push that only writes inside the root, else RequestError
    naming the first offending argument. Expected shape:
    ``--server [options] . <destination>`` with the destination ``.`` or a relative path
    without ``..``."""
    if not args or args[0] != "--server":
        raise RequestError('the first argument must be "--server"')
    if "--sender" in args:
        raise RequestError("--sender refused: this server only receives (pushes), it never sends")
    try:
        dot = args.index(".", 1)
    except ValueError:
        raise RequestError('no "." argument before the destination') from None
    for arg in args[1:dot]:
        _check_option(arg)
    rest = args[dot + 1 :]
    if len(rest) != 1:
        raise RequestError(f"expected exactly one destination after '.', got {len(rest)}")
    check_destination(rest[0])
    return list(args)


def check_destination(path: str) -> str:
    """``path`` if it is ``.`` or a relative path inside the root, else RequestError."""
    if path == ".":
        return path
    if not path or path.startswith(("/", "-", "~")) or any(c in path for c in "\0\n\r"):
        raise RequestError(f"destination {path!r} must be '.' or a relative path in the root")
    parts = path.rstrip("/").split("/")
    if any(p in ("", "..") for p in parts):
        raise RequestError(f"destination {path!r} must not contain '..' or empty components")
    return path


def _check_option(arg: str) -> None:
    if arg.startswith("--"):
        name, eq, value = arg.partition("=")
        if not eq and arg in _FLAG_OK:
            return
        pattern = _VALUED_OK.get(name)
        if eq and pattern is not None and pattern.fullmatch(value):
            return
        raise RequestError(f"option {arg!r} is not accepted by the hamod rsync server")
    if _WINDOW_RE.fullmatch(arg):
        return
    short = _SHORT_RE.fullmatch(arg)
    if short is None or (not short["flags"] and not short["caps"]):
        raise RequestError(f"argument {arg!r} is not accepted by the hamod rsync server")
    bad = sorted(set(short["flags"]) - _SHORT_OK)
    if bad:
        raise RequestError(
            f"short option(s) {''.join(bad)!r} in {arg!r} not accepted by the hamod rsync server"
        )

#!/usr/bin/env python3
"""Build (once, cached) the wheelhouse that hamod's nodes install from with
``pip install --no-index``: the hamod wheel and every dependency, plus a requirements file
pinning them, packed into one deterministic tar. Runs on the Ansible controller (the
hamod_node role calls it with ``delegate_to: localhost``; the tests call it too).

    hamod-wheelhouse.py --source /path/to/hamod --cache DIR [--constraints FILE]
                        [--python PYTHON] [--keep 3]

The cache key is a digest of the interpreter's version and platform, and of every file
that makes the wheels (pyproject.toml, the constraints, hamod/**): an unchanged tree
reuses ``DIR/<key>/`` at once; a changed one builds a new directory (concurrent builders
wait on a lock). Prints one JSON object: ``key``, ``dir``, ``archive`` (the tar),
``requirements`` (pinned names), ``built`` (true when this call built it).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

SKIP_DIRS = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
WHEEL_RE = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


def source_files(source: Path, constraints: Path | None) -> list[Path]:
    """The files whose content decides the wheels."""
    files = [source / "pyproject.toml"]
    if constraints is not None:
        files.append(constraints)
    for root, dirs, names in os.walk(source / "hamod"):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        files += [Path(root) / n for n in sorted(names) if not n.endswith((".pyc", ".pyo"))]
    return files


def cache_key(python: str, source: Path, constraints: Path | None) -> str:
    """Digest of the target interpreter and of the sources (names and contents)."""
    probe = "import sys, sysconfig; print(sys.version_info[:2], sysconfig.get_platform())"
    tag = subprocess.run(
        [python, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    h = hashlib.sha256(tag.encode())
    for f in source_files(source, constraints):
        h.update(str(f.relative_to(source) if f.is_relative_to(source) else f.name).encode())
        h.update(b"\0")
        h.update(f.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


def build(python: str, source: Path, constraints: Path | None, out: Path) -> list[str]:
    """``pip wheel`` the project and its dependencies into ``out``; returns the pins."""
    out.mkdir(parents=True)
    cmd = [
        python,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--disable-pip-version-check",
        "--wheel-dir",
        str(out),
    ]
    if constraints is not None:
        cmd += ["--constraint", str(constraints)]
    cmd.append(str(source))
    env = dict(os.environ, SOURCE_DATE_EPOCH="315532800")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        raise SystemExit(f"hamod-wheelhouse: pip wheel failed:\n{res.stdout}{res.stderr}")
    pins = []
    for whl in sorted(out.glob("*.whl")):
        m = WHEEL_RE.match(whl.name)
        if m is None:
            raise SystemExit(f"hamod-wheelhouse: unexpected wheel name {whl.name}")
        pins.append(f"{m['name'].replace('_', '-')}=={m['version']}")
    (out / "requirements.txt").write_text("".join(p + "\n" for p in pins))
    pack(out, out / "wheelhouse.tar")
    return pins


def pack(directory: Path, archive: Path) -> None:
    """A deterministic tar of the wheels and requirements.txt (sorted, no times, no
    owners): the same wheels give the same bytes, so copying it is idempotent."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for f in sorted(directory.iterdir()):
            if f.name == archive.name or not f.is_file():
                continue
            info = tarfile.TarInfo(f.name)
            info.size = f.stat().st_size
            info.mode = 0o644
            info.mtime = 0
            with f.open("rb") as data:
                tar.addfile(info, data)
    tmp = archive.with_suffix(".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(archive)


def prune(cache: Path, keep: int, current: str) -> None:
    """Remove all but the ``keep`` most recent wheelhouses (never ``current``)."""
    dirs = sorted(
        (d for d in cache.iterdir() if d.is_dir() and (d / "requirements.txt").exists()),
        key=lambda d: d.stat().st_mtime,
        reverse=True,
    )
    for d in dirs[keep:]:
        if d.name != current:
            shutil.rmtree(d, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", required=True, type=Path, help="hamod's source tree")
    p.add_argument("--cache", required=True, type=Path, help="where wheelhouses are kept")
    p.add_argument(
        "--constraints",
        type=Path,
        default=None,
        help="pip constraints (default SOURCE/requirements/constraints.txt)",
    )
    p.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter matching the nodes' Python (default: this one)",
    )
    p.add_argument("--keep", type=int, default=3, help="wheelhouses kept in the cache")
    args = p.parse_args(argv)
    source = args.source.resolve()
    if not (source / "pyproject.toml").is_file():
        raise SystemExit(f"hamod-wheelhouse: {source}: no pyproject.toml (hamod_node_source)")
    constraints = args.constraints
    if constraints is None and (source / "requirements" / "constraints.txt").is_file():
        constraints = source / "requirements" / "constraints.txt"
    args.cache = args.cache.resolve()
    args.cache.mkdir(parents=True, exist_ok=True)
    key = cache_key(args.python, source, constraints)
    target = args.cache / key
    built = False
    with open(args.cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "wheelhouse.tar").is_file():
            tmp = args.cache / f".{key}.{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            build(args.python, source, constraints, tmp)
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
            built = True
            prune(args.cache, args.keep, key)
    pins = (target / "requirements.txt").read_text().split()
    print(
        json.dumps(
            {
                "key": key,
                "dir": str(target),
                "archive": str(target / "wheelhouse.tar"),
                "requirements": pins,
                "built": built,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

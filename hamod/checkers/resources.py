"""The resource store: named up/down values set by ``hamod set -r NAME -v up|down``.

One small file per resource in a directory (``<dir>/<name>``), written atomically (a
temporary file in the same directory, fsync, rename), so a reader sees the old value or
the new one, never half of one. Custom checkers without a program read their resource
``custom.<name>`` from here.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Final, Literal

from hamod.errors import AdapterError, UsageError

__all__ = ["RESOURCE_VALUES", "ResourceStore", "ResourceValue"]

ResourceValue = Literal["up", "down"]
RESOURCE_VALUES: Final = ("up", "down")
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def _check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name) or ".." in name:
        raise UsageError(f"bad resource name {name!r}: letters, digits, '_', '.', '-'")
    return name


class ResourceStore:
    """Resources of one module, each a file in ``directory`` (created on first set)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def get(self, name: str) -> ResourceValue | None:
        """The value of ``name``, or None if it was never set."""
        path = self.directory / _check_name(name)
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise AdapterError(f"cannot read resource {name} ({path}): {exc}") from exc
        if text == "up":
            return "up"
        if text == "down":
            return "down"
        raise AdapterError(f"resource {name} ({path}) holds {text!r}, not up or down")

    def set(self, name: str, value: str) -> None:
        """Set ``name`` to ``value`` (up or down), atomically."""
        _check_name(name)
        if value not in RESOURCE_VALUES:
            raise UsageError(f"bad value {value!r} for resource {name}: expected up or down")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=self.directory)
            try:
                with os.fdopen(fd, "w", encoding="ascii") as out:
                    out.write(value + "\n")
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.directory / name)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise AdapterError(f"cannot set resource {name} in {self.directory}: {exc}") from exc

    def names(self) -> tuple[str, ...]:
        """Every resource set so far, sorted."""
        if not self.directory.is_dir():
            return ()
        return tuple(sorted(p.name for p in self.directory.iterdir() if not p.name.startswith(".")))

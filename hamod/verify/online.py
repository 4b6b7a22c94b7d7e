"""Online verify: compare both copies while the application keeps writing.

Owns the re-check rounds and the report. A full comparison first; then, for the paths
that differ only, up to ``rounds`` times: ``settle()`` (the caller makes it a
replication barrier, so everything written before it is on the peer), fetch those paths
again from both sides and compare them again. A difference is reported only if it is
found in the full pass and in every round (same path, kind, attribute name and offset):
a write in flight during the full pass shows once and is gone after the barrier, a real
divergence stays. A file written without pause during every round can still show;
``verify`` at a quieter time settles it.

Both sides are callables ``(paths | None) -> entries``: ``None`` for the whole tree, else
those paths only (:func:`hamod.verify.manifest` locally; the peer's manifest streamed as
JSON lines over the API).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from hamod.errors import PeerError
from hamod.verify.compare import Comparison, Difference, Field
from hamod.verify.entry import Entry, path_key

__all__ = ["Report", "Source", "exit_code", "format_report", "verify"]

Source = Callable[[Sequence[str] | None], Iterable[Entry]]


@dataclass(frozen=True)
class Report:
    """Outcome of a verify.

    ``entries``: names compared in the full pass (on either side); ``bytes_hashed``:
    file bytes covered by digests, both sides, all rounds; ``rounds``: re-check rounds
    run; ``transient``: differences of the full pass gone in a re-check.
    """

    differences: tuple[Difference, ...]
    entries: int
    bytes_hashed: int
    rounds: int = 0
    transient: int = 0

    @property
    def ok(self) -> bool:
        """No difference."""
        return not self.differences

    def to_json(self) -> dict[str, object]:
        """A JSON-able dict (for the API)."""
        return {
            "ok": self.ok,
            "entries": self.entries,
            "bytes_hashed": self.bytes_hashed,
            "rounds": self.rounds,
            "transient": self.transient,
            "differences": [d.to_json() for d in self.differences],
        }

    @classmethod
    def from_json(cls, obj: object) -> Report:
        """The report of a :meth:`to_json` dict (:class:`PeerError` if malformed)."""
        if not isinstance(obj, dict) or not isinstance(obj.get("differences"), list):
            raise PeerError("verify report: expected an object with a 'differences' list")
        counts: dict[str, int] = {}
        for key in ("entries", "bytes_hashed", "rounds", "transient"):
            value = obj.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise PeerError(f"verify report: field {key!r}: expected a count (got {value!r})")
            counts[key] = value
        diffs = tuple(Difference.from_json(d) for d in obj["differences"])
        return cls(differences=diffs, **counts)


def verify(
    local: Source,
    remote: Source,
    *,
    rounds: int = 3,
    settle: Callable[[], None] = lambda: None,
    progress: Callable[[int], None] | None = None,
    mtime: bool = False,
) -> Report:
    """Compare ``local(None)`` with ``remote(None)``, then re-check what differs (see
    the module docstring). ``progress`` gets the running count of names compared during
    the full pass (every :attr:`Comparison.PROGRESS_EVERY` names and at its end);
    ``mtime`` compares regular file mtimes too (see :mod:`hamod.verify.compare`)."""
    full = Comparison(mtime=mtime, progress=progress)
    found = list(full.differences(local(None), remote(None)))
    hashed = full.bytes_hashed
    current = {d.key: d for d in found}
    done = 0
    while current and done < rounds:
        settle()
        paths = sorted({d.path for d in current.values()}, key=path_key)
        again = Comparison(mtime=mtime)
        seen = {d.key: d for d in again.differences(local(paths), remote(paths))}
        hashed += again.bytes_hashed
        current = {k: seen[k] for k in current if k in seen}
        done += 1
    return Report(
        differences=tuple(sorted(current.values(), key=Difference.sort_key)),
        entries=full.entries,
        bytes_hashed=hashed,
        rounds=done,
        transient=len(found) - len(current),
    )


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _lines(differences: Sequence[Difference]) -> list[str]:
    """One line per difference; a run of consecutive differing regions of one file is
    one line."""
    out: list[str] = []
    i = 0
    while i < len(differences):
        d = differences[i]
        j = i + 1
        if d.field is Field.CONTENT and d.region is not None:
            while j < len(differences):
                n = differences[j]
                if n.field is not Field.CONTENT or n.path != d.path or n.region != d.region + j - i:
                    break
                j += 1
        if j - i > 1:
            last = differences[j - 1]
            out.append(
                f"{d.path}: content differs in regions {d.region}-{last.region} "
                f"(at offsets {d.offset} to {last.offset})"
            )
        else:
            out.append(str(d))
        i = j
    return out


def format_report(report: Report) -> list[str]:
    """The lines the CLI prints: the differences, then one summary line."""
    count = len(report.differences)
    verdict = "no difference" if report.ok else f"{count} difference{'s' * (count != 1)}"
    summary = (
        f"verify: {report.entries} entries compared, {_size(report.bytes_hashed)} hashed: {verdict}"
    )
    if report.transient:
        summary += (
            f" ({report.transient} more went away when re-checked, {report.rounds} "
            f"round{'s' * (report.rounds != 1)})"
        )
    return [*_lines(report.differences), summary]


def exit_code(report: Report) -> int:
    """The exit status of ``verify``: 0 when both copies are equal, 1 otherwise."""
    return 0 if report.ok else 1

"""verify(): re-checks after a barrier drop what was in flight and keep what persists;
the report, its JSON form, its text and the exit status."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from hamod.verify import Difference, Entry, Field, Kind, Report, exit_code, format_report, verify


def _f(path: str, mode: int = 0o644, digest: bytes = b"\1" * 16) -> Entry:
    return Entry(path, Kind.FILE, mode, 0, 0, size=10, region_size=10, digests=digest)


ROOT = Entry("/", Kind.DIR, 0o755, 0, 0)
TREE = [ROOT, _f("/a"), _f("/b"), _f("/c")]


class Side:
    """A side whose answers change over time: ``answers[n]`` is the tree at call n (the
    last one stays); records what was asked."""

    def __init__(self, *answers: list[Entry]) -> None:
        self.answers = answers
        self.asked: list[Sequence[str] | None] = []

    def __call__(self, paths: Sequence[str] | None) -> Iterable[Entry]:
        tree = self.answers[min(len(self.asked), len(self.answers) - 1)]
        self.asked.append(None if paths is None else list(paths))
        return [e for e in tree if paths is None or e.path in paths]


def test_equal_copies_need_no_recheck() -> None:
    settled: list[int] = []
    report = verify(Side(TREE), Side(TREE), settle=lambda: settled.append(1))
    assert report.ok and report.rounds == 0 and settled == []
    assert report.entries == 4 and report.bytes_hashed == 60
    assert exit_code(report) == 0


def test_a_transient_difference_converges_and_is_not_reported() -> None:
    in_flight = [ROOT, _f("/a"), _f("/b", digest=b"\2" * 16)]  # /b not yet written, /c late
    local, remote = Side(TREE), Side(in_flight, TREE)
    settled: list[int] = []
    report = verify(local, remote, settle=lambda: settled.append(1))
    assert report.ok and report.transient == 2 and report.rounds == 1
    assert settled == [1]
    assert remote.asked == [None, ["/b", "/c"]] and local.asked == [None, ["/b", "/c"]]
    assert exit_code(report) == 0


def test_a_persistent_difference_is_reported_after_every_round() -> None:
    changed = [ROOT, _f("/a", mode=0o600), _f("/b"), _f("/c")]
    settled: list[int] = []
    report = verify(Side(TREE), Side(changed), rounds=3, settle=lambda: settled.append(1))
    assert not report.ok and report.rounds == 3 and len(settled) == 3
    assert [str(d) for d in report.differences] == ["/a: mode 0644 != 0600"]
    assert exit_code(report) == 1


def test_only_differences_found_in_every_round_are_reported() -> None:
    first = [ROOT, _f("/a", mode=0o600), _f("/b", mode=0o600), _f("/c")]
    # /a converges only in the last round, /b stays, /c differs only in a re-check
    second = [ROOT, _f("/a", mode=0o600), _f("/b", mode=0o600), _f("/c", mode=0)]
    third = [ROOT, _f("/a"), _f("/b", mode=0o600), _f("/c", mode=0)]
    report = verify(Side(TREE), Side(first, second, third), rounds=2)
    assert [d.path for d in report.differences] == ["/b"]
    assert report.transient == 1 and report.rounds == 2


def test_no_rounds_reports_the_full_pass() -> None:
    settled: list[int] = []
    changed = [ROOT, _f("/a", mode=0o600)]
    report = verify(Side(TREE), Side(changed), rounds=0, settle=lambda: settled.append(1))
    assert settled == []
    assert [(d.path, d.field) for d in report.differences] == [
        ("/a", Field.MODE),
        ("/b", Field.MISSING),
        ("/c", Field.MISSING),
    ]


def test_progress_counts_names_compared() -> None:
    many = [ROOT, *(_f(f"/f{i:05d}") for i in range(2500))]
    seen: list[int] = []
    report = verify(Side(many), Side(many), progress=seen.append)
    assert seen == [1000, 2000, 2501] and report.entries == 2501


def test_report_text_and_json() -> None:
    diffs = (
        Difference("/big", Field.CONTENT, "aa", "bb", offset=0, region=0),
        Difference("/big", Field.CONTENT, "aa", "bb", offset=1 << 20, region=1),
        Difference("/big", Field.CONTENT, "aa", "bb", offset=2 << 20, region=2),
        Difference("/big", Field.CONTENT, "aa", "bb", offset=5 << 20, region=5),
        Difference("/gone", Field.MISSING, local="file"),
        Difference("/x", Field.XATTR, None, "ff", name="user.k"),
    )
    report = Report(diffs, entries=12, bytes_hashed=3 << 30, rounds=3, transient=2)
    assert format_report(report) == [
        "/big: content differs in regions 0-2 (at offsets 0 to 2097152)",
        "/big: content differs at offset 5242880 (region 5)",
        "/gone: missing on peer",
        "/x: xattr user.k extra on peer",
        "verify: 12 entries compared, 3.0 GiB hashed: 6 differences "
        "(2 more went away when re-checked, 3 rounds)",
    ]
    assert Report.from_json(report.to_json()) == report
    clean = Report((), entries=1, bytes_hashed=5)
    assert format_report(clean) == ["verify: 1 entries compared, 5 B hashed: no difference"]
    assert exit_code(clean) == 0 and exit_code(report) == 1


def test_a_difference_first_seen_in_a_recheck_is_not_reported() -> None:
    def owned(uid: int, mode: int) -> list[Entry]:
        b = Entry("/b", Kind.FILE, mode, uid, 0, size=10, region_size=10, digests=b"\1" * 16)
        return [ROOT, _f("/a"), b, _f("/c")]

    # full pass: mode; round 1: mode and owner; round 2: owner only (a chown in flight)
    report = verify(Side(TREE), Side(owned(0, 0o600), owned(7, 0o600), owned(7, 0o644)))
    assert report.ok and report.rounds == 2 and report.transient == 1

"""The outage probe's analysis on synthetic logs: gaps (first failure → first success
after it), handovers, two-primaries detection, filters and JSON lines; and the probe and
trivial service over loopback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hamod.testing.outage import (
    Sample,
    analyze,
    both_answered,
    find_gaps,
    handovers,
    main,
    parse_target,
    probe,
    read_samples,
)

pytestmark = pytest.mark.unit


def log(spec: str, step: float = 0.01, t0: float = 100.0) -> list[Sample]:
    """``"11.x22"`` → one request every ``step`` s: digit = that node answered (n1, n2),
    ``x`` = a failed request (timeout); each request lasts 1 ms."""
    out = []
    for i, c in enumerate(spec.replace(" ", "")):
        mono = t0 + i * step
        if c == "x":
            out.append(Sample(i, mono, mono + 0.001, False, None, "timeout"))
        else:
            out.append(Sample(i, mono, mono + 0.001, True, f"n{c}"))
    return out


def test_no_failure_no_gap() -> None:
    result = analyze(log("1111111"))
    assert result.gaps == () and result.outage == 0.0 and result.largest is None
    assert result.recovered and result.nodes == ("n1",) and result.successes == 7


def test_gap_runs_from_first_failure_to_first_success_after_it() -> None:
    samples = log("111xxxx22")
    (gap,) = find_gaps(samples)
    assert gap.start == samples[3].mono and gap.end == samples[7].mono
    assert gap.duration == pytest.approx(0.04)
    assert (gap.failures, gap.before, gap.after, gap.errors) == (4, "n1", "n2", ("timeout",))
    result = analyze(samples)
    assert result.outage == pytest.approx(0.04) and result.failures == 4
    assert result.errors == {"timeout": 4}


def test_every_gap_is_reported_and_the_largest_is_the_outage() -> None:
    result = analyze(log("1x11xxxxx1xx1"))
    assert [round(g.duration, 3) for g in result.gaps] == [0.01, 0.05, 0.02]
    assert result.largest is result.gaps[1] and result.outage == pytest.approx(0.05)


def test_gap_without_a_later_success_is_not_recovered() -> None:
    samples = log("11xxx")
    (gap,) = find_gaps(samples)
    assert gap.end is None and not gap.recovered and gap.after is None
    assert gap.duration == pytest.approx(samples[-1].end - samples[2].mono)
    assert not analyze(samples).recovered


def test_leading_failures_are_a_gap_without_a_node_before() -> None:
    (gap,) = find_gaps(log("xx1"))
    assert gap.before is None and gap.after == "n1" and gap.duration == pytest.approx(0.02)


def test_unordered_input_is_sorted_by_time() -> None:
    assert find_gaps(list(reversed(log("1xx2")))) == find_gaps(log("1xx2"))


def test_handovers_record_the_silence_between_nodes() -> None:
    (h,) = handovers(log("11xxx22"))
    assert (h.old, h.new) == ("n1", "n2") and h.silence == pytest.approx(0.04)
    assert handovers(log("1111")) == []


def test_interleaved_answers_are_two_primaries() -> None:
    samples = log("1212")
    (o,) = both_answered(samples, window=1.0)
    assert set(o.nodes) == {"n1", "n2"}
    assert analyze(samples).both_answered


def test_clean_handover_is_not_two_primaries_unless_any_pair() -> None:
    samples = log("111xx222")
    assert both_answered(samples, window=1.0) == []
    assert both_answered(samples, window=1.0, any_pair=True)
    # a handover slower than the window is clean even with any_pair
    assert both_answered(samples, window=0.02, any_pair=True) == []


def test_interleaving_beyond_the_window_is_not_flagged() -> None:
    # n1, then n2 half a second later, then n1 again after another half second: a
    # failback, not two primaries, when the window is shorter than the round trip
    samples = log("1" + "x" * 49 + "2" + "x" * 49 + "1")
    assert both_answered(samples, window=0.5) == []
    assert both_answered(samples, window=1.5)


def test_overlapping_findings_are_merged() -> None:
    found = both_answered(log("121212"), window=1.0)
    assert len(found) == 1 and found[0].start == 100.0


def test_since_and_until_select_a_window() -> None:
    samples = log("1x1111xxx2")
    result = analyze(samples, since=samples[2].mono)
    assert len(result.gaps) == 1 and result.gaps[0].failures == 3
    assert analyze(samples, until=samples[5].mono).outage == pytest.approx(0.01)


def test_json_lines_round_trip(tmp_path: Path) -> None:
    samples = log("1x2")
    text = "\n".join(s.to_json() for s in samples) + "\n\n"
    assert read_samples(text.splitlines()) == samples
    path = tmp_path / "probe.jsonl"
    path.write_text(text)
    assert main(["analyze", str(path)]) == 0
    path.write_text("\n".join(s.to_json() for s in log("1212")))
    assert main(["analyze", "--json", str(path)]) == 1  # both answered


def test_parse_target_and_limits() -> None:
    assert parse_target("10.0.0.1:7070") == ("10.0.0.1", 7070)
    assert parse_target("[fd00::1]:80") == ("fd00::1", 80)
    with pytest.raises(ValueError):
        parse_target("10.0.0.1")
    with pytest.raises(ValueError, match="timeout"):
        probe("127.0.0.1", 1, timeout=0.2, count=1)


def test_probe_and_service_over_loopback() -> None:
    serve = subprocess.Popen(
        [sys.executable, "-m", "hamod.testing.outage", "serve", "--port", "0",
         "--host", "127.0.0.1", "--name", "nX"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert serve.stdout is not None
        line = serve.stdout.readline()
        port = int(line.split()[2].rsplit(":", 1)[1])
        samples = probe("127.0.0.1", port, timeout=0.05, interval=0.005, count=5)
        assert [s.node for s in samples] == ["nX"] * 5 and all(s.ok for s in samples)
        assert all(0 <= s.end - s.mono < 0.05 for s in samples)
    finally:
        serve.terminate()
        serve.wait(timeout=5)
    assert serve.returncode == 0
    (failed,) = probe("127.0.0.1", port, timeout=0.05, count=1)
    assert not failed.ok and failed.error == "refused" and failed.node is None

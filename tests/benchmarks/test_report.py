"""The failover benchmark's pieces that need no lab: keepalived configuration, the hamod
placeholder (reported unavailable, never skipped), result figures and reports."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from benchmarks.failover import report
from benchmarks.failover.hamod_target import HamodTarget
from benchmarks.failover.harness import RunResult, Series
from benchmarks.failover.keepalived import KeepalivedTarget, render_config
from benchmarks.failover.targets import ClusterSpec

pytestmark = pytest.mark.unit

SPEC = ClusterSpec("10.202.0.200", 24, "eth0", 7070, ("n1", "n2"))


def run(i: int, outage: float | None, recovered: bool = True) -> RunResult:
    return RunResult(i, "n1", "n2", outage, outage, recovered, 100, 5, 1, 0)


def series(target: str, timers: str, outages: list[float]) -> Series:
    s = Series(target, timers, "x", seed=7)
    s.runs = [run(i, o) for i, o in enumerate(outages)]
    return s


def test_keepalived_config_unicast_and_multicast() -> None:
    conf = render_config("n1", SPEC, 0.1, src="10.202.0.11", peers=("10.202.0.12",))
    for want in ("state BACKUP", "nopreempt", "advert_int 0.1", "vrrp_version 3",
                 "vrrp_garp_master_repeat", "unicast_src_ip 10.202.0.11", "10.202.0.12",
                 "10.202.0.200/24 dev eth0", "interface eth0"):  # fmt: skip
        assert want in conf
    assert conf.count("{") == conf.count("}")
    multicast = render_config("n2", SPEC, 1.0)
    assert "unicast" not in multicast and "advert_int 1\n" in multicast


def test_keepalived_timer_presets() -> None:
    default, tight = KeepalivedTarget("default"), KeepalivedTarget("tight")
    assert default.master_down == pytest.approx(3.609, abs=0.001)
    assert tight.master_down == pytest.approx(0.3609, abs=0.0001)
    assert default.settings == "advert_int 1 s, unicast"
    with pytest.raises(ValueError):
        KeepalivedTarget("loose")


def test_hamod_presets_match_keepalived_where_they_claim_to() -> None:
    assert HamodTarget("default").settings == "pulse 700 ms, timeout 30 s"
    assert HamodTarget("tight").settings == "pulse 100 ms, timeout 1 s"
    equal = HamodTarget("equal")
    # "equal": hamod's timeout is keepalived's master-down interval at advert_int 0.1
    assert equal.heartbeat.timeout == pytest.approx(
        KeepalivedTarget("equal").master_down, abs=0.005
    )
    assert equal.heartbeat.timeout_text == "360ms" and equal.heartbeat.lease_text == "250ms"


def test_series_figures_ignore_unrecovered_runs() -> None:
    s = series("keepalived", "tight", [0.3, 0.5, 0.2])
    s.runs.append(run(3, None, recovered=False))
    assert (s.median, s.minimum, s.maximum) == (0.3, 0.2, 0.5)
    assert Series("hamod", "tight").median is None


def test_ratio_only_between_targets_measured_together() -> None:
    both = [series("keepalived", "tight", [0.3]), series("hamod", "tight", [0.15]),
            series("keepalived", "default", [3.0])]  # fmt: skip
    assert report.ratios(both) == [{"timers": "tight", "hamod_over_keepalived": 0.5}]
    assert "ratio hamod/keepalived (tight): 0.50" in report.table(both)


def test_reports_show_unavailable_targets() -> None:
    missing = Series("hamod", "default", "pulse 700 ms", status="unavailable", reason="no daemon")
    rows = [series("keepalived", "default", [3.1, 2.9, 3.4]), missing]
    text = report.table(rows)
    assert "unavailable: no daemon" in text and "3.10 s" in text
    info = report.machine()
    probe = {"timeout": 0.05, "interval": 0.01, "jitter": 1.0}
    md = report.markdown(rows, info, probe)
    assert "| keepalived | default |" in md and "unavailable: no daemon" in md and "seed 7" in md
    data = json.loads(report.to_json(rows, info, probe))
    assert [s["status"] for s in data["series"]] == ["ok", "unavailable"]
    assert data["series"][0]["median"] == 3.1
    root = ET.fromstring(report.svg(rows))
    assert root.tag.endswith("svg")
    assert len([e for e in root.iter() if e.tag.endswith("circle")]) == 3

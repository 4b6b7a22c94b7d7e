"""The watchdog's pure part: arming, renewal, expiry at a given time, fencing phases,
queued messages, counters; bad datagrams change nothing."""

from __future__ import annotations

import json
from typing import Any

from hamod.watchdog.messages import Arm, Disarm, StopEnv, StopSpec, VipRef, encode
from hamod.watchdog.state import Phase, WatchState

ENV = StopEnv(home="/h", bin="/h/bin", var="/v", user_var="/v/web", user_conf="/c")
STOP = StopSpec(bin_dir="/b", log_dir="/l", nice_timeout=2, force_timeout=1, env=ENV)


def arm(module: str = "web", deadline: float = 10.5, **kw: Any) -> bytes:
    vips = (VipRef(addr="10.0.0.10"),)
    return encode(Arm(module=module, deadline=deadline, vips=vips, stop=STOP, **kw))


def disarm(module: str = "web") -> bytes:
    return encode(Disarm(module=module))


def phase(state: WatchState, module: str = "web") -> Phase:
    return state.watches[module].phase


def test_nothing_armed_nothing_due() -> None:
    state = WatchState()
    assert state.next_deadline() is None
    assert state.due(1e9) == ()


def test_armed_module_expires_exactly_at_its_deadline() -> None:
    state = WatchState()
    note = state.receive(arm(deadline=10.5), now=10.0, sender=42)
    assert note is not None and note.level == "info" and "armed" in note.text
    assert state.next_deadline() == 10.5
    assert state.due(10.49) == ()
    (job,) = state.due(10.5)
    assert job.module == "web" and job.late == 0.0 and job.silent == 0.5
    assert job.arm.vips == (VipRef(addr="10.0.0.10"),)
    assert phase(state) is Phase.FENCING
    assert state.due(20.0) == ()  # a fence starts once
    assert state.next_deadline() is None


def test_each_renewal_pushes_the_deadline() -> None:
    state = WatchState()
    t = 0.0
    for _ in range(20):  # renew every 0.1 s with a 0.5 s deadline
        state.receive(arm(deadline=t + 0.5), now=t, sender=42)
        t += 0.1
        assert state.due(t) == ()
    (job,) = state.due(t - 0.1 + 0.5)
    assert abs(job.silent - 0.5) < 1e-9


def test_a_pause_shorter_than_the_remaining_deadline_touches_nothing() -> None:
    state = WatchState()
    state.receive(arm(deadline=1.5), now=1.0, sender=42)
    assert state.due(1.3) == ()  # daemon restarting: 0.3 s without renewal
    note = state.receive(arm(deadline=1.8), now=1.3, sender=43)
    assert note is not None and "renewals now come from pid 43 (was 42)" in note.text
    assert state.due(1.79) == ()


def test_disarm_forgets_the_module() -> None:
    state = WatchState()
    state.receive(arm(), now=10.0)
    note = state.receive(disarm(), now=10.1)
    assert note is not None and "disarmed" in note.text
    assert state.due(100.0) == () and "web" not in state.watches


def test_modules_expire_independently() -> None:
    state = WatchState()
    state.receive(arm("web", 5.0), now=1.0)
    state.receive(arm("db", 3.0), now=1.0)
    assert state.next_deadline() == 3.0
    assert [j.module for j in state.due(3.0)] == ["db"]
    assert state.next_deadline() == 5.0
    assert [j.module for j in state.due(6.0)] == ["web"]


def test_fenced_module_waits_for_a_new_arm() -> None:
    state = WatchState()
    state.receive(arm(deadline=2.0), now=1.0)
    state.due(2.0)
    note = state.fenced("web", now=2.5, complete=True)
    assert note.text.endswith("fenced; waiting for a new arm")
    assert phase(state) is Phase.FENCED and state.due(99.0) == ()
    note2 = state.receive(arm(deadline=4.0), now=3.0)
    assert note2 is not None and "re-armed after fencing" in note2.text
    assert phase(state) is Phase.ARMED
    assert [j.module for j in state.due(4.0)] == ["web"]
    assert state.counters.fences == 2


def test_arm_received_while_fencing_applies_afterwards() -> None:
    state = WatchState()
    state.receive(arm(deadline=2.0), now=1.0)
    state.due(2.0)
    note = state.receive(arm(deadline=9.0), now=2.1)
    assert note is not None and note.level == "warning" and "while fencing" in note.text
    assert phase(state) is Phase.FENCING  # the fence is not cancelled
    state.fenced("web", now=2.5, complete=True)
    assert phase(state) is Phase.ARMED and state.next_deadline() == 9.0


def test_disarm_received_while_fencing_applies_afterwards() -> None:
    state = WatchState()
    state.receive(arm(deadline=2.0), now=1.0)
    state.due(2.0)
    state.receive(disarm(), now=2.1)
    assert phase(state) is Phase.FENCING
    state.fenced("web", now=2.5, complete=False)
    assert "web" not in state.watches


def test_an_already_passed_deadline_is_due_at_once() -> None:
    state = WatchState()
    note = state.receive(arm(deadline=5.0), now=6.0)
    assert note is not None and note.level == "warning" and "1.000s past" in note.text
    assert [j.late for j in state.due(6.0)] == [1.0]


def test_absurd_deadline_is_refused_and_keeps_the_previous_one() -> None:
    state = WatchState(max_ahead=3600)
    state.receive(arm(deadline=10.5), now=10.0)
    note = state.receive(arm(deadline=10.0 + 7200), now=10.0)
    assert note is not None and "7200s ahead, more than 3600s" in note.text
    assert state.next_deadline() == 10.5 and state.counters.bad == 1


def test_bad_messages_are_counted_ignored_and_logged_sparingly() -> None:
    state = WatchState()
    state.receive(arm(deadline=10.5), now=10.0)
    bad = [b"garbage", json.dumps({"version": 9, "type": "ping"}).encode(), b'{"version":1}']
    notes = [state.receive(bad[i % 3], now=10.1, sender=7) for i in range(300)]
    assert state.counters.bad == 300 and state.counters.received == 301
    assert state.next_deadline() == 10.5 and list(state.watches) == ["web"]
    logged = [n for n in notes if n is not None]
    assert len(logged) == 20 + 3  # the first 20, then #100, #200 and #300
    assert "ignored bad message #1 from pid 7: not JSON" in logged[0].text
    assert "unsupported protocol version 9" in logged[1].text
    assert logged[2].text.endswith("type: missing")
    assert "one in 100 logged" in logged[19].text


def test_ping_changes_nothing() -> None:
    state = WatchState()
    assert state.receive(b'{"version":1,"type":"ping"}', now=1.0) is None
    assert state.counters.pings == 1 and not state.watches

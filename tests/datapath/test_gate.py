"""The tracking gate: drain waits exactly for operations that entered before it."""

from __future__ import annotations

import threading
import time

from hamod.datapath.gate import Gate, leave_any


def test_drain_waits_for_operations_entered_before_it_only() -> None:
    gate = Gate()
    entered, release, after = threading.Event(), threading.Event(), threading.Event()

    def old_op() -> None:
        gate.enter()
        gate.enter()  # a second hook of the same operation counts once
        entered.set()
        release.wait(5)
        leave_any()

    def new_op() -> None:
        gate.enter()
        after.wait(5)
        leave_any()

    t1 = threading.Thread(target=old_op)
    t1.start()
    assert entered.wait(5)
    assert gate.in_flight == 1
    result: list[bool] = []
    drainer = threading.Thread(target=lambda: result.append(gate.drain(5)))
    drainer.start()
    time.sleep(0.05)
    t2 = threading.Thread(target=new_op)  # enters after the drain began: not waited for
    t2.start()
    time.sleep(0.05)
    assert drainer.is_alive()
    release.set()
    drainer.join(5)
    assert result == [True]
    assert gate.in_flight == 1  # the new operation
    assert not gate.drain(0.05)  # and a new drain does wait for it
    after.set()
    t1.join(5)
    t2.join(5)
    assert gate.drain(1) and gate.in_flight == 0


def test_leave_without_enter_is_harmless() -> None:
    leave_any()
    gate = Gate()
    gate.leave()
    assert gate.drain(0.1) and gate.in_flight == 0


def test_hold_stops_new_operations_before_their_hook() -> None:
    gate = Gate()
    gate.hold()
    entered = threading.Event()

    def op() -> None:
        gate.enter()
        entered.set()
        leave_any()

    t = threading.Thread(target=op)
    t.start()
    assert not entered.wait(0.2)  # held
    assert gate.drain(0.1)  # nothing in flight: the waiting one has not entered
    gate.release()
    assert entered.wait(2)
    t.join(2)

"""``hamod service``'s lock: a start at boot and one from a playbook never run together."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hamod.cli.service_cmd import service_lock
from hamod.errors import HamodError
from hamod.runtime.paths import Paths

pytestmark = pytest.mark.unit


def test_a_second_holder_waits_until_the_first_lets_go(tmp_path: Path) -> None:
    paths = Paths.under(tmp_path)
    order: list[str] = []
    held = threading.Event()

    def first() -> None:
        with service_lock(paths):
            order.append("first in")
            held.set()
            time.sleep(0.3)
            order.append("first out")

    t = threading.Thread(target=first)
    t.start()
    assert held.wait(5)
    with service_lock(paths, timeout=5):
        order.append("second in")
    t.join()
    assert order == ["first in", "first out", "second in"]


def test_a_holder_in_another_process_makes_it_time_out_with_the_lock_named(
    tmp_path: Path,
) -> None:
    paths = Paths.under(tmp_path)
    paths.run.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, sys, time\n"
         f"f = open({str(paths.service_lock)!r}, 'a'); fcntl.flock(f, fcntl.LOCK_EX)\n"
         "print('held', flush=True); time.sleep(30)\n"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(HamodError, match=r"service\.lock: another hamod service command"),
            service_lock(paths, timeout=0.3),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()
    with service_lock(paths, timeout=5):  # released with its holder
        pass

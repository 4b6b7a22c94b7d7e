"""Random operation sequences (hypothesis, stateful) on the mount and a native directory.

Each example gets a fresh pair of directories; every step's outcome (value or errno)
must match and the trees must be equal at the end. CI size: 50 examples x 30 steps;
--soak: 500 x 60.
"""

from __future__ import annotations

import itertools
import os
import shutil

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from hamod.datapath import libc
from tests.datapath.harness import Step, World, snapshot

pytestmark = pytest.mark.lab

NAMES = ["a", "b", "d1/a", "d1/c", "d1/d2/a", "d2", "d1/d2"]
DIRS = ["d1", "d1/d2", "d2", "d1/d3"]
HANDLES = ["h1", "h2"]
names = st.sampled_from(NAMES)
dirs = st.sampled_from(DIRS)
handles = st.sampled_from(HANDLES)
_counter = itertools.count()


def make_machine(mnt: str, nat: str) -> type[RuleBasedStateMachine]:
    class Differential(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            sub = f"run{next(_counter)}"
            os.mkdir(os.path.join(mnt, sub))
            os.mkdir(os.path.join(nat, sub))
            self.worlds = (World(os.path.join(mnt, sub)), World(os.path.join(nat, sub)))
            self.trace: list[Step] = []

        def step(self, *s: object) -> None:
            self.trace.append(tuple(s))
            got, want = (w.run(tuple(s)) for w in self.worlds)
            assert got == want, f"{s!r}: mount {got} != native {want}\ntrace: {self.trace}"

        @rule(h=handles, p=names, trunc=st.booleans(), append=st.booleans())
        def open(self, h: str, p: str, trunc: bool, append: bool) -> None:
            if h in self.worlds[0].fds:
                self.step("close", h)
            flags = os.O_RDWR | os.O_CREAT | (os.O_TRUNC if trunc else 0)
            self.step("open", h, p, flags | (os.O_APPEND if append else 0), 0o644)

        def ensure(self, h: str, p: str) -> bool:
            """Open handle ``h`` on ``p`` if it is not open; False if that failed."""
            if h not in self.worlds[0].fds:
                self.step("open", h, p, os.O_RDWR | os.O_CREAT, 0o644)
            return h in self.worlds[0].fds

        @rule(h=handles)
        def close(self, h: str) -> None:
            if h in self.worlds[0].fds:
                self.step("close", h)

        @rule(
            h=handles,
            p=names,
            off=st.integers(0, 1 << 20) | st.just(5 << 30),
            n=st.integers(1, 9000),
        )
        def pwrite(self, h: str, p: str, off: int, n: int) -> None:
            if self.ensure(h, p):
                self.step("pwrite", h, off, bytes([off % 251]) * n)

        @rule(h=handles, p=names, off=st.integers(0, 1 << 20), n=st.integers(0, 9000))
        def pread(self, h: str, p: str, off: int, n: int) -> None:
            if self.ensure(h, p):
                self.step("pread", h, off, n)

        @rule(h=handles, p=names, n=st.integers(0, 1 << 21))
        def ftruncate(self, h: str, p: str, n: int) -> None:
            if self.ensure(h, p):
                self.step("ftruncate", h, n)

        @rule(
            h=handles,
            p=names,
            punch=st.booleans(),
            off=st.integers(0, 1 << 20),
            n=st.integers(1, 1 << 16),
        )
        def fallocate(self, h: str, p: str, punch: bool, off: int, n: int) -> None:
            if self.ensure(h, p):
                mode = libc.FALLOC_FL_PUNCH_HOLE | libc.FALLOC_FL_KEEP_SIZE if punch else 0
                self.step("fallocate", h, mode, off, n)

        @rule(h=handles, p=names, data=st.booleans())
        def fsync(self, h: str, p: str, data: bool) -> None:
            if self.ensure(h, p):
                self.step("fdatasync" if data else "fsync", h)

        @rule(h=handles, p=names)
        def fstat(self, h: str, p: str) -> None:
            if self.ensure(h, p):
                self.step("fstat", h)

        @rule(d=dirs)
        def mkdir(self, d: str) -> None:
            self.step("mkdir", d, 0o755)

        @rule(d=dirs)
        def rmdir(self, d: str) -> None:
            self.step("rmdir", d)

        @rule(p=names)
        def unlink(self, p: str) -> None:
            self.step("unlink", p)

        @rule(
            a=names,
            b=names,
            flags=st.sampled_from([0, 0, libc.RENAME_NOREPLACE, libc.RENAME_EXCHANGE]),
        )
        def rename(self, a: str, b: str, flags: int) -> None:
            self.step("rename", a, b, flags)

        @rule(a=names, b=names)
        def link(self, a: str, b: str) -> None:
            self.step("link", a, b)

        @rule(t=names, p=names)
        def symlink(self, t: str, p: str) -> None:
            self.step("symlink", t, p)

        @rule(p=names, mode=st.sampled_from([0o600, 0o644, 0o755, 0o4755, 0o1777]))
        def chmod(self, p: str, mode: int) -> None:
            self.step("chmod", p, mode)

        @rule(p=names, v=st.binary(max_size=20))
        def setxattr(self, p: str, v: bytes) -> None:
            self.step("setxattr", p, "user.x", v)

        @rule(p=names)
        def stat(self, p: str) -> None:
            self.step("stat", p)

        @rule(p=names, t=st.integers(0, 2**40))
        def utime(self, p: str, t: int) -> None:
            self.step("utime", p, t, t)
            self.step("mtime", p)

        @rule(d=st.sampled_from(["", *DIRS]))
        def listdir(self, d: str) -> None:
            self.step("listdir", d)

        def teardown(self) -> None:
            for w in self.worlds:
                w.close_all()
            a, b = (snapshot(w.root) for w in self.worlds)
            assert a == b, f"trees differ after {self.trace}"
            for w in self.worlds:
                shutil.rmtree(w.root)

    return Differential


def test_random_sequences_match_native(module_mount: tuple[str, str], scale: object) -> None:
    mnt, nat = module_mount
    soak = bool(getattr(scale, "soak", False))
    run_state_machine_as_test(
        make_machine(mnt, nat),
        settings=settings(
            max_examples=500 if soak else 50,
            stateful_step_count=60 if soak else 30,
            deadline=None,
            derandomize=not soak,
            suppress_health_check=list(HealthCheck),
        ),
    )

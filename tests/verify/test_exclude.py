"""The exclude matcher: rsync/lsyncd pattern rules, one table, and bad patterns."""

from __future__ import annotations

import pytest

from hamod.errors import UsageError
from hamod.verify import Excluder, excluded

# pattern, path, is_dir, excluded?
TABLE = [
    # no slash: the last component, anywhere
    ("*.tmp", "a.tmp", False, True),
    ("*.tmp", "/a.tmp", False, True),
    ("*.tmp", "d/e/a.tmp", False, True),
    ("*.tmp", "a.tmpx", False, False),
    ("*.tmp", "tmp", False, False),
    ("*.tmp", "x.tmp/inside", False, True),  # below an excluded directory
    ("core", "a/core", False, True),
    ("core", "a/core.1", False, False),
    ("core", "score", False, False),
    # anchored, directory only
    ("/pg_stat_tmp/", "pg_stat_tmp", True, True),
    ("/pg_stat_tmp/", "pg_stat_tmp", False, False),
    ("/pg_stat_tmp/", "pg_stat_tmp/global.stat", False, True),
    ("/pg_stat_tmp/", "base/pg_stat_tmp", True, False),
    ("/pg_stat_tmp", "pg_stat_tmp", False, True),
    ("/a/b", "a/b", False, True),
    ("/a/b", "x/a/b", False, False),
    # a slash inside: the trailing components
    ("b/c", "a/b/c", False, True),
    ("b/c", "b/c", False, True),
    ("b/c", "ab/c", False, False),
    ("a/*/c", "a/b/c", False, True),
    ("a/*/c", "a/b/x/c", False, False),
    # ** crosses directories
    ("a/**/c", "a/b/x/c", False, True),
    ("a/**/c", "a/c", False, False),
    ("/**.log", "d/e/x.log", False, True),
    ("**/cache/", "x/y/cache", True, True),
    ("**/cache/", "x/y/cache", False, False),
    ("dir/***", "dir", False, True),
    ("dir/***", "dir/x/y", False, True),
    ("dir/***", "dirx", False, False),
    # ? and classes never match '/'
    ("?.log", "a.log", False, True),
    ("?.log", "ab.log", False, False),
    ("a?b", "a/b", False, False),
    ("[ab].x", "a.x", False, True),
    ("[ab].x", "c.x", False, False),
    ("[!ab].x", "c.x", False, True),
    ("[^ab].x", "a.x", False, False),
    ("[a-c]1", "b1", False, True),
    ("x[/]y", "x/y", False, False),
    ("[]]", "]", False, True),
    ("[unclosed", "[unclosed", False, True),
    # escapes and regex characters are literal
    ("\\*", "*", False, True),
    ("\\*", "a", False, False),
    ("a.b", "axb", False, False),
    ("(x)+", "(x)+", False, True),
    # the root is never excluded
    ("*", "/", True, False),
    ("*", "", True, False),
]


@pytest.mark.parametrize(("pattern", "path", "is_dir", "want"), TABLE)
def test_table(pattern: str, path: str, is_dir: bool, want: bool) -> None:
    assert excluded(path, is_dir, [pattern]) is want


def test_several_patterns_and_none() -> None:
    pats = ["*.tmp", "/pg_stat_tmp/"]
    assert excluded("pg_stat_tmp/x", False, pats)
    assert excluded("a/b.tmp", False, pats)
    assert not excluded("base/1", False, pats)
    assert not excluded("a.tmp", False, [])


def test_self_only_and_ancestors() -> None:
    ex = Excluder(["/skip/"])
    assert not ex.matches("skip/x", False)  # for a walk that never enters /skip
    assert ex.below_excluded("skip/x") and ex.excluded("skip/x", False)
    assert not ex.below_excluded("skip")


@pytest.mark.parametrize("bad", ["", "/", "//", "a\0b"])
def test_bad_patterns_are_named(bad: str) -> None:
    with pytest.raises(UsageError, match="exclude pattern"):
        excluded("x", False, [bad])

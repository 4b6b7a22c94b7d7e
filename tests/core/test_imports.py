"""The core does no I/O: every import of every hamod/core module is on an allow-list."""

from __future__ import annotations

import ast
import pathlib

CORE = pathlib.Path(__file__).resolve().parents[2] / "hamod" / "core"
ALLOWED = {
    "__future__",
    "dataclasses",
    "enum",
    "typing",
    "collections.abc",
    "itertools",
    "functools",
    "math",
    "hashlib",
}
# diagram.py writes docs/state-machine.md, only when run as a script (inside main()).
EXCEPTIONS = {("diagram.py", "pathlib"), ("diagram.py", "sys")}


def _imports(tree: ast.AST) -> list[str]:
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append(("." * node.level) + (node.module or ""))
    return out


def test_core_imports_only_pure_modules() -> None:
    files = sorted(CORE.glob("*.py"))
    assert len(files) >= 8
    bad = []
    for f in files:
        for name in _imports(ast.parse(f.read_text())):
            if name.startswith("hamod.core") or name in ALLOWED:
                continue
            if (f.name, name) in EXCEPTIONS:
                continue
            bad.append(f"{f.name}: {name}")
    assert not bad, f"I/O-capable imports in the core: {bad}"


def test_core_calls_no_builtin_io() -> None:
    for f in CORE.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("open", "print", "input", "exec", "eval") or (
                    f.name == "diagram.py"
                ), f"{f.name} calls {node.func.id}"


def test_modules_are_small_and_documented() -> None:
    for f in CORE.glob("*.py"):
        text = f.read_text()
        assert ast.get_docstring(ast.parse(text)), f"{f.name} has no module docstring"
        assert len(text.splitlines()) <= 450, f"{f.name} is too long"

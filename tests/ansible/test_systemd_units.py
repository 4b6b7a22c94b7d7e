"""The systemd units the roles install pass ``systemd-analyze verify``: hamod.service and
hamod-watchdog.service (roles/hamod_node) and hamod-witness.service (roles/hamod_cluster),
rendered by Ansible's own template module with the roles' defaults (the lab cannot run
them: no systemd as PID 1 there).

``systemd-analyze verify`` loads the units as systemd would and checks that the commands
exist and are executable; an unknown directive or a bad value is only a warning (exit 0),
so any line naming one of our units is an error here. The units are rendered twice: with
the defaults (compared), and with the virtualenv moved to a temporary directory holding a
stub ``bin/hamod`` (verified: the default /opt/hamod/venv does not exist on this machine).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.ansible.helpers import ROOT, ansible_missing, playbook

SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
DEFAULT_VENV = "/opt/hamod/venv"

#: variant name → (units, variables set on top of the roles' defaults)
NODE = ROOT / "roles/hamod_node/templates"
CLUSTER = ROOT / "roles/hamod_cluster/templates"
VARIANTS: dict[str, tuple[tuple[Path, ...], dict[str, object]]] = {
    "node": ((NODE / "hamod.service.j2", NODE / "hamod-watchdog.service.j2"), {}),
    "node-no-watchdog": ((NODE / "hamod.service.j2",), {"hamod_node_watchdog": False}),
    "witness": ((CLUSTER / "hamod-witness.service.j2",), {}),
    "witness-ipv6": ((CLUSTER / "hamod-witness.service.j2",),
                     {"hamod_cluster_witness_listen": "::"}),
}  # fmt: skip


@dataclass(frozen=True)
class Rendered:
    """The rendered units: ``default/<variant>/`` and ``stub/<variant>/``; ``venv`` the
    stub virtualenv."""

    dir: Path
    venv: Path

    def units(self, kind: str, variant: str) -> list[Path]:
        return sorted((self.dir / kind / variant).glob("*.service"))


def _render_playbook(out: Path, venv: Path) -> list[dict[str, object]]:
    tasks: list[dict[str, object]] = []
    for kind, venv_vars in (("default", {}), ("stub", {"hamod_node_venv": str(venv)})):
        for variant, (templates, extra) in VARIANTS.items():
            for src in templates:
                tasks.append({
                    "name": f"Render {kind}/{variant}/{src.stem}",
                    "ansible.builtin.template": {
                        "src": str(src),
                        "dest": str(out / kind / variant / src.stem),
                        "mode": "0644",
                    },
                    "vars": {**extra, **venv_vars},
                })  # fmt: skip
    return [{
        "name": "Render the systemd units with the roles' defaults",
        "hosts": "localhost",
        "gather_facts": False,
        "vars_files": [str(ROOT / "roles/hamod_node/defaults/main.yml"),
                       str(ROOT / "roles/hamod_cluster/defaults/main.yml")],
        "tasks": tasks,
    }]  # fmt: skip


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    why = ansible_missing()
    if why is not None:
        pytest.skip(why)
    if not Path(SYSTEMD_ANALYZE).exists():
        pytest.skip(f"{SYSTEMD_ANALYZE} is missing (apt-get install systemd)")
    base = tmp_path_factory.mktemp("units")
    venv = base / "venv"
    (venv / "bin").mkdir(parents=True)
    stub = venv / "bin" / "hamod"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    out = base / "out"
    for kind in ("default", "stub"):
        for variant in VARIANTS:
            (out / kind / variant).mkdir(parents=True)
    inventory = base / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
    }}}}))  # fmt: skip
    book = base / "render.yml"
    book.write_text(yaml.safe_dump(_render_playbook(out, venv), sort_keys=False))
    run = playbook(inventory, str(book), timeout=120)
    assert run.rc == 0, run.tail()
    return Rendered(out, venv)


def verify(units: Sequence[Path]) -> list[str]:
    """``systemd-analyze verify`` of ``units`` (loaded together): the lines naming one of
    them, plus the exit status when it is not 0. Empty: the units are good."""
    res = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", "--generators=no", *map(str, units)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    names = {u.name for u in units} | {str(u.parent) for u in units}
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if any(n in ln for n in names)]
    if res.returncode != 0:
        lines.append(f"systemd-analyze verify: exit {res.returncode}: {res.stderr.strip()}")
    return lines


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_units_pass_systemd_analyze_verify(rendered: Rendered, variant: str) -> None:
    units = rendered.units("stub", variant)
    assert [u.name for u in units] == sorted(t.stem for t in VARIANTS[variant][0])
    problems = verify(units)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_default_units_run_the_virtualenv_s_hamod(rendered: Rendered, variant: str) -> None:
    for unit in rendered.units("default", variant):
        text = unit.read_text()
        stub = (rendered.dir / "stub" / variant / unit.name).read_text()
        assert stub.replace(str(rendered.venv), DEFAULT_VENV) == text
        execs = [ln for ln in text.splitlines() if ln.startswith("ExecStart=")]
        assert execs and execs[0].startswith(f"ExecStart={DEFAULT_VENV}/bin/hamod "), text
        assert "{{" not in text and "{%" not in text, text


def test_watchdog_settings_follow_hamod_node_watchdog(rendered: Rendered) -> None:
    with_wd = (rendered.dir / "default" / "node" / "hamod.service").read_text()
    without = (rendered.dir / "default" / "node-no-watchdog" / "hamod.service").read_text()
    assert "hamod-watchdog.service" in with_wd
    assert f"\nExecStart={DEFAULT_VENV}/bin/hamod daemon\n" in with_wd
    assert "hamod-watchdog.service" not in without
    assert f"\nExecStart={DEFAULT_VENV}/bin/hamod daemon --no-watchdog\n" in without
    ipv6 = (rendered.dir / "default" / "witness-ipv6" / "hamod-witness.service").read_text()
    assert "--listen [::]:9011 " in ipv6


def test_the_package_s_units_pass_and_match_the_role_s(rendered: Rendered) -> None:
    """hamod/data/*.service (shipped in the package, docs/daemon.md) are the role's units
    with ``/usr/bin/env hamod`` for the virtualenv's command."""
    data = sorted((ROOT / "hamod" / "data").glob("*.service"))
    assert [u.name for u in data] == ["hamod-watchdog.service", "hamod.service"]
    problems = verify(data)
    assert not problems, "\n".join(problems)
    for unit in data:
        ours = (rendered.dir / "default" / "node" / unit.name).read_text()
        body = ours[ours.index("[Unit]") :]  # after the template's header comments
        want = unit.read_text().replace("/usr/bin/env hamod", f"{DEFAULT_VENV}/bin/hamod")
        assert body.strip() == want.strip(), f"{unit.name} and the role's template differ"


@pytest.mark.parametrize(
    ("where", "line", "expected"),
    [
        ("[Service]", "ExecStartPost=/nonexistent/hamod-hook", "is not executable"),
        ("[Service]", "Restartt=always", "Unknown key 'Restartt'"),
        ("[Service]", "Restart=sometimes", "Failed to parse service restart specifier"),
        ("[Unit]", "After=", None),  # an empty assignment resets the list: valid
    ],
)
def test_verify_catches_a_bad_unit(
    rendered: Rendered, tmp_path: Path, where: str, line: str, expected: str | None
) -> None:
    units = []
    for unit in rendered.units("stub", "node"):
        text = unit.read_text()
        if unit.name == "hamod.service":
            text = text.replace(f"{where}\n", f"{where}\n{line}\n", 1)
        dst = tmp_path / unit.name
        dst.write_text(text)
        units.append(dst)
    problems = verify(units)
    if expected is None:
        assert not problems, "\n".join(problems)
    else:
        assert any(expected in p for p in problems), "\n".join(problems) or "no problem found"

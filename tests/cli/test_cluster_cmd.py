"""``hamod cluster keygen`` / ``hamod cluster certs`` through the real entry point: files,
modes, exit codes (0 ok, 1 I/O failure, 2 bad input) and the exact error lines."""

from __future__ import annotations

import ipaddress
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from hamod.adapters import pki
from hamod.cli import cluster_cmd
from hamod.cli import main as cli_main

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """``hamod ARGS...`` → (exit code, stdout, stderr)."""
    assert cluster_cmd in cli_main.COMMANDS

    def invoke(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli_main.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# --- keygen --------------------------------------------------------------------------


def test_keygen_writes_a_0600_key(run: Run, tmp_path: Path) -> None:
    code, out, err = run("cluster", "keygen", "--out", str(tmp_path / "etc"))
    key = tmp_path / "etc" / "cluster.key"
    assert (code, err) == (0, "")
    assert out == f"wrote {key} (mode 0600); copy it to every node of the cluster\n"
    assert mode(key) == 0o600
    assert len(pki.read_cluster_key(key)) == 32


def test_keygen_refuses_to_overwrite_without_force(run: Run, tmp_path: Path) -> None:
    run("cluster", "keygen", "--out", str(tmp_path))
    key = tmp_path / "cluster.key"
    before = key.read_bytes()
    assert run("cluster", "keygen", "--out", str(tmp_path)) == (
        2,
        "",
        f"hamod: refusing to overwrite {key} (use --force to replace)\n",
    )
    assert key.read_bytes() == before
    assert run("cluster", "keygen", "--out", str(tmp_path), "--force")[0] == 0
    assert key.read_bytes() != before and mode(key) == 0o600


def test_keygen_io_failure_exits_1_naming_the_file(run: Run, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    out_dir = tmp_path / "file" / "etc"
    assert run("cluster", "keygen", "--out", str(out_dir)) == (
        1,
        "",
        f"hamod: cannot write {out_dir / 'cluster.key'}: Not a directory\n",
    )


# --- certs ---------------------------------------------------------------------------


def certs(run: Run, out: Path, *extra: str, nodes: str = "n1=10.0.0.1+fd00::1,n2=10.0.0.2"):
    return run(
        "cluster", "certs", "--cluster-name", "prod", "--nodes", nodes, "--out", str(out), *extra
    )


def test_certs_writes_the_ca_and_one_pair_per_node(run: Run, tmp_path: Path) -> None:
    code, out, err = certs(run, tmp_path, "--days", "30")
    assert (code, err) == (0, "")
    expected = [
        ("ca.crt", 0o644),
        ("ca.key", 0o600),
        ("n1/node.crt", 0o644),
        ("n1/node.key", 0o600),
        ("n2/node.crt", 0o644),
        ("n2/node.key", 0o600),
    ]
    assert out.splitlines() == [f"wrote {tmp_path / p} (mode {m:04o})" for p, m in expected]
    assert [mode(tmp_path / p) for p, _ in expected] == [m for _, m in expected]
    ca = pki.load_ca(tmp_path)
    n1 = pki.load_certificate(tmp_path / "n1" / "node.crt")
    pki.verify_chain(n1, ca.cert)
    san = n1.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["n1"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.1"),
        ipaddress.ip_address("fd00::1"),
    ]
    days = (n1.not_valid_after_utc - n1.not_valid_before_utc).days
    assert days == 30  # 30 days + the 1 hour allowed for clock skew


def test_certs_refuse_to_overwrite_and_write_nothing(run: Run, tmp_path: Path) -> None:
    certs(run, tmp_path)
    before = snapshot(tmp_path)
    assert certs(run, tmp_path) == (
        2,
        "",
        f"hamod: refusing to overwrite {tmp_path / 'ca.crt'} and 5 other file(s) "
        "(use --force to replace)\n",
    )
    assert snapshot(tmp_path) == before
    assert certs(run, tmp_path, "--force")[0] == 0
    after = snapshot(tmp_path)
    assert after.keys() == before.keys() and after["ca.crt"] != before["ca.crt"]


def test_one_existing_node_file_blocks_the_whole_run(run: Run, tmp_path: Path) -> None:
    (tmp_path / "n2").mkdir()
    (tmp_path / "n2" / "node.key").write_text("precious")
    code, _, err = certs(run, tmp_path)
    assert code == 2
    assert err == (
        f"hamod: refusing to overwrite {tmp_path / 'n2' / 'node.key'} (use --force to replace)\n"
    )
    assert snapshot(tmp_path) == {"n2/node.key": b"precious"}


def test_reuse_ca_issues_more_nodes_from_the_existing_ca(run: Run, tmp_path: Path) -> None:
    certs(run, tmp_path)
    ca_before = (tmp_path / "ca.crt").read_bytes()
    code, out, err = certs(run, tmp_path, "--reuse-ca", nodes="n3=10.0.0.3")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"wrote {tmp_path / 'n3' / 'node.crt'} (mode 0644)",
        f"wrote {tmp_path / 'n3' / 'node.key'} (mode 0600)",
    ]
    assert (tmp_path / "ca.crt").read_bytes() == ca_before
    n3 = pki.load_certificate(tmp_path / "n3" / "node.crt")
    pki.verify_chain(n3, pki.load_certificate(tmp_path / "ca.crt"))


def test_reuse_ca_errors(run: Run, tmp_path: Path) -> None:
    assert certs(run, tmp_path, "--reuse-ca") == (
        1,
        "",
        f"hamod: cannot read certificate {tmp_path / 'ca.crt'}: No such file or directory\n",
    )
    certs(run, tmp_path)
    code, _, err = run(
        "cluster", "certs", "--cluster-name", "dev", "--nodes", "n3=10.0.0.3",
        "--out", str(tmp_path), "--reuse-ca",
    )  # fmt: skip
    assert (code, err) == (
        2,
        f"hamod: --cluster-name: 'dev' differs from the cluster 'prod' of the CA in "
        f"{tmp_path / 'ca.crt'}\n",
    )


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ("n1", "--nodes: 'n1' has no address; write NAME=ADDRESS[+ADDRESS...]"),
        ("n1=", "--nodes: 'n1=' has no address; write NAME=ADDRESS[+ADDRESS...]"),
        ("n1=10.0.0.1,,n2=10.0.0.2", "--nodes: empty entry in 'n1=10.0.0.1,,n2=10.0.0.2'"),
        ("n1=10.0.0.300", "--nodes: '10.0.0.300' is not an IP address (node n1)"),
        ("n1=10.0.0.1,n2=10.0.0.1", "--nodes: address 10.0.0.1 given to both n1 and n2"),
        (
            "n_1=10.0.0.1",
            "--nodes: 'n_1' is not a valid node name; use a host name: letters, digits and '-'",
        ),
    ],
)
def test_bad_nodes_are_usage_errors(run: Run, tmp_path: Path, nodes: str, message: str) -> None:
    assert certs(run, tmp_path, nodes=nodes) == (2, "", f"hamod: {message}\n")
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_repeated_nodes_merge_their_addresses() -> None:
    assert cluster_cmd.parse_nodes("a=10.0.0.1, b=10.0.0.2 ,a=10.1.0.1+10.0.0.1") == {
        "a": [ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.1.0.1")],
        "b": [ipaddress.ip_address("10.0.0.2")],
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--cluster-name", "Prod"),
            "--cluster-name: 'Prod' is not a valid name; use 1-32 lowercase letters, "
            "digits, '_' or '-', starting with a letter",
        ),
        (("--days", "0"), "--days: expected a whole number from 1 to 36500, got '0'"),
        (("--days", "ten"), "--days: expected a whole number from 1 to 36500, got 'ten'"),
        (("--days", "-5"), "--days: expected a whole number from 1 to 36500, got '-5'"),
    ],
)
def test_bad_options_are_usage_errors(
    run: Run, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    assert certs(run, tmp_path, *args) == (2, "", f"hamod: {message}\n")
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_cluster_without_subcommand_prints_usage(run: Run) -> None:
    code, out, err = run("cluster")
    assert (code, out) == (2, "")
    assert err.startswith("usage: hamod cluster") and "keygen" in err and "certs" in err


def test_certs_requires_cluster_name_and_nodes(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        run("cluster", "certs", "--nodes", "n1=10.0.0.1")
    assert exc.value.code == 2
    assert "the following arguments are required: --cluster-name" in capsys.readouterr().err

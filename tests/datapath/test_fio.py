"""fio's own data verification (crc32c) on the mount: random writes, O_DIRECT, fsync each."""

from __future__ import annotations

import shutil
import subprocess

import pytest

pytestmark = pytest.mark.lab

JOBS = {
    "randwrite": ["--rw=randwrite", "--bs=4k", "--size=8m"],
    "direct": ["--rw=randwrite", "--bs=8k", "--size=8m", "--direct=1"],
    "fsync-each": ["--rw=write", "--bs=8k", "--size=2m", "--fsync=1"],
    "mixed-sizes": ["--rw=randrw", "--bsrange=512-64k", "--size=8m", "--numjobs=2"],
}


@pytest.mark.parametrize("job", sorted(JOBS))
def test_fio_verify_crc32c(module_mount: tuple[str, str], job: str) -> None:
    if shutil.which("fio") is None:
        pytest.skip("fio not installed (Debian fio)")
    mnt, _ = module_mount
    run = subprocess.run(
        [
            "nice",
            "-n",
            "10",
            "fio",
            f"--name={job}",
            f"--directory={mnt}",
            "--ioengine=psync",
            "--verify=crc32c",
            "--do_verify=1",
            "--verify_fatal=1",
            "--verify_state_save=0",  # no *-verify.state files left in the cwd
            "--output-format=terse",
            "--minimal",
            *JOBS[job],
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "verify" not in run.stderr.lower(), run.stderr

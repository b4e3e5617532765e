"""benchmarks/device.sh on a machine without CUDA: it stops at once with a clear message and touches nothing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "device.sh"
BASH = shutil.which("bash") or "/bin/bash"


def _run(out: Path, path_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASH, str(SCRIPT), str(out)], env={"PATH": str(path_dir)}, capture_output=True, text=True, timeout=60
    )


def test_no_nvidia_smi_means_no_gpu_and_nothing_is_done(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    out = tmp_path / "results"
    done = _run(out, empty)
    assert done.returncode == 2
    assert "no CUDA GPU on this machine" in done.stderr and "nothing was installed or measured" in done.stderr
    assert not out.exists()


def test_a_driver_without_a_gpu_is_refused_too(tmp_path: Path) -> None:
    grep = shutil.which("grep")
    if grep is None:
        pytest.skip("grep not on this machine")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'No devices were found'\nexit 6\n")
    fake.chmod(0o755)
    (bindir / "grep").symlink_to(grep)
    out = tmp_path / "results"
    done = _run(out, bindir)
    assert done.returncode == 2 and "no CUDA GPU" in done.stderr
    assert not out.exists()


def test_results_folder_is_required(tmp_path: Path) -> None:
    done = subprocess.run([BASH, str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 64 and "usage" in done.stderr

"""scripts/gpu_check.sh stops cleanly, with its documented exit codes and a JSON report,
where it cannot check a GPU (no driver, a driver without a device, a driver too old)."""
import json
import os
import shutil
import stat
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "gpu_check.sh")


def _run(tmp_path, fake_smi=None):
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    path = str(bindir) + os.pathsep + "/usr/bin:/bin"
    if fake_smi is not None:
        p = bindir / "nvidia-smi"
        p.write_text("#!/bin/sh\n" + fake_smi + "\n")
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
    out = tmp_path / "out"
    r = subprocess.run(["bash", SCRIPT, "--out", str(out)], capture_output=True, text=True,
                       env={"PATH": path, "HOME": str(tmp_path)}, timeout=60)
    with open(out / "gpu_check.json") as f:
        report = json.load(f)
    return r, report


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a driver is installed here")
def test_no_driver_reports_no_gpu(tmp_path):
    r, report = _run(tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "no GPU" in r.stdout
    assert report["status"] == "no GPU" and report["gpu"] is None
    assert "Traceback" not in r.stderr and r.stderr == ""


def test_driver_without_device_reports_no_gpu(tmp_path):
    r, report = _run(tmp_path, 'echo "NVIDIA-SMI has failed because it could not '
                               'communicate with the NVIDIA driver"; exit 9')
    assert r.returncode == 2, r.stdout + r.stderr
    assert "no GPU" in r.stdout and "could not communicate" in r.stdout
    assert report["status"] == "no GPU"


def test_old_driver_is_named(tmp_path):
    r, report = _run(tmp_path, 'echo "NVIDIA H200, 575.51.03, 9.0, 143771 MiB"')
    assert r.returncode == 3, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert "NVIDIA H200" in lines[0] and "575.51.03" in lines[0] and "9.0" in lines[0]
    assert "R580" in r.stdout
    assert report == {"gpu": "NVIDIA H200", "driver": "575.51.03", "status": "driver too old"}


def test_unknown_argument_is_refused(tmp_path):
    r = subprocess.run(["bash", SCRIPT, "--bogus"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 64 and "unknown argument" in r.stderr

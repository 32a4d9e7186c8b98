"""scripts/gpu_check.sh stops cleanly, with its documented exit codes and a JSON report,
where it cannot check a GPU (no driver, a driver without a device, a driver too old); and,
on a fake GPU machine (a stand-in nvidia-smi and a --prebuilt package of stand-in
binaries), it runs the engine-size device tests on their own (a skipped one fails the
check), profiles a short decode run with Nsight Compute when ncu is there (skipped with a
line otherwise), and cuts or skips steps to stay within its time budget."""
import json
import os
import re
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


# --- a whole run on a fake GPU machine (--prebuilt package of stand-in binaries) ----------

FAKE_TEST = r"""#!/bin/sh
echo "test_cuda_device $*" >> "$CALLS"
for a in "$@"; do
  case "$a" in --gtest_output=json:*) echo '{}' > "${a#--gtest_output=json:}" ;; esac
done
echo "[       OK ] CudaEngineSize.DrumModelEndToEnd (1 ms)"
if [ -n "$FAKE_SKIP" ]; then echo "[  SKIPPED ] CudaEngineSize.TwoModelsInOneProcess (0 ms)"; fi
exit 0
"""
FAKE_BENCH = r"""#!/bin/sh
echo "$(basename "$0") $*" >> "$CALLS"
for a in "$@"; do
  case "$a" in --benchmark_out=*) echo '{"benchmarks": []}' > "${a#--benchmark_out=}" ;; esac
done
"""
FAKE_NCU = r"""#!/bin/sh
echo "ncu $*" >> "$CALLS"
"""


def _exe(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _run_prebuilt(tmp_path, with_ncu=False, extra_env=None):
    pkg = tmp_path / "pkg"
    for d in ("bin", "fixtures", "models"):
        (pkg / d).mkdir(parents=True, exist_ok=True)
    _exe(pkg / "bin" / "test_cuda_device", FAKE_TEST)
    _exe(pkg / "bin" / "bench_cuda_kernels", FAKE_BENCH)
    _exe(pkg / "bin" / "bench_cuda_latent", FAKE_BENCH)
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    _exe(bindir / "nvidia-smi", '#!/bin/sh\necho "NVIDIA H200, 580.65.06, 9.0, 143771 MiB"\n')
    if with_ncu:
        _exe(bindir / "ncu", FAKE_NCU)
    calls = tmp_path / "calls.log"
    out = tmp_path / "out"
    env = {"PATH": str(bindir) + os.pathsep + "/usr/bin:/bin", "HOME": str(tmp_path),
           "CALLS": str(calls)}
    env.update(extra_env or {})
    r = subprocess.run(["bash", SCRIPT, "--prebuilt", str(pkg), "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=120)
    with open(out / "gpu_check.json") as f:
        report = json.load(f)
    return r, report, calls.read_text() if calls.exists() else "", pkg


def test_prebuilt_run_has_engine_size_tests_and_skips_ncu_when_absent(tmp_path):
    r, report, calls, pkg = _run_prebuilt(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "--gtest_filter=CudaEngineSize.*" in calls
    assert report["engine_size_tests"]["rc"] == 0
    assert "Nsight Compute (ncu) not installed: skipped" in r.stdout
    assert report["nsight_compute"]["rc"] is None
    assert "ncu " not in calls
    assert report["elapsed_s"] < 480
    assert re.search(r"^engine-size tests\s+rc 0", r.stdout, re.M)  # in the summary table


def test_ncu_profiles_a_short_decode_run_into_the_output_dir(tmp_path):
    r, report, calls, pkg = _run_prebuilt(tmp_path, with_ncu=True)
    assert r.returncode == 0, r.stdout + r.stderr
    line = [c for c in calls.splitlines() if c.startswith("ncu ")][0]
    assert "--section SpeedOfLight" in line and "--section Occupancy" in line
    assert str(tmp_path / "out" / "ncu_decode") in line
    assert "CudaEngineSize.GraphSizes41ToLongTo41" in line
    assert report["nsight_compute"]["rc"] == 0


def test_skipped_engine_size_test_fails_the_check(tmp_path):
    r, report, calls, pkg = _run_prebuilt(tmp_path, extra_env={"FAKE_SKIP": "1"})
    assert r.returncode != 0
    assert report["engine_size_tests"]["rc"] != 0


def test_spent_time_budget_skips_steps_and_still_reports(tmp_path):
    r, report, calls, pkg = _run_prebuilt(tmp_path, with_ncu=True,
                                          extra_env={"NGS_GPU_CHECK_BUDGET_S": "5"})
    assert r.returncode != 0
    assert "time budget is spent" in r.stdout
    assert "test_cuda_device" not in calls and "ncu " not in calls
    assert report["engine_size_tests"]["rc"] == 124

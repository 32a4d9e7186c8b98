"""tests/cpp/check_cuda_resources.py (the build-time register / spill check of the nvcc-built
kernels, docs/CUDA.md "Resources") on ptxas -v reports in its real format: a kernel that
fits passes; registers x __launch_bounds__ threads above 64 K per SM, a kernel without
bounds taken at 1024 threads, and spills fail with the kernel named; no report is an error."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "tests", "cpp", "check_cuda_resources.py")


def _ptx(entries):
    text = ".version 9.0\n.target sm_90\n.address_size 64\n"
    for name, bound in entries:
        text += f".visible .entry {name}(\n\t.param .u64 {name}_param_0\n)\n"
        if bound:
            text += f".maxntid {bound}, 1, 1\n"
        text += "{\n\tret;\n}\n"
    return text


def _log(entries):
    text = "ptxas info    : 0 bytes gmem\n"
    for name, regs, spill in entries:
        text += (f"ptxas info    : Compiling entry function '{name}' for 'sm_90'\n"
                 f"ptxas info    : Function properties for {name}\n"
                 f"    0 bytes stack frame, {spill} bytes spill stores, {spill} bytes spill loads\n"
                 f"ptxas info    : Used {regs} registers, used 1 barriers, 16384 bytes smem\n"
                 "ptxas info    : Compile time = 12.000 ms\n")
    return text


def _check(tmp_path, ptx_entries, log_entries):
    (tmp_path / "k_sm90.ptx").write_text(_ptx(ptx_entries))
    (tmp_path / "k_sm90.log").write_text(_log(log_entries))
    return subprocess.run([sys.executable, SCRIPT, str(tmp_path)], capture_output=True,
                          text=True, timeout=60)


def test_fitting_kernels_pass(tmp_path):
    # 64 registers x 256 threads = 16 K; 255 x 128: 4 warps x 8192 = 32 K; 64 x 1024 = 64 K.
    r = _check(tmp_path, [("_Z1av", 256), ("_Z1bv", 128), ("_Z1cv", 1024)],
               [("_Z1av", 64, 0), ("_Z1bv", 255, 0), ("_Z1cv", 64, 0)])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 kernel entries" in r.stdout
    assert "_Z1av sm_90: 64 registers x 256 threads = 16384 of 65536" in r.stdout


def test_too_many_registers_for_the_launch_bounds_fail(tmp_path):
    # 72 registers x 1024 threads: 32 warps x 2304 = 73728 > 65536.
    r = _check(tmp_path, [("_Z4goodv", 256), ("_Z3badv", 1024)],
               [("_Z4goodv", 40, 0), ("_Z3badv", 72, 0)])
    assert r.returncode == 1, r.stdout + r.stderr
    assert "_Z3badv" in r.stderr and "exceed 64 K" in r.stderr
    assert "_Z4goodv" not in r.stderr


def test_register_allocation_unit_is_counted(tmp_path):
    # 66 registers x 992 threads = 65472 would fit, but a warp's 66 x 32 = 2112 registers are
    # allocated as 2304 (units of 256): 31 warps x 2304 = 71424 do not.
    r = _check(tmp_path, [("_Z1xv", 992)], [("_Z1xv", 66, 0)])
    assert r.returncode == 1, r.stdout + r.stderr
    assert "= 71424 of 65536" in r.stderr
    r = _check(tmp_path, [("_Z1xv", 1024)], [("_Z1xv", 64, 0)])
    assert r.returncode == 0 and "= 65536 of 65536" in r.stdout


def test_kernel_without_launch_bounds_is_taken_at_1024_threads(tmp_path):
    r = _check(tmp_path, [("_Z5nobndv", None)], [("_Z5nobndv", 80, 0)])
    assert r.returncode == 1
    assert "no __launch_bounds__" in r.stderr and "_Z5nobndv" in r.stderr


def test_spills_fail(tmp_path):
    r = _check(tmp_path, [("_Z5spillv", 256)], [("_Z5spillv", 32, 28)])
    assert r.returncode == 1
    assert "_Z5spillv" in r.stderr and "spills" in r.stderr


def test_no_report_is_an_error(tmp_path):
    r = subprocess.run([sys.executable, SCRIPT, str(tmp_path)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "no kernel reports" in r.stderr


def test_known_spills_are_bounded(tmp_path):
    known = tmp_path / "known.txt"
    known.write_text("# comment\nkernel_aILb0E 8  # why\n")
    (tmp_path / "k_sm90.ptx").write_text(_ptx([("_Z8kernel_aILb0EEv", 256), ("_Z8kernel_bv", 256)]))
    run = lambda: subprocess.run([sys.executable, SCRIPT, str(tmp_path), "--known", str(known)],
                                 capture_output=True, text=True, timeout=60)
    (tmp_path / "k_sm90.log").write_text(_log([("_Z8kernel_aILb0EEv", 32, 8), ("_Z8kernel_bv", 32, 0)]))
    r = run()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "known spill, at most 8 B" in r.stdout
    # The known kernel spilling more, or another kernel spilling, fails.
    (tmp_path / "k_sm90.log").write_text(_log([("_Z8kernel_aILb0EEv", 32, 16), ("_Z8kernel_bv", 32, 0)]))
    r = run()
    assert r.returncode == 1 and "more than the known 8 B" in r.stderr
    (tmp_path / "k_sm90.log").write_text(_log([("_Z8kernel_aILb0EEv", 32, 0), ("_Z8kernel_bv", 32, 4)]))
    r = run()
    assert r.returncode == 1 and "_Z8kernel_bv" in r.stderr and "_Z8kernel_aILb0EEv" not in r.stderr
    assert "spills no more: remove it" in r.stdout

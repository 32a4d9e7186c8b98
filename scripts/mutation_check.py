"""Mutation check: re-measures what the test suite catches (docs/TESTING.md).

Copies the work tree (tracked and untracked, not ignored, files) to a scratch folder,
builds it once (Release, CPU only), makes the golden fixtures, checks that every selected
test subset passes on the unmutated code, then for each injected bug of scripts/mutations.py:
applies it (an exact replacement that must occur exactly once), rebuilds, runs its test
subset (and with --full the whole Release ctest suite and pytest tests/python), records
caught / SURVIVED, and restores the file. The source tree is never modified.

    scripts/mutation_check.sh [--full] [--keep] [--scratch DIR] [--list] [NAME ...]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from mutations import MUTATIONS  # noqa: E402

PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def sh(cmd, cwd, log, env=None):
    """Runs a shell command, appending its output to log; returns the exit status."""
    with open(log, "a") as f:
        f.write("\n$ %s\n" % cmd)
        f.flush()
        return subprocess.call(cmd, shell=True, cwd=cwd, stdout=f, stderr=subprocess.STDOUT,
                               env=env)


TSAN_TARGETS = "test_pipeline_threads test_cpu_threads"  # scripts/test.sh's TSan step


def expand(cmd):
    return cmd.format(ctest="ctest --test-dir build --output-on-failure",
                      ctest_tsan="TSAN_OPTIONS=halt_on_error=1 ctest --test-dir build-tsan "
                                 "--output-on-failure", py=PY)


def build_cmds(jobs, tsan):
    cmds = ["nice cmake --build build -j%s" % jobs]
    if tsan:
        cmds.append("nice cmake --build build-tsan -j%s --target %s" % (jobs, TSAN_TARGETS))
    return cmds


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def copy_tree(dst):
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           check=True, stdout=subprocess.PIPE).stdout.split(b"\0")
    for rel in files:
        if not rel:
            continue
        rel = rel.decode()
        src = os.path.join(ROOT, rel)
        if not os.path.isfile(src) or os.path.islink(src):
            continue
        d = os.path.join(dst, rel)
        os.makedirs(os.path.dirname(d), exist_ok=True)
        # A reused scratch copy keeps files whose bytes are unchanged (an incremental
        # build); changed files are written with the current time, so that the build sees
        # them even when the source's own time is older than the scratch build's outputs.
        if os.path.isfile(d):
            with open(src, "rb") as a, open(d, "rb") as b:
                if a.read() == b.read():
                    continue
        shutil.copy(src, d)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="scripts/mutation_check.sh", description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="mutations to run (default: all)")
    ap.add_argument("--full", action="store_true",
                    help="also run the whole Release ctest suite and pytest tests/python per mutation")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    ap.add_argument("--scratch", help="scratch folder (default: a new folder under /tmp); "
                    "an existing one is reused, so its build is incremental")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    a = ap.parse_args(argv)
    if a.list:
        for m in MUTATIONS:
            print("%-38s %-34s %s" % (m["name"], m["file"], m["owner"]))
        return 0
    chosen = [m for m in MUTATIONS if not a.names or m["name"] in a.names]
    unknown = set(a.names) - {m["name"] for m in MUTATIONS}
    if unknown:
        print("mutation_check: unknown mutation(s): %s (see --list)" % ", ".join(sorted(unknown)))
        return 2
    # Every mutation must still apply to the current sources.
    for m in chosen:
        n = open(os.path.join(ROOT, m["file"])).read().count(m["old"])
        if n != 1:
            print("mutation_check: %s: the text to replace occurs %d times in %s (must be 1): "
                  "update scripts/mutations.py" % (m["name"], n, m["file"]))
            return 2
    t_start = time.time()
    scratch = a.scratch or tempfile.mkdtemp(prefix="ngs-mutation-")
    os.makedirs(scratch, exist_ok=True)
    logs = os.path.join(scratch, "mutation-logs")
    os.makedirs(logs, exist_ok=True)
    setup_log = os.path.join(logs, "setup.log")
    print("mutation_check: scratch copy %s (logs in %s)" % (scratch, logs))
    copy_tree(scratch)
    jobs = os.environ.get("NGS_JOBS", str(os.cpu_count() or 2))
    env = dict(os.environ, CCACHE_BASEDIR=scratch)
    launcher = ("-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache"
                if shutil.which("ccache") else "")
    steps = [
        "cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DNGS_CUDA=OFF "
        "-DNGS_BUILD_BENCH=OFF %s" % launcher,
        "nice cmake --build build -j%s" % jobs,
        "%s -m weights_converter.make_fixtures --out build/fixtures" % PY,
    ]
    tsan = any("{ctest_tsan}" in c for m in chosen for c in m["checks"])
    if tsan:
        steps += [
            "cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "
            "-DNGS_SANITIZE=thread -DNGS_CUDA=OFF -DNGS_BUILD_BENCH=OFF -DNGS_BUILD_APPS=OFF "
            "-DNGS_FIXTURES_DIR=%s/build/fixtures %s" % (scratch, launcher),
            "nice cmake --build build-tsan -j%s --target %s" % (jobs, TSAN_TARGETS)]
    for s in steps:
        if sh(s, scratch, setup_log, env) != 0:
            print("mutation_check: setup failed: %s (see %s)" % (s, setup_log))
            return 2
    full = ["{ctest} -j%s" % jobs, "{py} -m pytest -q -p no:cacheprovider tests/python"]
    base_cmds = sorted({c for m in chosen for c in m["checks"]} | (set(full) if a.full else set()))
    for c in base_cmds:
        if sh(expand(c), scratch, setup_log, env) != 0:
            print("mutation_check: the suite fails WITHOUT any mutation: %s (see %s)" % (expand(c), setup_log))
            return 2
    print("mutation_check: baseline passes (%d test subsets), %.0f s" % (len(base_cmds), time.time() - t_start))
    flags = cpu_flags()
    rows = []
    for m in chosen:
        t0 = time.time()
        log = os.path.join(logs, m["name"] + ".log")
        open(log, "w").close()
        if m.get("needs") and m["needs"] not in flags:
            rows.append((m, "skipped (no %s here)" % m["needs"], "", 0.0))
            continue
        path = os.path.join(scratch, m["file"])
        orig = open(path).read()
        assert orig.count(m["old"]) == 1, m["name"]
        try:
            with open(path, "w") as f:
                f.write(orig.replace(m["old"], m["new"]))
            if any(sh(c, scratch, log, env) != 0 for c in build_cmds(jobs, tsan)):
                rows.append((m, "ERROR (mutant does not build)", "", time.time() - t0))
                continue
            caught_by = [c for c in m["checks"] + (full if a.full else [])
                         if sh(expand(c), scratch, log, env) != 0]
            contrast = ""
            if m.get("contrast"):
                hit = any(sh(expand(c), scratch, log, env) != 0 for c in m["contrast"])
                contrast = "fp16 goldens alone: %s" % ("caught" if hit else "missed")
            verdict = "caught" if caught_by else "SURVIVED"
            rows.append((m, verdict, contrast, time.time() - t0))
        finally:
            with open(path, "w") as f:
                f.write(orig)
        print("  %-38s %-9s %5.0f s  %s" % (m["name"], rows[-1][1], rows[-1][3], rows[-1][2]), flush=True)
    for c in build_cmds(jobs, tsan):  # back to the clean build
        sh(c, scratch, setup_log, env)
    print("\nmutation_check: %d mutations, %.0f s in all%s" % (len(rows), time.time() - t_start,
                                                             " (--full)" if a.full else ""))
    print("%-38s %-28s %-34s %s" % ("mutation", "result", "owner", "file"))
    survived = 0
    caught = 0
    for m, verdict, contrast, _ in rows:
        print("%-38s %-28s %-34s %s" % (m["name"], verdict, m["owner"], m["file"]))
        survived += verdict == "SURVIVED"
        caught += verdict == "caught"
    ran = sum(1 for r in rows if r[1] in ("caught", "SURVIVED"))
    print("caught %d of %d (%.0f %%)" % (caught, ran, 100.0 * caught / max(ran, 1)))
    if not a.keep and not a.scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    return 1 if survived or any(r[1].startswith("ERROR") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

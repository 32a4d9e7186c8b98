#!/usr/bin/env python3
"""Build-time resource check of the nvcc-built CUDA kernels (docs/CUDA.md, "Resources").

For every pair NAME.ptx / NAME.log in DIR (the PTX of one .cu for one architecture and
ptxas -v's report of compiling it, made by tests/cpp/cuda_resources.sh), each kernel entry
must
  * fit its block's registers in one SM's 64 K: warps x (registers x 32, rounded up to the
    allocation unit of 256) <= 65536, for the block size its __launch_bounds__ declares
    (PTX .maxntid; a kernel without one is taken at 1024 threads, the most a launch may use);
  * not spill (ptxas: 0 bytes spill stores and spill loads), except a kernel listed in the
    --known file (lines "NAME_PART MAX_BYTES  # why": a kernel whose mangled name contains
    NAME_PART may spill at most MAX_BYTES each way; a known spill that grew, or one that
    is gone, is reported, the first as a failure).
Prints one line per kernel and architecture; exits 1 naming every kernel that fails, 2 when
DIR holds no report. Usage: check_cuda_resources.py DIR [--known FILE]
"""
import os
import re
import sys

REGS_PER_SM = 65536
REG_UNIT = 256  # registers are allocated per warp in units of 256
MAX_THREADS = 1024

ENTRY_RE = re.compile(r"\.entry\s+([\w$]+)\s*\(")
MAXNTID_RE = re.compile(r"\.maxntid\s+(\d+)(?:\s*,\s*(\d+))?(?:\s*,\s*(\d+))?")
COMPILING_RE = re.compile(r"Compiling entry function '([^']+)' for '(sm_\w+)'")
PROPS_RE = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
USED_RE = re.compile(r"Used (\d+) registers")


def launch_bounds(ptx_text):
    """{entry: max threads per block} from the PTX (.maxntid), None when undeclared."""
    bounds = {}
    for m in ENTRY_RE.finditer(ptx_text):
        name = m.group(1)
        body_start = ptx_text.find("{", m.end())
        header = ptx_text[m.end(): body_start if body_start >= 0 else len(ptx_text)]
        b = MAXNTID_RE.search(header)
        if b:
            n = 1
            for g in b.groups():
                if g:
                    n *= int(g)
            bounds[name] = n
        else:
            bounds[name] = None
    return bounds


def resources(log_text):
    """[(entry, arch, registers, stack, spill_stores, spill_loads)] from ptxas -v output."""
    out = []
    cur = None
    for line in log_text.splitlines():
        m = COMPILING_RE.search(line)
        if m:
            cur = {"name": m.group(1), "arch": m.group(2), "regs": 0, "stack": 0,
                   "stores": 0, "loads": 0}
            out.append(cur)
            continue
        if cur is None:
            continue
        m = PROPS_RE.search(line)
        if m:
            cur["stack"], cur["stores"], cur["loads"] = (int(g) for g in m.groups())
        m = USED_RE.search(line)
        if m:
            cur["regs"] = int(m.group(1))
    return out


def block_registers(regs, threads):
    warps = (threads + 31) // 32
    per_warp = (regs * 32 + REG_UNIT - 1) // REG_UNIT * REG_UNIT
    return warps * per_warp


def read_known(path):
    """[(name_part, max_bytes)] from a --known file."""
    known = []
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                part, n = line.split()
                known.append((part, int(n)))
    return known


def check(ptx_text, log_text, source="", known=()):
    """Returns (lines, failures, entries) for one PTX / log pair."""
    bounds = launch_bounds(ptx_text)
    lines, failures = [], []
    entries = resources(log_text)
    for e in entries:
        threads = bounds.get(e["name"])
        declared = threads is not None
        if not declared:
            threads = MAX_THREADS
        total = block_registers(e["regs"], threads)
        line = (f"{source}{e['name']} {e['arch']}: {e['regs']} registers x {threads} threads"
                f"{'' if declared else ' (no __launch_bounds__)'} = {total} of {REGS_PER_SM}, "
                f"stack {e['stack']} B, spills {e['stores']}/{e['loads']} B")
        bad = []
        if total > REGS_PER_SM:
            bad.append("registers x threads exceed 64 K per SM")
        allowed = [n for part, n in known if part in e["name"]]
        spill = max(e["stores"], e["loads"])
        if spill and not (allowed and spill <= allowed[0]):
            bad.append("spills" + (f" (more than the known {allowed[0]} B)" if allowed else ""))
        elif spill:
            line += f"  (known spill, at most {allowed[0]} B: tests/cpp/cuda_resources_known.txt)"
        elif allowed:
            line += "  (listed as a known spill but spills no more: remove it from the list)"
        if bad:
            failures.append(line + ": " + ", ".join(bad))
            line += "  FAIL: " + ", ".join(bad)
        lines.append(line)
    return lines, failures, len(entries)


def main(argv):
    known = []
    if len(argv) == 4 and argv[2] == "--known":
        known = read_known(argv[3])
    elif len(argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    d = argv[1]
    logs = sorted(f for f in os.listdir(d) if f.endswith(".log")) if os.path.isdir(d) else []
    n_entries, all_failures = 0, []
    for log in logs:
        stem = log[:-4]
        ptx = os.path.join(d, stem + ".ptx")
        if not os.path.exists(ptx):
            all_failures.append(f"{stem}: no PTX next to its ptxas report")
            continue
        with open(ptx) as f:
            ptx_text = f.read()
        with open(os.path.join(d, log)) as f:
            log_text = f.read()
        lines, failures, n = check(ptx_text, log_text, stem + ": ", known)
        n_entries += n
        for line in lines:
            print(line)
        all_failures += failures
    if n_entries == 0:
        print(f"check_cuda_resources: no kernel reports in {d}", file=sys.stderr)
        return 2
    if all_failures:
        print(f"\n{len(all_failures)} kernel(s) fail the resource check:", file=sys.stderr)
        for f in all_failures:
            print("  " + f, file=sys.stderr)
        return 1
    print(f"{n_entries} kernel entries: registers fit 64 K per SM at their launch bounds, no spills")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

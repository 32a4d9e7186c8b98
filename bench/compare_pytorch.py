"""ngs against the authors' PyTorch model, same weights, same machine, same run.

    /usr/bin/python3 bench/compare_pytorch.py [--ngs build/bin/ngs] [--seconds 3]
        [--threads 1,all] [--configs drums22k,sr16k] [--json-out results.json]

For each benchmark configuration (bench/make_models.py: random weights written as the
authors' Lightning checkpoints, then converted by `python3 -m weights_converter`), and
each thread count (1, then all cores), it times the end-to-end cases of `ngs bench` on
both sides, alternating the two sides --rounds times per case so that a busy machine
slows both alike, and prints the speed-up ratios (PyTorch median time / ngs median time).

PyTorch side: weights_converter/reference/model.py (the authors' modules, state_dict
compatible), eval mode, torch.no_grad, float32, the authors' decode (irfft of the
magnitudes, filter window, fftshift, rfft of noise and impulse response, irfft, nn.Fold
overlap-add, post-processing conv), with the uniform noise drawn by torch.rand inside the
timed call as the authors do. To be a strong baseline, what does not depend on the input
is built once outside the timed region (OLA windows, divisor, nn.Fold for each length),
and resynthesis runs segment by segment like ngs. BLAS: the libblas.so.3 alternative
(OpenBLAS after scripts/setup.sh) is printed with torch's build configuration and the
BLAS library actually mapped into this process.
"""
import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import make_models  # noqa: E402
from weights_converter.reference import paths as P  # noqa: E402
from weights_converter import reference as R  # noqa: E402

CASES = ["decode", "sample", "encode", "resynth_10s", "path_10s"]


# ---- BLAS report -----------------------------------------------------------------------

def blas_report():
    lines = []
    cfg = torch.__config__.show()
    for l in cfg.splitlines():
        if "BLAS" in l or "MKL" in l or "CPU capability" in l:
            for part in l.split(", "):
                if "BLAS" in part or "MKL" in part or "capability" in part:
                    lines.append("torch: " + part.strip(" -"))
    try:
        q = subprocess.run(["update-alternatives", "--query", "libblas.so.3-x86_64-linux-gnu"],
                           capture_output=True, text=True).stdout
        val = [l for l in q.splitlines() if l.startswith("Value:")]
        lines.append("libblas.so.3 alternative: " + (val[0][6:].strip() if val else "unknown"))
    except OSError:
        lines.append("libblas.so.3 alternative: update-alternatives not available")
    a = torch.randn(256, 256)
    (a @ a).sum().item()
    torch.nn.functional.linear(a, a).sum().item()
    mapped = set()
    with open("/proc/self/maps") as f:
        for l in f:
            p = l.split()[-1]
            if "blas" in p.lower() or "lapack" in p.lower() or "dnnl" in p.lower():
                mapped.add(os.path.realpath(p))
    lines.append("mapped: " + (", ".join(sorted(mapped)) or "no BLAS library mapped"))
    return lines


# ---- PyTorch cases ---------------------------------------------------------------------

class TorchDecoder:
    """The authors' decode for a fixed number of grains n, constants built once."""

    def __init__(self, w, n):
        hp = w.hparams
        L, hop = hp["l_grain"], hp["hop_size"]
        self.w, self.n, self.L = w, n, L
        self.win = torch.as_tensor(R.ola_windows(n, L), dtype=torch.float32)
        self.div = (torch.as_tensor(R.ola_divisor(n, L), dtype=torch.float32)
                    if hp["normalize_ola"] else None)
        self.fold = nn.Fold(((n + 3) * hop, 1), (L, 1), stride=(hop, 1))
        self.fw = w.filter_window.to(torch.float32).unsqueeze(0)
        self.pp = hp["pp_chans"]

    @torch.no_grad()
    def __call__(self, z):
        w = self.w
        H = R.mod_sigmoid(w.decoder_linears(z))
        ir = torch.fft.irfft(torch.complex(H, torch.zeros_like(H))) * self.fw
        ir = torch.fft.fftshift(ir, dim=-1)
        noise = torch.rand(self.n, self.L) * 2 - 1
        y = torch.fft.irfft(torch.fft.rfft(noise, dim=1) * torch.fft.rfft(ir, dim=1))
        y = y * self.win
        a = self.fold(y.t().unsqueeze(0)).reshape(-1)
        if self.div is not None:
            a = a / self.div
        return w.post_pro(a.reshape(1, 1, -1).repeat(1, self.pp, 1)).reshape(-1)


@torch.no_grad()
def torch_encode_grains(w, g):
    """Encoder on windowed grains [m, L] -> mu [m, z_dim] (reference.encode's body)."""
    h = g.unsqueeze(1)
    for conv in w.encoder_convs:
        h = conv(h)
    h = w.encoder_linears(h.reshape(g.shape[0], w.flatten_size))
    mu = w.mu(h)
    w.logvar(h)  # the authors' encoder computes both
    return mu


def case_geometry(hp):
    """Sizes of the cases of `ngs bench` for waveform hparams hp: one (a one-shot's
    samples), n10 (grains of the 10 s path), len10 (samples of the 10 s resynthesis
    input), its segments of S samples advancing by D with X-sample crossfades, K of them."""
    L, hop, N, sr = hp["l_grain"], hp["hop_size"], hp["n_grains"], hp["sr"]
    one = (N + 3) * hop
    n10 = 4 * (math.floor(10.0 * sr / L) * L) // L - 3
    len10 = int(10 * sr)
    S, X = one, hop
    D = S - X
    K = 1 if len10 <= S else 1 + -(-(len10 - S) // D)
    return {"one": one, "n10": n10, "len10": len10, "S": S, "X": X, "D": D, "K": K}


def resynth_input(len10, rand):
    """The resynthesis input: a sine plus a little noise; rand(n) draws uniform [0, 1)."""
    t = np.arange(len10, dtype=np.float32)
    return (0.4 * np.sin(t * np.float32(0.0627)) + 0.1 * (rand(len10) - 0.5)).astype(np.float32)


def crossfade_join(outs, g):
    """Joins the decoded segments outs[k] ([S] each) with one-hop linear crossfades, as
    ngs_resynthesize: returns the first len10 samples."""
    S, X, D, K = g["S"], g["X"], g["D"], g["K"]
    y = np.zeros((K - 1) * D + S, dtype=np.float32)
    ramp = ((np.arange(X, dtype=np.float32) + 0.5) / X).astype(np.float32)
    for k, o in enumerate(outs):
        o = np.asarray(o)
        if k > 0:
            y[k * D:k * D + X] = y[k * D:k * D + X] * (1 - ramp) + o[:X] * ramp
            y[k * D + X:k * D + S] = o[X:]
        else:
            y[:S] = o
    return y[:g["len10"]]


def torch_cases(w, l):
    hp = w.hparams
    L, hop, N, sr, zd = hp["l_grain"], hp["hop_size"], hp["n_grains"], hp["sr"], hp["z_dim"]
    g = case_geometry(hp)
    one, n10, len10, S, X, D, K = (g[k] for k in ("one", "n10", "len10", "S", "X", "D", "K"))
    gen = torch.Generator().manual_seed(5)
    z = torch.randn(N, zd, generator=gen)
    enc_in = torch.rand(one, generator=gen) - 0.5
    dec_N = TorchDecoder(w, N)
    dec_10 = TorchDecoder(w, n10)
    res_in = torch.from_numpy(resynth_input(
        len10, lambda n: torch.rand(n, generator=gen).numpy()))
    padded = torch.zeros((K - 1) * D + S)
    padded[:len10] = res_in
    win_N = dec_N.win
    e_dim = l.hparams["e_dim"]
    cls = 0 if l.n_conds > 0 else None

    @torch.no_grad()
    def decode():
        dec_N(z)

    @torch.no_grad()
    def sample():
        e = torch.randn(e_dim)
        dec_N(R.latent_decode(l, e, cls))

    @torch.no_grad()
    def encode():
        torch_encode_grains(w, enc_in.unfold(0, L, hop) * win_N)

    @torch.no_grad()
    def resynth():
        segs = padded.unfold(0, S, D)[:K]                     # [K, S]
        # One segment at a time, as ngs does (faster here than one big batch, whose
        # [K * N, C, L / 4] activations leave the caches).
        mu = [torch_encode_grains(w, segs[k].unfold(0, L, hop) * win_N) for k in range(K)]
        return crossfade_join([dec_N(mu[k]).numpy() for k in range(K)], g)

    @torch.no_grad()
    def path():
        zp = torch.from_numpy(P.generate("line", n10, zd, seed=0))
        dec_10(zp)

    return {"decode": (decode, one / sr), "sample": (sample, one / sr),
            "encode": (encode, one / sr), "resynth_10s": (resynth, 10.0),
            "path_10s": (path, (n10 + 3) * hop / sr)}


def case_flops(w_hp, l_hp, name):
    """Useful FP32 FLOPs of a case (the model's matrix work, counted as ngs computes it:
    BatchNorm folded, the LSTM input projection once per sequence; FFTs, windows and the
    post-processing FIR are not counted)."""
    z, h, L, N = w_hp["z_dim"], w_hp["h_dim"], w_hp["l_grain"], w_hp["n_grains"]
    F_ = L // 2 + 1
    C, K, s, nc = w_hp["channels"], w_hp["kernel_size"], w_hp["stride"], w_hp["n_convs"]
    dec = 2 * z * h + (w_hp["n_linears"] - 1) * 2 * h * h + 2 * h * F_
    enc, Lin = 0, L
    for i in range(nc):
        Lout = Lin // s
        enc += 2 * C * (1 if i == 0 else C) * K * Lout + 3 * (2 * C * C * 3 + 4 * C * C) * Lout
        Lin = Lout
    enc += 2 * C * Lin * h + 2 * h * z + 4 * z * z
    lat = 0
    if l_hp is not None:
        e, lh, ln = l_hp["e_dim"], l_hp["h_dim"], l_hp["n_linears"]
        ncond = len(l_hp["classes"]) if l_hp["conditional"] and len(l_hp["classes"]) > 1 else 0
        G = 4 if l_hp["rnn_type"] == "LSTM" else 3
        lat = 2 * (e + ncond) * lh + (ln - 1) * 2 * lh * lh
        lat += l_hp["n_RNN"] * (2 * G * lh * lh + N * 2 * G * lh * lh)
        lat += N * (2 * (lh + ncond) * lh + (ln - 1) * 2 * lh * lh + 2 * lh * z)
    g = case_geometry(w_hp)
    return {"decode": N * dec, "sample": lat + N * dec, "encode": N * enc,
            "resynth_10s": g["K"] * N * (enc + dec), "path_10s": g["n10"] * dec}[name]


def time_case(fn, seconds):
    fn()  # warm-up
    t = []
    start = time.perf_counter()
    cpu = 0.0
    while len(t) < 3 or time.perf_counter() - start < seconds:
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        t.append((time.perf_counter() - t0) * 1000.0)
        cpu += (time.process_time() - c0) * 1000.0
    t.sort()
    return {"runs": len(t), "mean_ms": float(np.mean(t)), "p50_ms": t[len(t) // 2],
            "min_ms": t[0], "max_ms": t[-1], "cpu_mean_ms": cpu / len(t)}


# ---- shared by the comparison scripts (compare_ort.py) --------------------------------

def serve(cases, hello):
    """A persistent timing process: prints `hello` (with "ready") as one JSON line, then
    reads "CASE SECONDS" lines on stdin, times cases[CASE] = (fn, audio seconds) in this
    process and answers one JSON line (time_case's result) per request."""
    print(json.dumps(dict(hello, ready=True)), flush=True)
    for line in sys.stdin:
        name, seconds = line.split()
        fn, audio_s = cases[name]
        print(json.dumps(dict(time_case(fn, float(seconds)), audio_seconds=audio_s)), flush=True)


class Worker:
    """The parent's end of a serve() process started with argv and env."""

    def __init__(self, argv, env):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, env=env)
        line = self.p.stdout.readline()
        if not line:
            self.p.wait()
            raise RuntimeError(f"{os.path.basename(argv[1])} worker exited with status "
                               f"{self.p.returncode} before it was ready")
        self.hello = json.loads(line)

    def time(self, name, seconds):
        self.p.stdin.write(f"{name} {seconds}\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError(f"worker exited during case {name}")
        return json.loads(line)

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def thread_env(T, omp_wait_policy=""):
    """Environment of a worker with T threads (OpenMP, OpenBLAS, MKL and NGS_COMPARE_THREADS)."""
    env = dict(os.environ, NGS_COMPARE_THREADS=str(T), OMP_NUM_THREADS=str(T),
               OPENBLAS_NUM_THREADS=str(T), MKL_NUM_THREADS=str(T))
    if omp_wait_policy:
        env["OMP_WAIT_POLICY"] = omp_wait_policy
    return env


def ngs_time(ngs, T, model, name, seconds, prog="compare_pytorch"):
    """One round of `ngs bench` for one case: its JSON case result (exits on failure)."""
    ng = subprocess.run([ngs, "--threads", str(T), "bench", model, "--json", "--cases", name,
                         "--seconds", str(seconds)], capture_output=True, text=True)
    if ng.returncode != 0:
        sys.exit(f"{prog}: ngs bench failed: {ng.stderr.strip()}")
    return json.loads(ng.stdout)["cases"][0]


def merge(rounds):
    """Per-round results of one side -> median of the round medians, min of the minima."""
    return {"p50_ms": float(np.median([r["p50_ms"] for r in rounds])),
            "min_ms": float(min(r["min_ms"] for r in rounds)),
            "mean_ms": float(np.mean([r["mean_ms"] for r in rounds])),
            "cpu_mean_ms": float(np.average([r["cpu_mean_ms"] for r in rounds],
                                            weights=[r["runs"] for r in rounds])),
            "runs": int(sum(r["runs"] for r in rounds))}


def machine_info():
    """CPU model (/proc/cpuinfo), logical cores, L2 (lscpu), platform, load average."""
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), platform.processor())
    l2 = "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        l2 = next((l.split(":", 1)[1].strip() for l in out.splitlines()
                   if l.startswith("L2 cache")), l2)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count() or 1, "l2": l2,
            "platform": platform.platform(), "loadavg": os.getloadavg()}


def add_common_args(ap):
    ap.add_argument("--ngs", default="build/bin/ngs")
    ap.add_argument("--models", default="build/bench-models")
    ap.add_argument("--configs", default="drums22k,sr16k")
    ap.add_argument("--threads", default="1,all")
    ap.add_argument("--seconds", type=float, default=3.0,
                    help="measuring time per case, per side and per round")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternations of the sides per case (robust to a busy machine)")
    ap.add_argument("--json-out", default="")
    ap.add_argument("--omp-wait-policy", default="",
                    help="OMP_WAIT_POLICY for PyTorch (e.g. passive: no spinning OpenMP "
                         "threads, which matters with several threads on a busy machine)")


def thread_counts(spec, cores, prog="compare_pytorch"):
    """--threads "1,all" -> sorted counts; exits with a message on a bad entry."""
    try:
        t = sorted({cores if x.strip() == "all" else int(x) for x in spec.split(",")})
    except ValueError:
        sys.exit(f"{prog}: --threads: expected counts or 'all' separated by commas, got {spec!r}")
    if t[0] < 1:
        sys.exit(f"{prog}: --threads: counts must be >= 1, got {spec!r}")
    return t


def config_names(spec, prog="compare_pytorch"):
    """--configs "drums22k,sr16k" -> names of make_models.CONFIGS; exits on an unknown one."""
    names = [c.strip() for c in spec.split(",") if c.strip()]
    bad = [c for c in names if c not in make_models.CONFIGS]
    if bad or not names:
        sys.exit(f"{prog}: --configs: unknown configuration {', '.join(bad) or repr(spec)} "
                 f"(known: {', '.join(sorted(make_models.CONFIGS))})")
    return names


# ---- main ------------------------------------------------------------------------------

def worker(models, config):
    """Persistent PyTorch side (serve()), threads set by the parent through the environment
    and torch.set_num_threads."""
    torch.set_num_threads(int(os.environ["NGS_COMPARE_THREADS"]))
    w, l = make_models.load(models, config)
    serve(torch_cases(w, l), {"torch_threads": torch.get_num_threads()})


def torch_worker_argv(models, config, python=None):
    return [python or sys.executable, os.path.abspath(__file__), "--worker", config,
            "--models", models]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(ap)
    ap.add_argument("--peak-gflops", type=float, default=0.0,
                    help="FP32 FMA peak of one core (bench/fma_peak): adds the share of peak")
    ap.add_argument("--worker", default="", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a.models, a.worker)
    if not os.access(a.ngs, os.X_OK):
        sys.exit(f"compare_pytorch: {a.ngs} not found: build it (cmake --build build --target ngs_cli)")
    mi = machine_info()
    cpu, cores = mi["cpu"], mi["cores"]
    threads = thread_counts(a.threads, cores)
    configs = config_names(a.configs)

    print("compare_pytorch:", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
    print(f"machine: {cpu}, {cores} logical cores, L2 {mi['l2']}, {mi['platform']}")
    print(f"torch {torch.__version__}, numpy {np.__version__}")
    for l in blas_report():
        print("  " + l)

    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu,
               "cores": cores, "l2": mi["l2"], "torch": torch.__version__,
               "blas": blas_report(), "runs": []}
    table = []
    for config in configs:
        p = make_models.make(a.models, config)
        w_hp, l_hp = make_models.CONFIGS[config]
        for T in threads:
            tw = Worker(torch_worker_argv(a.models, config), thread_env(T, a.omp_wait_policy))
            print(f"\n{config}, {T} thread(s) (sr {w_hp['sr']}, l_grain {w_hp['l_grain']}, "
                  f"torch threads {tw.hello['torch_threads']}): ms per call, median of "
                  f"{a.rounds} interleaved rounds (min)")
            print(f"{'case':12s} {'PyTorch ms':>20s} {'ngs ms':>20s} {'speed-up':>9s} "
                  f"{'cpu ms torch':>12s} {'cpu ms ngs':>10s} {'cpu ratio':>9s} "
                  f"{'RTF torch':>10s} {'RTF ngs':>9s} {'GFLOP/s':>8s} {'% peak':>7s}")
            for name in CASES:
                t_rounds, n_rounds = [], []
                for _ in range(a.rounds):
                    n_rounds.append(ngs_time(a.ngs, T, p["model"], name, a.seconds))
                    t_rounds.append(tw.time(name, a.seconds))
                audio_s = t_rounds[0]["audio_seconds"]
                tt, nn_ = merge(t_rounds), merge(n_rounds)
                ratio = tt["p50_ms"] / nn_["p50_ms"]
                cpu_ratio = tt["cpu_mean_ms"] / nn_["cpu_mean_ms"]
                # FLOP rate from CPU time per thread: what the cores did while running us.
                gf = case_flops(w_hp, l_hp, name) / (nn_["cpu_mean_ms"] / T / 1000.0) / 1e9
                share = 100.0 * gf / (a.peak_gflops * T) if a.peak_gflops > 0 else float("nan")
                print(f"{name:12s} {tt['p50_ms']:10.2f} ({tt['min_ms']:7.2f}) "
                      f"{nn_['p50_ms']:10.2f} ({nn_['min_ms']:7.2f}) {ratio:8.2f}x "
                      f"{tt['cpu_mean_ms']:12.2f} {nn_['cpu_mean_ms']:10.2f} {cpu_ratio:8.2f}x "
                      f"{audio_s / tt['p50_ms'] * 1000:9.1f}x "
                      f"{audio_s / nn_['p50_ms'] * 1000:8.1f}x {gf:8.1f} {share:6.1f}%",
                      flush=True)
                row = {"config": config, "threads": T, "case": name, "audio_seconds": audio_s,
                       "torch": tt, "ngs": nn_, "speedup": ratio, "cpu_speedup": cpu_ratio,
                       "ngs_gflops": gf,
                       "ngs_peak_share": share, "flops": case_flops(w_hp, l_hp, name)}
                results["runs"].append(row)
                table.append(row)
            tw.close()
    print("\nmarkdown:\n")
    print("| config | threads | case | PyTorch ms | ngs ms | speed-up | PyTorch CPU ms | "
          "ngs CPU ms | CPU-time speed-up | RTF ngs | ngs GFLOP/s | % of FMA peak |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['config']} | {r['threads']} | {r['case']} | {r['torch']['p50_ms']:.2f} | "
              f"{r['ngs']['p50_ms']:.2f} | **{r['speedup']:.2f}x** | "
              f"{r['torch']['cpu_mean_ms']:.2f} | {r['ngs']['cpu_mean_ms']:.2f} | "
              f"**{r['cpu_speedup']:.2f}x** | "
              f"{r['audio_seconds'] / r['ngs']['p50_ms'] * 1000:.1f} | "
              f"{r['ngs_gflops']:.1f} | {r['ngs_peak_share']:.0f} % |")
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(results, f, indent=1)
        print(f"\nwrote {a.json_out}")


if __name__ == "__main__":
    main()

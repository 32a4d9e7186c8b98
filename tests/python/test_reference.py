"""The PyTorch reference: fused vs plain decode, fixed tensors vs the authors'
definitions, RNN/BN/FIR folding vs the authors' modules, chunking, paths, processes."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from weights_converter import convert as CV
from weights_converter import folded as FO
from weights_converter import make_fixtures as MF
from weights_converter.reference import paths as PA
from weights_converter import reference as R
from weights_converter import rng
from weights_converter.reference import processes as PR


def rel(a, b):
    a = torch.as_tensor(np.asarray(a, dtype=np.float64)) if not torch.is_tensor(a) else a.double()
    b = torch.as_tensor(np.asarray(b, dtype=np.float64)) if not torch.is_tensor(b) else b.double()
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def models():
    return {name: MF.random_models(cfg, seed=11) for name, cfg in MF.CONFIGS.items()}


def test_spectrum_identity_matches_four_fft_path():
    r = np.random.default_rng(0)
    for L in (16, 512, 2048):
        H = torch.as_tensor(np.abs(r.normal(size=(3, L // 2 + 1))) + 0.01)
        fw = torch.as_tensor(R.filter_window(L))
        direct = torch.fft.rfft(torch.fft.fftshift(torch.fft.irfft(H.to(torch.complex128), n=L) * fw, dim=-1))
        S = R.spectrum_from_magnitudes(H)
        assert float(direct.imag.abs().max()) < 1e-12
        assert rel(S, direct.real) < 1e-12


def test_fixed_tensors_match_authors_definitions():
    from scipy.signal import windows
    for L, N in ((1024, 9), (2048, 41), (512, 1)):
        fw = torch.fft.fftshift(torch.hann_window(L)).double().numpy()
        assert np.max(np.abs(fw - R.filter_window(L))) < 1e-6
        hann = windows.hann(L, sym=False)
        ow = np.tile(hann, (N, 1))
        ow[0, :L // 2] = hann[L // 2]
        ow[-1, L // 2:] = hann[L // 2]
        assert np.max(np.abs(ow - R.ola_windows(N, L))) < 1e-12
        tar_l = (N + 3) * L // 4
        fold = nn.Fold((tar_l, 1), (L, 1), stride=(L // 4, 1))
        unfold = nn.Unfold((L, 1), stride=(L // 4, 1))
        div = fold(unfold(torch.ones(1, 1, tar_l, 1, dtype=torch.float64))).reshape(-1).numpy()
        np.testing.assert_array_equal(div, R.ola_divisor(N, L))


def test_mod_sigmoid_closed_form():
    """docs/MODEL_SPEC.md §4.2: H = 2 sigmoid(x) ** ln(10) + 1e-7, written out with math (no torch, no
    shared helper), and its fixed points: 2^(1 - ln 10) + 1e-7 at 0, 2 + 1e-7 and 1e-7 at
    the ends."""
    xs = [-40.0, -3.0, -0.5, 0.0, 0.7, 2.0, 40.0]
    got = R.mod_sigmoid(torch.tensor(xs, dtype=torch.float64)).numpy()
    for x, g in zip(xs, got):
        want = 2.0 * math.exp(-math.log(10.0) * math.log1p(math.exp(-x))) + 1e-7
        assert abs(g - want) <= 1e-13 * want, (x, g, want)
    assert abs(got[3] - (2.0 ** (1.0 - math.log(10.0)) + 1e-7)) < 1e-15
    assert abs(got[-1] - (2.0 + 1e-7)) < 1e-12
    assert abs(got[0] - 1e-7) < 1e-20


def _closed_form_decode(hp, c, a, beta, noise):
    """The decoder of docs/MODEL_SPEC.md §4.2 for a model whose last decoder Linear is zero with bias c
    and whose post-processing conv has one tap a (centre, channel 0) and bias beta, in
    numpy float64 from the definitions: H = mod_sigmoid(c) at every bin, so the spectrum is
    (-1)^k H and each grain is H * noise circularly shifted by L/2 (times its window);
    overlap-add at hop L/4 (divided by the overlap count if normalize_ola); softsign."""
    N, L = noise.shape
    hop = L // 4
    h = 2.0 * (1.0 / (1.0 + math.exp(-c))) ** math.log(10.0) + 1e-7
    t = np.arange(L)
    grains = np.empty((N, L))
    for g in range(N):
        win = 0.5 - 0.5 * np.cos(2.0 * np.pi * t / L)
        if g == 0:
            win[:L // 2] = 1.0
        if g == N - 1:
            win[L // 2:] = 1.0
        grains[g] = h * np.roll(noise[g].astype(np.float64), L // 2) * win
    ola = np.zeros((N + 3) * hop)
    count = np.zeros((N + 3) * hop)
    for g in range(N):
        ola[g * hop: g * hop + L] += grains[g]
        count[g * hop: g * hop + L] += 1.0
    if hp["normalize_ola"]:
        ola = ola / count
    v = a * ola + beta
    return h, grains, ola, v / (1.0 + np.abs(v))


@pytest.mark.parametrize("name", sorted(MF.CONFIGS))
def test_decode_matches_closed_form(name):
    """The fused and the authors' unfused decode against _closed_form_decode: catches a
    drift of mod_sigmoid, the spectrum, the windows, the overlap-add, the divisor or the
    post-processing that the fused-versus-plain test cannot see (both share mod_sigmoid)."""
    w, _ = MF.random_models(MF.CONFIGS[name], seed=5)
    w = w.double()
    hp = w.hparams
    N, L = hp["n_grains"], hp["l_grain"]
    c, a, beta = 0.3, 0.8, 0.05
    with torch.no_grad():
        last = w.decoder_linears[-1]
        last.weight.zero_()
        last.bias.fill_(c)
        pp = w.post_pro[0]
        pp.weight.zero_()
        pp.weight[0, 0, hp["pp_ker"] // 2] = a
        pp.bias.fill_(beta)
    r = np.random.default_rng(len(name))
    z = r.normal(0, 1, (N, hp["z_dim"])).astype(np.float32)
    noise = rng.grain_noise(int(r.integers(1, 2 ** 63)), 0, 0, N, L)
    h, grains, ola, audio = _closed_form_decode(hp, c, a, beta, noise)
    dec = R.decode(w, z, noise)
    np.testing.assert_allclose(dec["H"].numpy(), np.full((N, L // 2 + 1), h), rtol=1e-13)
    assert rel(dec["grains"], grains) < 1e-12
    assert rel(dec["ola"], ola) < 1e-12
    assert rel(dec["audio"], audio) < 1e-12
    assert rel(R.decode_unfused(w, z, noise), audio) < 1e-6  # its stored windows are float32
    assert float(np.std(audio)) > 1e-3


@pytest.mark.parametrize("name", sorted(MF.CONFIGS))
def test_fused_decode_equals_plain_decode(models, name):
    w, _ = models[name]
    hp = w.hparams
    N, L = hp["n_grains"], hp["l_grain"]
    z = torch.randn(N, hp["z_dim"], generator=torch.Generator().manual_seed(3))
    noise = rng.grain_noise(5, 0, 0, N, L)
    fused = R.decode(w, z, noise)["audio"]
    plain = R.decode_unfused(w, z, noise)
    assert fused.dtype == torch.float32 and plain.shape == ((N + 3) * L // 4,)
    assert float(plain.std()) > 1e-3
    assert rel(fused, plain) < 2e-6
    # free-synthesis length with rebuilt windows and divisor
    n = N + 5
    z2 = torch.randn(n, hp["z_dim"], generator=torch.Generator().manual_seed(4))
    noise2 = rng.grain_noise(5, 1, 0, n, L)
    assert rel(R.decode(w, z2, noise2)["audio"], R.decode_unfused(w, z2, noise2)) < 2e-6


def test_grains_chunking_uses_absolute_indices(models):
    w, _ = models["gru16k"]
    hp = w.hparams
    N, L = 12, hp["l_grain"]
    z = torch.randn(N, hp["z_dim"], generator=torch.Generator().manual_seed(8))
    S = R.spectrum(w, z)
    full = R.grains(S, rng.grain_noise(9, 0, 0, N, L), 0, N)
    a = R.grains(S[:5], rng.grain_noise(9, 0, 0, 5, L), 0, N)
    b = R.grains(S[5:], rng.grain_noise(9, 0, 5, N - 5, L), 5, N)
    assert torch.equal(torch.cat([a, b]), full)


def _authors_encode(w, audio):
    """Encoder exactly as the authors wrote it: slice_kernel conv, stored windows."""
    x = torch.as_tensor(audio).reshape(1, -1).to(w.mu.weight.dtype)
    g = nn.functional.conv1d(x.unsqueeze(1), w.slice_kernel, stride=w.hparams["hop_size"]).permute(0, 2, 1)
    g = (g * w.ola_windows.unsqueeze(0)).reshape(-1, 1, w.hparams["l_grain"])
    for conv in w.encoder_convs:
        g = conv(g)
    h = w.encoder_linears(g.view(-1, w.flatten_size))
    return w.mu(h), w.logvar(h)


@pytest.mark.parametrize("name", sorted(MF.CONFIGS))
def test_encode_matches_authors_slicing(models, name):
    w, _ = models[name]
    hp = w.hparams
    audio = np.random.default_rng(2).uniform(-0.5, 0.5, (hp["n_grains"] + 3) * hp["hop_size"]).astype(np.float32)
    eps = rng.encoder_eps(3, 0, 0, hp["n_grains"], hp["z_dim"])
    out = R.encode(w, audio, eps)
    with torch.no_grad():
        mu, logvar = _authors_encode(w, audio)
    assert rel(out["mu"], mu) < 1e-6 and rel(out["logvar"], logvar) < 1e-6
    z = mu + torch.as_tensor(eps) * torch.exp(0.5 * logvar)
    assert rel(out["z"], z) < 1e-6
    assert float(logvar.max()) <= 5.0 and float(out["mu"].std()) > 1e-3


@pytest.mark.parametrize("name", sorted(MF.CONFIGS))
def test_folded_model_matches_reference(models, name):
    """BN folding, FIR folding, manual GRU/LSTM cells vs the authors' modules (float64)."""
    w, l = models[name]
    w64 = R.WaveformVAE.from_hparams(w.hparams).double()
    w64.load_state_dict(w.state_dict())
    l64 = R.LatentVAE.from_hparams(l.hparams).double()
    l64.load_state_dict(l.state_dict())
    sd_w = {k: v.numpy() for k, v in w.state_dict().items()}
    sd_l = {k: v.numpy() for k, v in l.state_dict().items()}
    t = dict(CV.fold_waveform(sd_w, w.hparams))
    t.update(CV.fold_latent(sd_l, l.hparams))
    cfg = CV.build_config(w.hparams, l.hparams)
    m = FO.FoldedModel(t, cfg, dtype=torch.float64)
    hp = w.hparams
    N = hp["n_grains"]
    r = np.random.default_rng(5)
    audio = r.uniform(-0.5, 0.5, (N + 3) * hp["hop_size"])
    a, b = R.encode(w64, audio), m.encode(audio)
    # the reference slices with the checkpoint's float32 ola_windows, the folded model
    # with the float64 definition: ~1e-8 apart
    assert rel(b["mu"], a["mu"]) < 1e-7 and rel(b["logvar"], a["logvar"]) < 1e-7
    z = r.normal(size=(N, hp["z_dim"]))
    noise = rng.grain_noise(1, 0, 0, N, hp["l_grain"])
    assert rel(m.decode(z, noise)["audio"], R.decode(w64, z, noise)["audio"]) < 1e-12
    ci = 1 if CV.n_conds(l.hparams) else None
    e = r.normal(size=l.hparams["e_dim"])
    for n in (N, 3, N + 4):
        za = R.latent_decode(l64, e, ci, n)
        assert za.shape == (n, hp["z_dim"])
        assert rel(m.latent_decode(e, ci, n), za) < 1e-12
    ea, eb = R.latent_encode(l64, za), m.latent_encode(za)
    assert rel(eb["mu"], ea["mu"]) < 1e-12 and rel(eb["logvar"], ea["logvar"]) < 1e-12


def test_conditioning_matters_and_is_checked(models):
    _, l = models["lstm22k"]
    e = torch.randn(l.hparams["e_dim"], generator=torch.Generator().manual_seed(1))
    z0, z1 = R.latent_decode(l, e, 0), R.latent_decode(l, e, 1)
    assert rel(z0, z1) > 1e-3
    with pytest.raises(ValueError):
        R.latent_decode(l, e, 7)
    _, lu = models["gru16k"]
    assert lu.n_conds == 0 and R.latent_decode(lu, torch.randn(lu.hparams["e_dim"])).shape[0] == 9


def test_state_dict_keys_and_expected_shapes(models):
    for name, (w, l) in models.items():
        for mod, exp in ((w, CV.expected_waveform_shapes(w.hparams)),
                         (l, CV.expected_latent_shapes(l.hparams))):
            sd = mod.state_dict()
            assert sorted(sd) == sorted(exp), name
            for k, v in sd.items():
                if exp[k] is None:
                    assert k.endswith("num_batches_tracked") and v.dtype == torch.int64
                else:
                    assert tuple(v.shape) == exp[k], k
        h = R.HierarchicalVAE(w.hparams, l.hparams)
        keys = list(h.state_dict())
        assert all(k.startswith(("w_model.", "l_model.")) for k in keys)
        h.load_state_dict({**{"w_model." + k: v for k, v in w.state_dict().items()},
                           **{"l_model." + k: v for k, v in l.state_dict().items()}}, strict=True)


def test_preprocess_matches_scipy_lfilter():
    from scipy.signal import lfilter
    r = np.random.default_rng(4)
    for sr in (16000, 22050, 44100):
        x = 0.2 + 1.5 * r.uniform(-1, 1, 4000)
        b0, b1, b2, a1, a2 = R.biquad_highpass_coeffs(sr)
        want = lfilter([b0, b1, b2], [1.0, a1, a2], x - x.mean())
        want = want * 0.9 / np.max(np.abs(want))
        np.testing.assert_allclose(R.preprocess(x, sr), want, rtol=0, atol=1e-12)
        # peak below 1 and normalize off: no scaling; normalize on: peak 0.9
        small = 0.1 * r.uniform(-1, 1, 1000)
        y = R.preprocess(small, sr)
        assert 0 < np.max(np.abs(y)) < 0.5
        assert abs(np.max(np.abs(R.preprocess(small, sr, normalize=True))) - 0.9) < 1e-12
    # RBJ high-pass: unity gain at Nyquist, zero at DC
    b0, b1, b2, a1, a2 = R.biquad_highpass_coeffs(16000)
    assert abs(b0 + b1 + b2) < 1e-12
    assert abs((b0 - b1 + b2) / (1 - a1 + a2) - 1) < 1e-12


def test_paths_definitions():
    zd, n, seed = 24, 17, 99
    P = rng.path_points(seed, 3, 5, zd, 0.7)
    line = PA.generate("line", n, zd, seed, 3, 0.7)
    np.testing.assert_allclose(line[0], P[0], atol=1e-7)
    np.testing.assert_allclose(line[-1], P[1], atol=1e-6)
    assert np.allclose(np.diff(line, axis=0), (P[1] - P[0]) / (n - 1), atol=1e-5)
    circ = PA.generate("circle", n, zd, seed, 3, 0.7, turns=1.0)
    radius = np.linalg.norm(P[0])
    np.testing.assert_allclose(np.linalg.norm(circ, axis=1), radius, rtol=1e-5)
    np.testing.assert_allclose(circ[0], P[0], atol=1e-6)
    np.testing.assert_allclose(circ[-1], P[0], atol=1e-5)  # one full turn
    sp = PA.generate("spiral", n, zd, seed, 3, 0.7)
    np.testing.assert_allclose(np.linalg.norm(sp, axis=1), radius * np.arange(n) / (n - 1), rtol=1e-5, atol=1e-6)
    rnd = PA.generate("random", 13, zd, seed, 3, 0.7, points=5)  # knots at i = 0, 3, 6, 9, 12
    for p in range(5):
        np.testing.assert_allclose(rnd[3 * p], P[p], atol=1e-5)
    bf = PA.generate("back_and_forth", 13, zd, seed, 3, 0.7, legs=3, gamma=2.0)
    np.testing.assert_allclose(bf[0], P[0], atol=1e-6)
    np.testing.assert_allclose(bf[-1], P[1], atol=1e-5)  # odd number of legs ends at P1
    q = np.float32(1 / 12 * 3) ** 2  # i = 1: u = 0.25, leg 0, f' = 0.0625
    np.testing.assert_allclose(bf[1], P[0] + (P[1] - P[0]) * q, atol=1e-5)
    both = PA.concat(["line", ("circle", {"turns": 2.0})], [4, 6], zd, seed, 3, 0.7)
    np.testing.assert_array_equal(both[:4], PA.generate("line", 4, zd, seed, 3, 0.7))
    np.testing.assert_array_equal(both[4:], PA.generate("circle", 6, zd, seed, 4, 0.7, turns=2.0))
    with pytest.raises(ValueError):
        PA.generate("zigzag", 4, zd, seed)
    assert PA.generate("line", 1, zd, seed).shape == (1, zd)


def _resynth_sample_loop(w, x, seed, G, X):
    """docs/PROCESSES.md resynthesis, written per sample like the engine."""
    hop = w.hparams["hop_size"]
    S = (G + 3) * hop
    D = S - X
    n = len(x)
    K = 1 if n <= S else 1 + math.ceil((n - S) / D)
    y = np.full(n, np.nan)
    for k in range(K):
        seg = np.zeros(S, dtype=np.float32)
        part = x[k * D: k * D + S]
        seg[:len(part)] = part
        out = R.decode(w, R.encode(w, seg)["mu"], rng.grain_noise(seed, k, 0, G, w.hparams["l_grain"]))["audio"].double().numpy()
        for t in range(S):
            if k * D + t >= n:
                break
            if k > 0 and t < X:
                wt = (t + 0.5) / X
                y[k * D + t] = y[k * D + t] * (1 - wt) + out[t] * wt
            else:
                y[k * D + t] = out[t]
    return y


def test_resynthesis_semantics(models):
    w, _ = models["noola"]
    w64 = R.WaveformVAE.from_hparams(w.hparams).double()
    w64.load_state_dict(w.state_dict())
    hop = w.hparams["hop_size"]
    r = np.random.default_rng(6)
    for n, G, X in ((5 * hop + 3, 4, 0), (3000, 5, 100), (100, 0, 0)):
        x = r.uniform(-0.5, 0.5, n).astype(np.float32)
        got = PR.resynthesize(w64, x, 17, G, X)
        want = _resynth_sample_loop(w64, x, 17, G or w.hparams["n_grains"], X or hop)
        assert got.shape == (n,) and not np.isnan(want).any()
        assert rel(got, want) < 1e-12


def test_loop_and_interpolation_semantics(models):
    w, l = models["lstm22k"]
    tar_l = (w.hparams["n_grains"] + 3) * w.hparams["hop_size"]
    events = [dict(class_index=2, onset=0.0, amplitude=1.0), dict(class_index=2, onset=0.5, amplitude=0.5),
              dict(class_index=4, onset=0.95, amplitude=0.8)]
    L = 2 * tar_l + 11
    loop = PR.render_loop(w, l, events, L, 5, 0.8)
    assert loop.shape == (L,) and np.max(np.abs(loop)) <= 0.95 + 1e-12
    # the first event alone, before any limiting, is its normalised one-shot
    one = R.sample_one_shot(w, l, 5, 2, 0.8, 0)["audio"].double().numpy()
    one = (one - one.mean()) / np.max(np.abs(one - one.mean()))
    solo = PR.render_loop(w, l, events[:1], L, 5, 0.8)
    np.testing.assert_allclose(solo[:tar_l], one * 0.95, atol=1e-6)
    assert np.all(solo[tar_l:] == 0)
    steps = 3
    inter = PR.sample_interpolation(w, l, 9, 1, 0.7, steps)
    assert inter.shape == (steps * tar_l,)
    first = R.sample_one_shot(w, l, 9, 1, 0.7, 0)["audio"].double().numpy()
    last_e = rng.embedding_sample(9, 1, l.hparams["e_dim"], 0.7)
    last = R.decode(w, R.latent_decode(l, last_e, 1), rng.grain_noise(9, steps - 1, 0, w.hparams["n_grains"], w.hparams["l_grain"]))["audio"].double().numpy()
    assert rel(inter[:tar_l], first) < 1e-6 and rel(inter[-tar_l:], last) < 1e-6

"""Forward pass from the CONVERTED tensors (docs/MODEL_FORMAT.md names, BatchNorm folded,
one FIR), in PyTorch: what the engine computes, written independently of the authors'
module structure (manual GRU/LSTM cells, no nn.Module). Used by `--check` and tests.

    m = FoldedModel(tensors, config)      tensors: name -> numpy array (F32/F16 ok)
    m.encode(audio, eps=None)             -> dict mu, logvar, z
    m.spectrum(z) / m.magnitudes(z)       -> [n, F]
    m.decode(z, noise)                    -> dict spectrum, grains, ola, audio
    m.latent_decode(e, class_index=None, n_grains=None) -> z [n, z_dim]
    m.latent_encode(z)                    -> dict mu, logvar
"""
import numpy as np
import torch
from torch.nn import functional as F

from . import reference as R


def _lrelu(x):
    return F.leaky_relu(x, 0.2)


class FoldedModel:
    def __init__(self, tensors, config, dtype=torch.float32):
        self.t = {k: torch.as_tensor(np.asarray(v, dtype=np.float64)).to(dtype)
                  for k, v in tensors.items()}
        self.cfg = config
        self.w = config["waveform"]
        self.l = config.get("latent")
        self.dtype = dtype

    def _x(self, a):
        return torch.as_tensor(np.asarray(a) if not torch.is_tensor(a) else a).to(self.dtype)

    # ---- waveform
    @torch.no_grad()
    def encode(self, audio, eps=None):
        t, w = self.t, self.w
        L, hop, K = w["l_grain"], w["hop_size"], w["kernel_size"]
        x = self._x(audio).reshape(-1)
        g = x.unfold(0, L, hop)
        n = g.shape[0]
        h = (g * self._x(R.ola_windows(n, L))).unsqueeze(1)
        for i in range(w["n_convs"]):
            h = F.pad(h, (K // 2, K // 2), mode="reflect")
            h = _lrelu(F.conv1d(h, t["w.enc.conv.%d.weight" % i], t["w.enc.conv.%d.bias" % i],
                                stride=w["stride"]))
            for j in range(3):
                p = "w.enc.res.%d.%d." % (i, j)
                d = 3 ** j
                a = F.pad(_lrelu(h), (d, d), mode="reflect")
                a = _lrelu(F.conv1d(a, t[p + "dil.weight"], t[p + "dil.bias"], dilation=d))
                h = (torch.einsum("oc,ncl->nol", t[p + "sc.weight"], h)
                     + torch.einsum("oc,ncl->nol", t[p + "pw.weight"], a)
                     + t[p + "bias"][None, :, None])
        h = h.reshape(n, -1)
        for i in range(2):
            h = _lrelu(F.linear(h, t["w.enc.lin.%d.weight" % i], t["w.enc.lin.%d.bias" % i]))
        mu = F.linear(h, t["w.enc.mu.weight"], t["w.enc.mu.bias"])
        logvar = F.hardtanh(F.linear(h, t["w.enc.logvar.weight"], t["w.enc.logvar.bias"]), -5.0, 5.0)
        z = mu if eps is None else mu + self._x(eps) * torch.exp(0.5 * logvar)
        return {"mu": mu, "logvar": logvar, "z": z}

    @torch.no_grad()
    def magnitudes(self, z):
        t, h = self.t, self._x(z)
        for i in range(self.w["n_linears"]):
            h = _lrelu(F.linear(h, t["w.dec.lin.%d.weight" % i], t["w.dec.lin.%d.bias" % i]))
        return R.mod_sigmoid(F.linear(h, t["w.dec.out.weight"], t["w.dec.out.bias"]))

    @torch.no_grad()
    def spectrum(self, z):
        return R.spectrum_from_magnitudes(self.magnitudes(z))

    @torch.no_grad()
    def post_process(self, ola):
        k = self.t["w.pp.fir"]
        y = F.conv1d(ola.reshape(1, 1, -1), k.reshape(1, 1, -1), self.t["w.pp.bias"].reshape(1),
                     padding=k.numel() // 2).reshape(-1)
        return y / (1 + y.abs())

    @torch.no_grad()
    def decode(self, z, noise):
        S = self.spectrum(z)
        n = S.shape[0]
        gr = R.grains(S, self._x(noise), 0, n)
        ola = R.overlap_add(gr, n, self.w["normalize_ola"])
        return {"spectrum": S, "grains": gr, "ola": ola, "audio": self.post_process(ola)}

    # ---- latent
    def _rnn(self, prefix, xs, n_steps, const_input):
        """Stacked GRU/LSTM with zero initial state; xs [n, h] (or [h] if const_input).
        Returns (outputs of the last layer [n, h], final hidden of the last layer [h])."""
        t, l = self.t, self.l
        lstm = l["rnn_type"] == "LSTM"
        hd = l["h_dim"]
        inp = xs
        for k in range(l["n_RNN"]):
            p = "%s.%d." % (prefix, k)
            W_ih, W_hh, b_ih, b_hh = t[p + "w_ih"], t[p + "w_hh"], t[p + "b_ih"], t[p + "b_hh"]
            if const_input and k == 0:
                gi_all = (W_ih @ inp + b_ih).unsqueeze(0).expand(n_steps, -1)
            else:
                gi_all = inp @ W_ih.t() + b_ih
            h = torch.zeros(hd, dtype=self.dtype)
            c = torch.zeros(hd, dtype=self.dtype)
            outs = []
            for s in range(n_steps):
                gi, gh = gi_all[s], W_hh @ h + b_hh
                if lstm:
                    i = torch.sigmoid(gi[:hd] + gh[:hd])
                    f = torch.sigmoid(gi[hd:2 * hd] + gh[hd:2 * hd])
                    g = torch.tanh(gi[2 * hd:3 * hd] + gh[2 * hd:3 * hd])
                    o = torch.sigmoid(gi[3 * hd:] + gh[3 * hd:])
                    c = f * c + i * g
                    h = o * torch.tanh(c)
                else:
                    r = torch.sigmoid(gi[:hd] + gh[:hd])
                    u = torch.sigmoid(gi[hd:2 * hd] + gh[hd:2 * hd])
                    nn_ = torch.tanh(gi[2 * hd:] + r * gh[2 * hd:])
                    h = (1 - u) * nn_ + u * h
                outs.append(h)
            inp = torch.stack(outs)
        return inp, inp[-1]

    def _ln_block(self, p, x):
        t = self.t
        x = F.linear(x, t[p + "weight"], t[p + "bias"])
        x = F.layer_norm(x, (x.shape[-1],), t[p + "ln_weight"], t[p + "ln_bias"], 1e-5)
        return _lrelu(x)

    def n_conds(self):
        l = self.l
        return len(l["classes"]) if (l["conditional"] and len(l["classes"]) > 1) else 0

    @torch.no_grad()
    def latent_decode(self, e, class_index=None, n_grains=None):
        t, l = self.t, self.l
        n = l["n_grains"] if n_grains is None else n_grains
        nc = self.n_conds()
        x = self._x(e).reshape(-1)
        if nc:
            oh = torch.zeros(nc, dtype=self.dtype)
            oh[class_index] = 1
            x = torch.cat([x, oh])
        for i in range(l["n_linears"]):
            x = _lrelu(F.linear(x, t["l.dec_e.%d.weight" % i], t["l.dec_e.%d.bias" % i]))
        h, _ = self._rnn("l.dec_rnn", x, n, True)
        if nc:
            h = torch.cat([h, oh.unsqueeze(0).expand(n, -1)], dim=1)
        for i in range(l["n_linears"]):
            h = self._ln_block("l.dec_z.%d." % i, h)
        return F.linear(h, t["l.dec_z.out.weight"], t["l.dec_z.out.bias"])

    @torch.no_grad()
    def latent_encode(self, z):
        t, l = self.t, self.l
        h = self._x(z)
        for i in range(l["n_linears"]):
            h = self._ln_block("l.enc_z.%d." % i, h)
        _, hn = self._rnn("l.enc_rnn", h, h.shape[0], False)
        for i in range(l["n_linears"]):
            hn = _lrelu(F.linear(hn, t["l.enc_e.%d.weight" % i], t["l.enc_e.%d.bias" % i]))
        mu = F.linear(hn, t["l.mu.weight"], t["l.mu.bias"])
        logvar = F.hardtanh(F.linear(hn, t["l.logvar.weight"], t["l.logvar.bias"]), -5.0, 5.0)
        return {"mu": mu, "logvar": logvar}

#include "model_file.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "ngs/ngs.h"

namespace ngs {

namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string &msg) { throw Error(NGS_STATUS_BAD_MODEL, msg); }

constexpr int kMaxDim = 1 << 16;

int get_int(const json &obj, const char *section, const char *key, int lo, int hi) {
  const std::string name = std::string("config ") + section + "." + key;
  if (!obj.contains(key)) bad(name + " is missing");
  const json &v = obj[key];
  if (!v.is_number_integer()) bad(name + " is not an integer (" + json_brief(v) + ")");
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi)
    bad(name + " = " + std::to_string(x) + " is out of range [" + std::to_string(lo) + ", " +
        std::to_string(hi) + "]");
  return static_cast<int>(x);
}

bool get_bool(const json &obj, const char *section, const char *key) {
  const std::string name = std::string("config ") + section + "." + key;
  if (!obj.contains(key)) bad(name + " is missing");
  if (!obj[key].is_boolean()) bad(name + " is not a boolean (" + json_brief(obj[key]) + ")");
  return obj[key].get<bool>();
}

WaveformConfig parse_waveform(const json &w) {
  if (!w.is_object()) bad("config waveform is not an object");
  const char *s = "waveform";
  WaveformConfig c;
  c.sr = get_int(w, s, "sr", 1, 1000000);
  c.l_grain = get_int(w, s, "l_grain", 16, kMaxDim);
  if ((c.l_grain & (c.l_grain - 1)) != 0)
    bad("config waveform.l_grain = " + std::to_string(c.l_grain) + " is not a power of two");
  c.hop = get_int(w, s, "hop_size", 1, kMaxDim);
  if (c.hop != c.l_grain / 4)
    bad("config waveform.hop_size = " + std::to_string(c.hop) + " but l_grain / 4 = " +
        std::to_string(c.l_grain / 4));
  c.n_grains = get_int(w, s, "n_grains", 1, 100000);
  c.z_dim = get_int(w, s, "z_dim", 1, kMaxDim);
  c.h_dim = get_int(w, s, "h_dim", 1, kMaxDim);
  c.channels = get_int(w, s, "channels", 1, 4096);
  c.kernel_size = get_int(w, s, "kernel_size", 1, 1023);
  if (c.kernel_size % 2 == 0)
    bad("config waveform.kernel_size = " + std::to_string(c.kernel_size) + " is not odd");
  c.n_convs = get_int(w, s, "n_convs", 1, 16);
  c.stride = get_int(w, s, "stride", 1, 64);
  c.n_linears = get_int(w, s, "n_linears", 1, 64);
  c.normalize_ola = get_bool(w, s, "normalize_ola");
  c.pp_chans = get_int(w, s, "pp_chans", 1, 1024);
  c.pp_ker = get_int(w, s, "pp_ker", 1, 4095);
  if (c.pp_ker % 2 == 0)
    bad("config waveform.pp_ker = " + std::to_string(c.pp_ker) + " is not odd");
  // Every stage's length must divide exactly and fit its reflection padding.
  int len = c.l_grain;
  for (int i = 0; i < c.n_convs; ++i) {
    if (c.kernel_size / 2 >= len)
      bad("config waveform: kernel_size " + std::to_string(c.kernel_size) +
          " is too large for encoder stage " + std::to_string(i) + " of length " +
          std::to_string(len));
    if (len % c.stride != 0)
      bad("config waveform: stage " + std::to_string(i) + " length " + std::to_string(len) +
          " is not divisible by stride " + std::to_string(c.stride));
    len /= c.stride;
    if (len <= 9)
      bad("config waveform: encoder stage " + std::to_string(i) + " output length " +
          std::to_string(len) + " is too short for the residual dilation 9 (l_grain / stride^n_convs must be >= 10)");
  }
  return c;
}

LatentConfig parse_latent(const json &l, const WaveformConfig &wc) {
  if (!l.is_object()) bad("config latent is not an object or null");
  const char *s = "latent";
  LatentConfig c;
  c.z_dim = get_int(l, s, "z_dim", 1, kMaxDim);
  if (c.z_dim != wc.z_dim)
    bad("config latent.z_dim = " + std::to_string(c.z_dim) + " differs from waveform.z_dim = " +
        std::to_string(wc.z_dim));
  c.h_dim = get_int(l, s, "h_dim", 1, kMaxDim);
  c.e_dim = get_int(l, s, "e_dim", 1, kMaxDim);
  c.n_linears = get_int(l, s, "n_linears", 1, 64);
  c.n_rnn = get_int(l, s, "n_RNN", 1, 64);
  c.n_grains = get_int(l, s, "n_grains", 1, 100000);
  if (c.n_grains != wc.n_grains)
    bad("config latent.n_grains = " + std::to_string(c.n_grains) +
        " differs from waveform.n_grains = " + std::to_string(wc.n_grains));
  if (!l.contains("rnn_type") || !l["rnn_type"].is_string())
    bad("config latent.rnn_type is missing or not a string");
  const std::string rt = l["rnn_type"].get<std::string>();
  if (rt == "GRU")
    c.rnn = RnnType::kGru;
  else if (rt == "LSTM")
    c.rnn = RnnType::kLstm;
  else
    bad("config latent.rnn_type = '" + truncated(rt) + "' (GRU or LSTM expected)");
  const bool conditional = get_bool(l, s, "conditional");
  if (!l.contains("classes") || !l["classes"].is_array())
    bad("config latent.classes is missing or not an array");
  std::set<std::string> seen;
  for (const auto &x : l["classes"]) {
    if (!x.is_string()) bad("config latent.classes holds a non-string (" + json_brief(x) + ")");
    const std::string name = x.get<std::string>();
    if (name.empty()) bad("config latent.classes holds an empty name");
    std::string lower;
    for (char ch : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (!seen.insert(lower).second) bad("config latent.classes names '" + truncated(name) + "' twice");
    c.classes.push_back(name);
  }
  if (c.classes.size() > 4096) bad("config latent.classes has too many entries");
  c.n_conds = (conditional && c.classes.size() > 1) ? static_cast<int>(c.classes.size()) : 0;
  return c;
}

class Loader {
 public:
  Loader(ModelFile &m, bool f16) : m_(m), f16_(f16) {}

  // Checks presence, dtype and shape; returns fp32 values (in place or an owned copy).
  const float *get(const std::string &name, std::vector<int64_t> shape, bool always_f32 = false) {
    const TensorView *t = m_.file->find(name);
    if (t == nullptr) bad("tensor '" + name + "' is missing");  // names are ours
    used_.insert(name);
    TensorView expect;
    expect.shape = shape;
    if (t->shape != shape)
      bad("tensor '" + name + "' has shape " + t->shape_string() + ", expected " +
          expect.shape_string());
    const DType want = (f16_ && !always_f32) ? DType::kF16 : DType::kF32;
    if (t->dtype != want)
      bad("tensor '" + name + "' is " + dtype_name(t->dtype) + ", expected " + dtype_name(want) +
          (always_f32 ? " (always F32)" : (f16_ ? " (ngs.weight_dtype is fp16)" : " (ngs.weight_dtype is fp32)")));
    const float *p;
    if (t->dtype == DType::kF32 && reinterpret_cast<uintptr_t>(t->data) % alignof(float) == 0) {
      p = reinterpret_cast<const float *>(t->data);
    } else {
      std::unique_ptr<float[]> buf(new float[t->numel > 0 ? t->numel : 1]);
      tensor_to_f32(*t, buf.get());
      p = buf.get();
      m_.owned.push_back(std::move(buf));
    }
    for (size_t i = 0; i < t->numel; ++i)
      if (!std::isfinite(p[i]))
        bad("tensor '" + name + "' holds a non-finite value (" + std::to_string(p[i]) +
            ") at element " + std::to_string(i));
    return p;
  }

  Linear linear(const std::string &prefix, int out, int in, bool bias = true) {
    Linear l;
    l.out = out;
    l.in = in;
    l.w = get(prefix + ".weight", {out, in});
    if (bias) l.b = get(prefix + ".bias", {out});
    return l;
  }

  RnnLayer rnn(const std::string &prefix, int gates, int h) {
    RnnLayer r;
    r.in = h;
    r.hidden = h;
    r.w_ih = get(prefix + ".w_ih", {gates * h, h});
    r.w_hh = get(prefix + ".w_hh", {gates * h, h});
    r.b_ih = get(prefix + ".b_ih", {gates * h});
    r.b_hh = get(prefix + ".b_hh", {gates * h});
    return r;
  }

  void check_unused() {
    for (const auto &t : m_.file->tensors()) {
      const bool ours = t.name.rfind("w.", 0) == 0 || t.name.rfind("l.", 0) == 0;
      if (ours && used_.count(t.name) == 0) {
        if (!m_.has_latent && t.name.rfind("l.", 0) == 0)
          bad("tensor '" + truncated(t.name) + "' belongs to a latent model but config latent is null");
        bad("tensor '" + truncated(t.name) + "' is not part of this model's configuration");
      }
    }
  }

 private:
  ModelFile &m_;
  bool f16_;
  std::set<std::string> used_;
};

void load_waveform(Loader &ld, WaveformWeights &w) {
  const WaveformConfig &c = w.cfg;
  const int C = c.channels, K = c.kernel_size;
  w.enc.resize(c.n_convs);
  for (int i = 0; i < c.n_convs; ++i) {
    const std::string p = "w.enc.conv." + std::to_string(i);
    EncoderStage &st = w.enc[i];
    const int cin = i == 0 ? 1 : C;
    st.down.out = C;
    st.down.in = cin;
    st.down.k = K;
    st.down.stride = c.stride;
    st.down.dilation = 1;
    st.down.pad = K / 2;
    st.down.w = ld.get(p + ".weight", {C, cin, K});
    st.down.b = ld.get(p + ".bias", {C});
    for (int j = 0; j < 3; ++j) {
      const std::string r = "w.enc.res." + std::to_string(i) + "." + std::to_string(j);
      ResUnit &u = st.res[j];
      const int d = j == 0 ? 1 : (j == 1 ? 3 : 9);
      u.dil.out = C;
      u.dil.in = C;
      u.dil.k = 3;
      u.dil.stride = 1;
      u.dil.dilation = d;
      u.dil.pad = d;
      u.dil.w = ld.get(r + ".dil.weight", {C, C, 3});
      u.dil.b = ld.get(r + ".dil.bias", {C});
      u.pw = ld.linear(r + ".pw", C, C, false);
      u.sc = ld.linear(r + ".sc", C, C, false);
      u.bias = ld.get(r + ".bias", {C});
    }
  }
  w.enc_lin[0] = ld.linear("w.enc.lin.0", c.h_dim, c.flatten_size());
  w.enc_lin[1] = ld.linear("w.enc.lin.1", c.z_dim, c.h_dim);
  w.mu = ld.linear("w.enc.mu", c.z_dim, c.z_dim);
  w.logvar = ld.linear("w.enc.logvar", c.z_dim, c.z_dim);
  w.dec_lin.clear();
  for (int i = 0; i < c.n_linears; ++i)
    w.dec_lin.push_back(
        ld.linear("w.dec.lin." + std::to_string(i), c.h_dim, i == 0 ? c.z_dim : c.h_dim));
  w.dec_out = ld.linear("w.dec.out", c.filter_size(), c.h_dim);
  w.pp_fir = ld.get("w.pp.fir", {c.pp_ker});
  w.pp_bias = *ld.get("w.pp.bias", {1}, true);
}

void load_latent(Loader &ld, LatentWeights &l) {
  const LatentConfig &c = l.cfg;
  const int h = c.h_dim, G = c.gates();
  auto ln_linear = [&](const std::string &p, int out, int in) {
    LayerNormLinear x;
    x.lin = ld.linear(p, out, in);
    x.ln_w = ld.get(p + ".ln_weight", {out});
    x.ln_b = ld.get(p + ".ln_bias", {out});
    return x;
  };
  l.enc_z.clear();
  for (int i = 0; i < c.n_linears; ++i)
    l.enc_z.push_back(ln_linear("l.enc_z." + std::to_string(i), h, i == 0 ? c.z_dim : h));
  l.enc_rnn.clear();
  for (int k = 0; k < c.n_rnn; ++k) l.enc_rnn.push_back(ld.rnn("l.enc_rnn." + std::to_string(k), G, h));
  l.enc_e.clear();
  for (int i = 0; i < c.n_linears; ++i)
    l.enc_e.push_back(ld.linear("l.enc_e." + std::to_string(i), i == c.n_linears - 1 ? c.e_dim : h, h));
  l.mu = ld.linear("l.mu", c.e_dim, c.e_dim);
  l.logvar = ld.linear("l.logvar", c.e_dim, c.e_dim);
  l.dec_e.clear();
  for (int i = 0; i < c.n_linears; ++i)
    l.dec_e.push_back(ld.linear("l.dec_e." + std::to_string(i), h, i == 0 ? c.e_dim + c.n_conds : h));
  l.dec_rnn.clear();
  for (int k = 0; k < c.n_rnn; ++k) l.dec_rnn.push_back(ld.rnn("l.dec_rnn." + std::to_string(k), G, h));
  l.dec_z.clear();
  for (int i = 0; i < c.n_linears; ++i)
    l.dec_z.push_back(ln_linear("l.dec_z." + std::to_string(i), h, i == 0 ? h + c.n_conds : h));
  l.dec_z_out = ld.linear("l.dec_z.out", c.z_dim, h);
}

}  // namespace

std::unique_ptr<ModelFile> load_model(std::unique_ptr<SafetensorsFile> file) {
  auto m = std::make_unique<ModelFile>();
  m->file = std::move(file);
  const SafetensorsFile &f = *m->file;
  const std::string *magic = f.meta("ngs.format");
  if (magic == nullptr) bad("not an ngs model file (metadata ngs.format is missing)");
  if (*magic != "ngs-model")
    bad("not an ngs model file (ngs.format is '" + truncated(*magic) + "', expected 'ngs-model')");
  const std::string *ver = f.meta("ngs.format_version");
  if (ver == nullptr) bad("metadata ngs.format_version is missing");
  if (*ver != std::to_string(NGS_MODEL_FORMAT_VERSION))
    throw Error(NGS_STATUS_UNSUPPORTED, "model format version '" + truncated(*ver) + "' is not supported (this library reads version " +
                                            std::to_string(NGS_MODEL_FORMAT_VERSION) + ")");
  const std::string *dt = f.meta("ngs.weight_dtype");
  if (dt == nullptr) bad("metadata ngs.weight_dtype is missing");
  if (*dt != "fp32" && *dt != "fp16") bad("metadata ngs.weight_dtype is '" + truncated(*dt) + "' (fp32 or fp16 expected)");
  const bool f16 = *dt == "fp16";
  m->weight_bits = f16 ? 16 : 32;
  const std::string *cfg = f.meta("ngs.config");
  if (cfg == nullptr) bad("metadata ngs.config is missing");
  m->config_json = *cfg;
  if (json_nesting_depth(cfg->data(), cfg->size()) > kMaxJsonDepth)
    bad("metadata ngs.config is nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  json config;
  try {
    config = json::parse(*cfg);
  } catch (const json::exception &e) {
    bad("metadata ngs.config is not valid JSON: " + truncated(e.what(), 200));
  }
  if (!config.is_object()) bad("metadata ngs.config is not a JSON object");
  if (!config.contains("waveform")) bad("config waveform is missing");
  m->waveform.cfg = parse_waveform(config["waveform"]);
  m->has_latent = config.contains("latent") && !config["latent"].is_null();
  if (m->has_latent) m->latent.cfg = parse_latent(config["latent"], m->waveform.cfg);

  Loader ld(*m, f16);
  load_waveform(ld, m->waveform);
  if (m->has_latent) load_latent(ld, m->latent);
  ld.check_unused();
  return m;
}

std::unique_ptr<ModelFile> load_model_file(const std::string &path) {
  return load_model(std::make_unique<SafetensorsFile>(read_file(path), path));
}

std::unique_ptr<ModelFile> load_model_buffer(const void *data, size_t size) {
  return load_model(std::make_unique<SafetensorsFile>(copy_bytes(data, size), "model buffer"));
}

}  // namespace ngs

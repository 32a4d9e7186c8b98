// The C API (engine/include/ngs/ngs.h): argument checks, status codes and the thread-local
// error message. Every entry point catches everything; nothing is thrown across the C
// boundary. The processes themselves live in engine.cpp, paths.cpp and pipelines.cpp.
#include <cctype>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <initializer_list>
#include <new>
#include <string>
#include <type_traits>

#include "common/error.h"
#include "cuda/cuda_backend.h"
#include "api_error.h"
#include "engine.h"
#include "ngs/ngs.h"

namespace {

// Fixed-size so that reporting an error never allocates.
thread_local char g_error[1024] = "";

void set_error(const char *msg) {
  std::snprintf(g_error, sizeof g_error, "%s", msg);
}

// kernels/common/error.h lists the error kinds without the public header: same values.
constexpr bool same_kind(int kind, ngs_status status) { return kind == static_cast<int>(status); }
static_assert(same_kind(ngs::kInvalidArgument, NGS_STATUS_INVALID_ARGUMENT) &&
                  same_kind(ngs::kIoError, NGS_STATUS_IO_ERROR) &&
                  same_kind(ngs::kBadModel, NGS_STATUS_BAD_MODEL) &&
                  same_kind(ngs::kUnsupported, NGS_STATUS_UNSUPPORTED) &&
                  same_kind(ngs::kCapacity, NGS_STATUS_CAPACITY) &&
                  same_kind(ngs::kOutOfMemory, NGS_STATUS_OUT_OF_MEMORY) &&
                  same_kind(ngs::kBackendError, NGS_STATUS_BACKEND_ERROR) &&
                  same_kind(ngs::kInternalError, NGS_STATUS_INTERNAL_ERROR),
              "ngs::ErrorKind and ngs_status differ");

[[noreturn]] void fail(ngs_status s, const std::string &msg) { throw ngs::Error(s, msg); }
[[noreturn]] void invalid(const std::string &msg) { fail(NGS_STATUS_INVALID_ARGUMENT, msg); }

template <class F>
ngs_status guard(F &&f) noexcept {
  return ngs::api_guard(static_cast<F &&>(f));
}

// The value of a C enum parameter as an int, read without an enum-typed load: a C caller
// may pass any int, which C++ (and UBSan) would not accept as a value of the enum.
template <class E>
int enum_value(const E &e) {
  std::underlying_type_t<E> v;
  static_assert(sizeof v == sizeof e, "enum size");
  std::memcpy(&v, &e, sizeof v);
  return static_cast<int>(v);
}

void need(const void *p, const char *what) {
  if (p == nullptr) invalid(std::string(what) + " is NULL");
}

void check_finite(const float *x, size_t n, const char *what) {
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "%s holds a non-finite value at element %zu", what, i);
      invalid(buf);
    }
}

// Output checks: a finite input can still overflow the float range (temperature FLT_MAX,
// latents of 3e38): such a result is an error, never a status OK with NaN in it. On
// failure every output of the call is zeroed (none is left half-valid).
struct Out {
  float *p;
  size_t n;
};

void check_outputs(std::initializer_list<Out> outs, const char *what) {
  for (const Out &o : outs) {
    if (o.p == nullptr) continue;
    for (size_t i = 0; i < o.n; ++i) {
      if (std::isfinite(o.p[i])) continue;
      for (const Out &z : outs)
        if (z.p != nullptr) std::fill(z.p, z.p + z.n, 0.0f);
      invalid(std::string(what) +
              " would hold non-finite values (the inputs overflow the float range, e.g. a "
              "temperature or latents far too large); the output was zeroed");
    }
  }
}

// Input and output buffers of one call may not share memory (the processes read their
// inputs while they write): [a, a + an) and [b, b + bn) in bytes.
void check_disjoint(const void *a, size_t an, const char *a_name, const void *b, size_t bn,
                    const char *b_name) {
  if (a == nullptr || b == nullptr || an == 0 || bn == 0) return;
  const uintptr_t a0 = reinterpret_cast<uintptr_t>(a), b0 = reinterpret_cast<uintptr_t>(b);
  if (a0 < b0 + bn && b0 < a0 + an)
    invalid(std::string(a_name) + " and " + b_name +
            " overlap: input and output buffers must be distinct (no in-place processing)");
}

// Largest path `points` / `legs`: every count up to it is exact in float (docs/PATHS.md
// computes t * legs in float32 before the integer cast).
constexpr int kMaxPathCount = 1 << 24;

void check_grains(const ngs_context *ctx, int n, const char *what) {
  if (n < 1) invalid(std::string(what) + " = " + std::to_string(n) + " must be >= 1");
  if (n > ctx->max_grains)
    fail(NGS_STATUS_CAPACITY, std::string(what) + " = " + std::to_string(n) +
                                  " exceeds the context's max_grains " +
                                  std::to_string(ctx->max_grains));
}

void check_len(size_t have, size_t need_len, const char *what) {
  if (have < need_len)
    invalid(std::string(what) + " = " + std::to_string(have) + " is too small (" +
            std::to_string(need_len) + " samples needed)");
}

void need_latent(const ngs_model *m) {
  if (!m->has_latent())
    fail(NGS_STATUS_UNSUPPORTED, "the model file holds no latent (sequence) model");
}

void check_temperature(float t) {
  if (!std::isfinite(t) || t < 0.0f)
    invalid("temperature " + std::to_string(t) + " must be finite and >= 0");
}

void check_class(const ngs_model *m, int class_index) {
  const int nc = m->lc().n_conds;
  if (nc == 0) {
    if (class_index != NGS_CLASS_NONE)
      invalid("class_index " + std::to_string(class_index) +
              " given to an unconditional model (use NGS_CLASS_NONE)");
  } else if (class_index < 0 || class_index >= nc) {
    invalid("class_index " + std::to_string(class_index) + " is out of range [0, " +
            std::to_string(nc) + ")");
  }
}

void check_one_shot_capacity(const ngs_context *ctx) {
  if (ctx->model->n_grains() > ctx->max_grains)
    fail(NGS_STATUS_CAPACITY, "one-shots need " + std::to_string(ctx->model->n_grains()) +
                                  " grains, more than the context's max_grains " +
                                  std::to_string(ctx->max_grains));
}

}  // namespace

// api_error.h: the same message buffer for synth_api.cpp.
void ngs::api_set_error(const char *message) { set_error(message); }

extern "C" {

const char *ngs_version(void) {
#define NGS_STR2(x) #x
#define NGS_STR(x) NGS_STR2(x)
  return NGS_STR(NGS_VERSION_MAJOR) "." NGS_STR(NGS_VERSION_MINOR) "." NGS_STR(NGS_VERSION_PATCH);
}

uint32_t ngs_model_format_version(void) { return NGS_MODEL_FORMAT_VERSION; }

const char *ngs_status_string(ngs_status status) {
  switch (enum_value(status)) {
    case NGS_STATUS_OK: return "ok";
    case NGS_STATUS_INVALID_ARGUMENT: return "invalid argument";
    case NGS_STATUS_IO_ERROR: return "I/O error";
    case NGS_STATUS_BAD_MODEL: return "bad model file";
    case NGS_STATUS_UNSUPPORTED: return "unsupported";
    case NGS_STATUS_CAPACITY: return "request exceeds the context's capacity";
    case NGS_STATUS_OUT_OF_MEMORY: return "out of memory";
    case NGS_STATUS_BACKEND_ERROR: return "backend error";
    case NGS_STATUS_INTERNAL_ERROR: return "internal error";
  }
  return "unknown status";
}

const char *ngs_last_error(void) { return g_error; }

ngs_status ngs_backend_probe(ngs_backend backend) {
  return guard([&] {
    switch (enum_value(backend)) {
      case NGS_BACKEND_AUTO:
      case NGS_BACKEND_CPU: return;
      case NGS_BACKEND_CUDA: {
        const std::string why = ngs::cuda_unavailable_reason(0);
        if (!why.empty()) fail(NGS_STATUS_UNSUPPORTED, why);
        return;
      }
    }
    invalid("unknown backend " + std::to_string(enum_value(backend)));
  });
}

const char *ngs_backend_name(ngs_backend backend) {
  switch (enum_value(backend)) {
    case NGS_BACKEND_AUTO: return "auto";
    case NGS_BACKEND_CPU: return "cpu";
    case NGS_BACKEND_CUDA: return "cuda";
  }
  return "unknown";
}

/* ---- model ---- */

ngs_model_params ngs_model_default_params(void) {
  ngs_model_params p;
  p.backend = NGS_BACKEND_AUTO;
  p.cuda_device = 0;
  return p;
}

static void check_model_params(const ngs_model_params &p) {
  const int b = enum_value(p.backend);
  if (b != NGS_BACKEND_AUTO && b != NGS_BACKEND_CPU && b != NGS_BACKEND_CUDA)
    invalid("unknown backend " + std::to_string(b));
  if (p.cuda_device < 0) invalid("cuda_device must be >= 0");
}

ngs_status ngs_model_init_from_file(const char *path, ngs_model_params params, ngs_model **out) {
  if (out != nullptr) *out = nullptr;
  return guard([&] {
    need(out, "out");
    need(path, "path");
    check_model_params(params);
    *out = ngs::model_create(ngs::load_model_file(path), params).release();
  });
}

ngs_status ngs_model_init_from_buffer(const void *data, size_t size, ngs_model_params params,
                                      ngs_model **out) {
  if (out != nullptr) *out = nullptr;
  return guard([&] {
    need(out, "out");
    need(data, "data");
    check_model_params(params);
    *out = ngs::model_create(ngs::load_model_buffer(data, size), params).release();
  });
}

void ngs_model_free(ngs_model *model) { delete model; }

ngs_status ngs_model_get_info(const ngs_model *model, ngs_model_info *out) {
  return guard([&] {
    need(model, "model");
    need(out, "out");
    const auto &w = model->wc();
    ngs_model_info i;
    std::memset(&i, 0, sizeof i);
    i.sample_rate = w.sr;
    i.grain_length = w.l_grain;
    i.hop_size = w.hop;
    i.n_grains = w.n_grains;
    i.sample_length = model->sample_length();
    i.z_dim = w.z_dim;
    i.filter_size = w.filter_size();
    i.has_latent_model = model->has_latent() ? 1 : 0;
    i.e_dim = model->has_latent() ? model->lc().e_dim : 0;
    i.n_classes = model->has_latent() ? model->lc().n_conds : 0;
    i.weight_bits = model->file->weight_bits;
    i.backend = model->backend;
    *out = i;
  });
}

const char *ngs_model_class_name(const ngs_model *model, int index) {
  if (model == nullptr || !model->has_latent() || index < 0 || index >= model->lc().n_conds)
    return nullptr;
  return model->lc().classes[static_cast<size_t>(index)].c_str();
}

int ngs_model_find_class(const ngs_model *model, const char *name) {
  if (model == nullptr || name == nullptr || !model->has_latent()) return -1;
  const auto &cls = model->lc().classes;
  for (int i = 0; i < model->lc().n_conds; ++i) {
    const std::string &c = cls[static_cast<size_t>(i)];
    if (c.size() != std::strlen(name)) continue;
    bool eq = true;
    for (size_t k = 0; k < c.size() && eq; ++k)
      eq = std::tolower(static_cast<unsigned char>(c[k])) ==
           std::tolower(static_cast<unsigned char>(name[k]));
    if (eq) return i;
  }
  return -1;
}

const char *ngs_model_metadata(const ngs_model *model, const char *key) {
  if (model == nullptr || key == nullptr) return nullptr;
  try {
    const std::string *v = model->file->file->meta(key);
    return v == nullptr ? nullptr : v->c_str();
  } catch (...) {
    return nullptr;
  }
}

size_t ngs_model_audio_length(const ngs_model *model, int n_grains) {
  if (model == nullptr) return 0;  // ngs_model::audio_length computes in size_t
  return model->audio_length(n_grains);
}

int ngs_model_grains_for_duration(const ngs_model *model, double seconds) {
  if (model == nullptr || !std::isfinite(seconds) || seconds <= 0.0) return 0;
  const auto &w = model->wc();
  const double grains = std::floor(seconds * w.sr / w.l_grain);
  if (grains < 1.0) return 0;
  if (grains > (1 << 28)) return 0;
  const long tar_l = static_cast<long>(grains) * w.l_grain;
  return static_cast<int>(4 * tar_l / w.l_grain - 3);
}

/* ---- context ---- */

ngs_context_params ngs_context_default_params(void) {
  ngs_context_params p;
  p.max_grains = 0;
  p.n_threads = 1;
  p.max_loop_length = 0;
  p.precision = NGS_PRECISION_FP32;
  return p;
}

ngs_status ngs_context_init(const ngs_model *model, ngs_context_params params, ngs_context **out) {
  if (out != nullptr) *out = nullptr;
  return guard([&] {
    need(out, "out");
    need(model, "model");
    if (params.max_grains < 0 || params.max_grains > (1 << 20))
      invalid("max_grains " + std::to_string(params.max_grains) + " must be in [0, 1048576]");
    if (params.n_threads < 1 || params.n_threads > 256)
      invalid("n_threads " + std::to_string(params.n_threads) + " must be in [1, 256]");
    if (params.max_loop_length > (static_cast<size_t>(1) << 32))
      invalid("max_loop_length is too large");
    ngs::api_precision_is_fast(params.precision, "ngs_context_params.precision");
    *out = ngs::context_create(*model, params).release();
  });
}

void ngs_context_free(ngs_context *ctx) { delete ctx; }

ngs_precision ngs_context_precision(const ngs_context *ctx) {
  if (ctx == nullptr) return NGS_PRECISION_FP32;
  return ctx->session->precision() == ngs::Precision::kFast ? NGS_PRECISION_FAST
                                                             : NGS_PRECISION_FP32;
}

/* ---- grain VAE ---- */

ngs_decode_params ngs_decode_default_params(void) {
  ngs_decode_params p;
  p.seed = 0;
  p.sequence = 0;
  return p;
}

ngs_status ngs_decode(ngs_context *ctx, const float *z, int n_grains, ngs_decode_params params,
                      float *audio, size_t audio_len) {
  return guard([&] {
    need(ctx, "ctx");
    need(z, "z");
    need(audio, "audio");
    check_grains(ctx, n_grains, "n_grains");
    check_len(audio_len, ctx->model->audio_length(n_grains), "audio_len");
    const size_t zn = static_cast<size_t>(n_grains) * ctx->model->z_dim();
    const size_t an = ctx->model->audio_length(n_grains);
    check_finite(z, zn, "z");
    check_disjoint(z, zn * sizeof(float), "z", audio, an * sizeof(float), "audio");
    ngs::decode(*ctx, z, n_grains, ngs::NoiseKey{params.seed, params.sequence}, audio);
    check_outputs({{audio, an}}, "audio");
  });
}

ngs_encode_params ngs_encode_default_params(void) {
  ngs_encode_params p;
  p.seed = 0;
  p.sequence = 0;
  return p;
}

ngs_status ngs_encode(ngs_context *ctx, const float *audio, size_t n_samples,
                      ngs_encode_params params, float *mu, float *logvar, float *z,
                      int max_grains, int *n_grains_out) {
  return guard([&] {
    need(ctx, "ctx");
    need(audio, "audio");
    const size_t hop = static_cast<size_t>(ctx->model->hop());
    if (n_samples < 4 * hop || n_samples % hop != 0)
      invalid("n_samples " + std::to_string(n_samples) +
              " is not (n + 3) * hop_size with n >= 1 (hop_size " + std::to_string(hop) + ")");
    const size_t n = n_samples / hop - 3;
    if (max_grains < 0) invalid("max_grains " + std::to_string(max_grains) + " must be >= 0");
    if (n > static_cast<size_t>(ctx->max_grains))
      fail(NGS_STATUS_CAPACITY, "the audio holds " + std::to_string(n) +
                                    " grains, more than the context's max_grains " +
                                    std::to_string(ctx->max_grains));
    if ((mu != nullptr || logvar != nullptr || z != nullptr) && static_cast<size_t>(max_grains) < n)
      invalid("max_grains " + std::to_string(max_grains) + " is smaller than the " +
              std::to_string(n) + " grains of the audio");
    check_finite(audio, n_samples, "audio");
    const size_t zb = n * static_cast<size_t>(ctx->model->z_dim()) * sizeof(float);
    const size_t ab = n_samples * sizeof(float);
    check_disjoint(audio, ab, "audio", mu, zb, "mu");
    check_disjoint(audio, ab, "audio", logvar, zb, "logvar");
    check_disjoint(audio, ab, "audio", z, zb, "z");
    check_disjoint(mu, zb, "mu", logvar, zb, "logvar");
    check_disjoint(mu, zb, "mu", z, zb, "z");
    check_disjoint(logvar, zb, "logvar", z, zb, "z");
    ngs::encode(*ctx, audio, static_cast<int>(n), params.seed, params.sequence, mu, logvar, z);
    const size_t zn = zb / sizeof(float);
    check_outputs({{mu, zn}, {logvar, zn}, {z, zn}}, "the latents");
    if (n_grains_out != nullptr) *n_grains_out = static_cast<int>(n);
  });
}

/* ---- sequence VAE ---- */

ngs_status ngs_embedding_sample(const ngs_model *model, float temperature, uint64_t seed,
                                uint32_t sequence, float *e) {
  return guard([&] {
    need(model, "model");
    need(e, "e");
    need_latent(model);
    check_temperature(temperature);
    ngs::embedding_sample(*model, temperature, seed, sequence, e);
    check_outputs({{e, static_cast<size_t>(model->lc().e_dim)}}, "e");
  });
}

ngs_status ngs_latent_decode(ngs_context *ctx, const float *e, int class_index, int n_grains,
                             float *z) {
  return guard([&] {
    need(ctx, "ctx");
    need(e, "e");
    need(z, "z");
    need_latent(ctx->model);
    check_class(ctx->model, class_index);
    check_grains(ctx, n_grains, "n_grains");
    const size_t ed = static_cast<size_t>(ctx->model->lc().e_dim);
    const size_t zn = static_cast<size_t>(n_grains) * ctx->model->z_dim();
    check_finite(e, ed, "e");
    check_disjoint(e, ed * sizeof(float), "e", z, zn * sizeof(float), "z");
    ngs::latent_decode(*ctx, e, class_index, n_grains, z);
    check_outputs({{z, zn}}, "z");
  });
}

ngs_status ngs_latent_encode(ngs_context *ctx, const float *z, int n_grains, float *e_mu,
                             float *e_logvar) {
  return guard([&] {
    need(ctx, "ctx");
    need(z, "z");
    need_latent(ctx->model);
    check_grains(ctx, n_grains, "n_grains");
    const size_t zn = static_cast<size_t>(n_grains) * ctx->model->z_dim();
    const size_t ed = static_cast<size_t>(ctx->model->lc().e_dim);
    check_finite(z, zn, "z");
    check_disjoint(z, zn * sizeof(float), "z", e_mu, ed * sizeof(float), "e_mu");
    check_disjoint(z, zn * sizeof(float), "z", e_logvar, ed * sizeof(float), "e_logvar");
    check_disjoint(e_mu, ed * sizeof(float), "e_mu", e_logvar, ed * sizeof(float), "e_logvar");
    ngs::latent_encode(*ctx, z, n_grains, e_mu, e_logvar);
    check_outputs({{e_mu, ed}, {e_logvar, ed}}, "the embedding");
  });
}

ngs_sample_params ngs_sample_default_params(void) {
  ngs_sample_params p;
  p.class_index = NGS_CLASS_NONE;
  p.temperature = 1.0f;
  p.seed = 0;
  p.count = 1;
  return p;
}

ngs_status ngs_sample(ngs_context *ctx, ngs_sample_params params, float *audio, size_t audio_len) {
  return guard([&] {
    need(ctx, "ctx");
    need(audio, "audio");
    need_latent(ctx->model);
    check_class(ctx->model, params.class_index);
    check_temperature(params.temperature);
    if (params.count < 1) invalid("count " + std::to_string(params.count) + " must be >= 1");
    check_one_shot_capacity(ctx);
    const size_t len = ctx->model->sample_length();
    if (static_cast<size_t>(params.count) > audio_len / len)
      invalid("audio_len " + std::to_string(audio_len) + " is too small for " +
              std::to_string(params.count) + " one-shots of " + std::to_string(len) + " samples");
    ngs::sample(*ctx, params, audio);
    check_outputs({{audio, static_cast<size_t>(params.count) * len}}, "audio");
  });
}

ngs_status ngs_sample_interpolation(ngs_context *ctx, ngs_sample_params params, int steps,
                                    float *audio, size_t audio_len) {
  return guard([&] {
    need(ctx, "ctx");
    need(audio, "audio");
    need_latent(ctx->model);
    check_class(ctx->model, params.class_index);
    check_temperature(params.temperature);
    if (steps < 2) invalid("steps " + std::to_string(steps) + " must be >= 2");
    check_one_shot_capacity(ctx);
    const size_t len = ctx->model->sample_length();
    if (static_cast<size_t>(steps) > audio_len / len)
      invalid("audio_len " + std::to_string(audio_len) + " is too small for " +
              std::to_string(steps) + " one-shots of " + std::to_string(len) + " samples");
    ngs::sample_interpolation(*ctx, params, steps, audio);
    check_outputs({{audio, static_cast<size_t>(steps) * len}}, "audio");
  });
}

/* ---- paths ---- */

ngs_path_params ngs_path_default_params(void) {
  ngs_path_params p;
  p.kind = NGS_PATH_KIND_LINE;
  p.temperature = 1.0f;
  p.seed = 0;
  p.sequence = 0;
  p.turns = 1.0f;
  p.points = 4;
  p.legs = 4;
  p.gamma = 2.0f;
  return p;
}

ngs_status ngs_path_generate(const ngs_model *model, ngs_path_params params, int n_grains, float *z) {
  return guard([&] {
    need(model, "model");
    need(z, "z");
    if (n_grains < 1) invalid("n_grains " + std::to_string(n_grains) + " must be >= 1");
    check_temperature(params.temperature);
    switch (enum_value(params.kind)) {
      case NGS_PATH_KIND_LINE: break;
      case NGS_PATH_KIND_CIRCLE:
      case NGS_PATH_KIND_SPIRAL:
        if (!std::isfinite(params.turns)) invalid("turns must be finite");
        break;
      case NGS_PATH_KIND_RANDOM:
        if (params.points < 2 || params.points > kMaxPathCount)
          invalid("points " + std::to_string(params.points) + " must be in [2, " +
                  std::to_string(kMaxPathCount) + "]");
        break;
      case NGS_PATH_KIND_BACK_AND_FORTH:
        if (params.legs < 1 || params.legs > kMaxPathCount)
          invalid("legs " + std::to_string(params.legs) + " must be in [1, " +
                  std::to_string(kMaxPathCount) + "]");
        if (!(params.gamma > 0.0f) || !std::isfinite(params.gamma))
          invalid("gamma must be finite and > 0");
        break;
      default:
        invalid("unknown path kind " + std::to_string(enum_value(params.kind)));
    }
    ngs::path_generate(*model, params, n_grains, z);
    check_outputs({{z, static_cast<size_t>(n_grains) * model->z_dim()}}, "z");
  });
}

int ngs_path_kind_from_name(const char *name) {
  if (name == nullptr) return -1;
  static const char *const names[] = {"line", "circle", "spiral", "random", "back_and_forth"};
  for (int i = 0; i < 5; ++i)
    if (std::strcmp(name, names[i]) == 0) return i;
  return -1;
}

/* ---- resynthesis ---- */

ngs_resynth_params ngs_resynth_default_params(void) {
  ngs_resynth_params p;
  p.seed = 0;
  p.segment_grains = 0;
  p.crossfade = 0;
  p.progress = nullptr;
  p.progress_user_data = nullptr;
  return p;
}

ngs_status ngs_preprocess(const ngs_model *model, float *audio, size_t n_samples, int normalize) {
  return guard([&] {
    need(model, "model");
    need(audio, "audio");
    if (n_samples < 1) invalid("n_samples must be >= 1");
    check_finite(audio, n_samples, "audio");
    ngs::preprocess(*model, audio, n_samples, normalize != 0);
    check_outputs({{audio, n_samples}}, "audio");
  });
}

ngs_status ngs_resynthesize(ngs_context *ctx, const float *audio, size_t n_samples,
                            ngs_resynth_params params, float *out) {
  return guard([&] {
    need(ctx, "ctx");
    need(audio, "audio");
    need(out, "out");
    if (n_samples < 1) invalid("n_samples must be >= 1");
    if (params.segment_grains < 0)
      invalid("segment_grains " + std::to_string(params.segment_grains) + " must be >= 0");
    check_finite(audio, n_samples, "audio");
    check_disjoint(audio, n_samples * sizeof(float), "audio", out, n_samples * sizeof(float), "out");
    ngs::resynthesize(*ctx, audio, n_samples, params, out);
    check_outputs({{out, n_samples}}, "out");
  });
}

/* ---- drum machine ---- */

ngs_loop_params ngs_loop_default_params(void) {
  ngs_loop_params p;
  p.temperature = 1.0f;
  p.seed = 0;
  return p;
}

ngs_status ngs_render_loop(ngs_context *ctx, const ngs_loop_event *events, int n_events,
                           ngs_loop_params params, float *audio, size_t loop_length) {
  return guard([&] {
    need(ctx, "ctx");
    need(audio, "audio");
    need_latent(ctx->model);
    check_temperature(params.temperature);
    if (n_events < 0) invalid("n_events must be >= 0");
    if (n_events > 0) need(events, "events");
    if (loop_length < 1) invalid("loop_length must be >= 1");
    if (loop_length > ctx->max_loop_length)
      fail(NGS_STATUS_CAPACITY, "loop_length " + std::to_string(loop_length) +
                                    " exceeds the context's max_loop_length " +
                                    std::to_string(ctx->max_loop_length));
    check_one_shot_capacity(ctx);
    for (int i = 0; i < n_events; ++i) {
      const ngs_loop_event &ev = events[i];
      try {
        check_class(ctx->model, ev.class_index);
      } catch (const ngs::Error &e) {
        invalid("event " + std::to_string(i) + ": " + e.what());
      }
      if (!(ev.onset >= 0.0f && ev.onset < 1.0f))
        invalid("event " + std::to_string(i) + ": onset must be in [0, 1)");
      if (!(ev.amplitude >= 0.0f && ev.amplitude <= 1.0f))
        invalid("event " + std::to_string(i) + ": amplitude must be in [0, 1]");
    }
    check_disjoint(events, static_cast<size_t>(n_events) * sizeof(ngs_loop_event), "events", audio,
                   loop_length * sizeof(float), "audio");
    ngs::render_loop(*ctx, events, n_events, params, audio, loop_length);
    check_outputs({{audio, loop_length}}, "audio");
  });
}

}  // extern "C"

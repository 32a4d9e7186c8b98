#include "common.h"

#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>

namespace ngs_cli {

void check(ngs_status status, const char *what) {
  if (status == NGS_STATUS_OK) return;
  std::string msg = ngs_last_error();
  if (msg.empty()) msg = ngs_status_string(status);
  throw Failure(std::string(what) + ": " + msg);
}

ngs_backend parse_backend(const std::string &name) {
  if (name == "auto") return NGS_BACKEND_AUTO;
  if (name == "cpu") return NGS_BACKEND_CPU;
  if (name == "cuda") return NGS_BACKEND_CUDA;
  throw Failure("unknown backend '" + name + "' (expected cpu, cuda or auto)");
}

Engine::Engine(const std::string &path, const GlobalOptions &opt, int max_grains_) {
  if (access(path.c_str(), R_OK) != 0) throw Failure("cannot read model file '" + path + "'");
  ngs_model_params mp = ngs_model_default_params();
  mp.backend = parse_backend(opt.backend);
  Stopwatch sw;
  check(ngs_model_init_from_file(path.c_str(), mp, &model), ("cannot load model '" + path + "'").c_str());
  check(ngs_model_get_info(model, &info), "model info");
  load_ms = sw.ms();
  cparams_ = ngs_context_default_params();
  cparams_.n_threads = opt.threads;
  cparams_.precision = opt.precision == "fast" ? NGS_PRECISION_FAST : NGS_PRECISION_FP32;
  reserve_grains(max_grains_ > 0 ? max_grains_ : 8 * info.n_grains);
}

Engine::~Engine() {
  ngs_context_free(ctx);
  ngs_model_free(model);
}

void Engine::recreate() {
  ngs_context_free(ctx);
  ctx = nullptr;
  check(ngs_context_init(model, cparams_, &ctx), "cannot create context");
}

void Engine::reserve_grains(int n) {
  if (ctx && n <= max_grains) return;
  cparams_.max_grains = n;
  recreate();
  max_grains = n;
}

void Engine::reserve_loop(size_t samples) {
  // 0 in the parameters means the library's default of 10 s.
  const size_t have = cparams_.max_loop_length != 0 ? cparams_.max_loop_length
                                                    : size_t(10) * size_t(info.sample_rate);
  if (ctx && samples <= have) return;
  cparams_.max_loop_length = samples;
  recreate();
}

std::string Engine::class_list() const {
  std::string s;
  for (int i = 0; i < info.n_classes; ++i) {
    if (i) s += ", ";
    s += ngs_model_class_name(model, i);
  }
  return s;
}

int Engine::parse_class(const std::string &text) const {
  if (info.n_classes == 0) {
    if (text.empty()) return NGS_CLASS_NONE;
    throw Failure("this model is unconditional: it has no classes, omit --class");
  }
  if (text.empty())
    throw Failure("this model needs a class: --class NAME or INDEX (" + class_list() + ")");
  int idx = ngs_model_find_class(model, text.c_str());
  if (idx >= 0) return idx;
  bool digits = !text.empty();
  for (char c : text) digits = digits && std::isdigit((unsigned char)c);
  if (digits) {
    long v = std::strtol(text.c_str(), nullptr, 10);
    if (v >= 0 && v < info.n_classes) return int(v);
    throw Failure("class index " + text + " out of range [0, " +
                  std::to_string(info.n_classes) + ")");
  }
  throw Failure("unknown class '" + text + "' (classes: " + class_list() + ")");
}

void report_rtf(const char *command, double audio_seconds, double compute_ms) {
  double rtf = compute_ms > 0 ? audio_seconds / (compute_ms / 1000.0) : 0.0;
  std::fprintf(stderr, "ngs: %s: %.2f s of audio in %.1f ms, real-time factor %.1fx\n",
               command, audio_seconds, compute_ms, rtf);
}

Progress::Progress(const std::string &label, int total)
    : label_(label), total_(total > 0 ? total : 1), enabled_(isatty(STDERR_FILENO) != 0) {
  update(0);
}

Progress::~Progress() {
  if (enabled_ && last_drawn_ >= 0) std::fprintf(stderr, "\r\033[K");
}

void Progress::update(int done) {
  if (!enabled_) return;
  const int width = 30;
  int filled = int((long long)done * width / total_);
  if (filled == last_drawn_ && done != total_) return;
  last_drawn_ = filled;
  std::string bar(size_t(filled), '#');
  bar.resize(width, '.');
  std::fprintf(stderr, "\r%s [%s] %d/%d", label_.c_str(), bar.c_str(), done, total_);
  std::fflush(stderr);
}

}  // namespace ngs_cli

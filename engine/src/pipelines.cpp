// Audio-level processes: pre-processing, resynthesis in cross-faded segments, drum loops
// (docs/PROCESSES.md gives the exact semantics these implement).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/error.h"
#include "ngs/ngs.h"
#include "engine.h"

namespace ngs {

namespace {

double mean_of(const float *x, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; ++i) s += x[i];
  return n ? s / static_cast<double>(n) : 0.0;
}

float peak_of(const float *x, size_t n) {
  float p = 0.0f;
  for (size_t i = 0; i < n; ++i) p = std::max(p, std::fabs(x[i]));
  return p;
}

void scale(float *x, size_t n, double g) {
  for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>(x[i] * g);
}

}  // namespace

void preprocess(const ngs_model &m, float *x, size_t n, bool normalize) {
  // 1. Mean removal (mean in double).
  const double mean = mean_of(x, n);
  for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>(x[i] - mean);
  // 2. RBJ cookbook high-pass biquad, f0 = 50 Hz, Q = 0.707, direct form I, zero initial
  //    state, coefficients and recursion in double, no clamping of the output.
  const double pi = 3.14159265358979323846;
  const double w0 = 2.0 * pi * 50.0 / static_cast<double>(m.wc().sr);
  const double cw = std::cos(w0), alpha = std::sin(w0) / (2.0 * 0.707);
  const double a0 = 1.0 + alpha;
  const double b0 = (1.0 + cw) / 2.0 / a0, b1 = -(1.0 + cw) / a0, b2 = (1.0 + cw) / 2.0 / a0;
  const double a1 = -2.0 * cw / a0, a2 = (1.0 - alpha) / a0;
  double x1 = 0.0, x2 = 0.0, y1 = 0.0, y2 = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double xi = x[i];
    const double yi = b0 * xi + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2;
    x2 = x1;
    x1 = xi;
    y2 = y1;
    y1 = yi;
    x[i] = static_cast<float>(yi);
  }
  // 3. Peak normalisation to 0.9 when the peak is >= 1 or when asked.
  const float peak = peak_of(x, n);
  if (peak > 0.0f && (normalize || peak >= 1.0f)) scale(x, n, 0.9 / static_cast<double>(peak));
}

void resynthesize(ngs_context &c, const float *audio, size_t n, const ngs_resynth_params &p,
                  float *out) {
  const ngs_model &m = *c.model;
  const int G = p.segment_grains == 0 ? m.n_grains() : p.segment_grains;
  if (G < 1) throw Error(NGS_STATUS_INVALID_ARGUMENT, "segment_grains must be >= 0");
  if (G > c.max_grains)
    throw Error(NGS_STATUS_CAPACITY, "segment_grains " + std::to_string(G) +
                                         " exceeds the context's max_grains " +
                                         std::to_string(c.max_grains));
  const size_t seg = m.audio_length(G);
  const size_t X = p.crossfade == 0 ? static_cast<size_t>(m.hop()) : static_cast<size_t>(p.crossfade);
  if (p.crossfade < 0 || X > seg / 2)
    throw Error(NGS_STATUS_INVALID_ARGUMENT,
                "crossfade " + std::to_string(p.crossfade) + " must be in [0, " +
                    std::to_string(seg / 2) + "] (half a segment of " + std::to_string(seg) +
                    " samples)");
  const size_t stride = seg - X;
  const size_t n_seg = n <= seg ? 1 : 1 + (n - seg + stride - 1) / stride;
  for (size_t k = 0; k < n_seg; ++k) {
    const size_t start = k * stride;
    const size_t avail = std::min(seg, n - start);
    std::memcpy(c.seg_in.data(), audio + start, avail * sizeof(float));
    std::fill(c.seg_in.begin() + static_cast<std::ptrdiff_t>(avail),
              c.seg_in.begin() + static_cast<std::ptrdiff_t>(seg), 0.0f);
    encode(c, c.seg_in.data(), G, 0, 0, c.mu.data(), c.logvar.data(), nullptr);
    decode(c, c.mu.data(), G, NoiseKey{p.seed, static_cast<uint32_t>(k)}, c.seg_out.data());
    const float *y = c.seg_out.data();
    size_t i = 0;
    if (k > 0) {  // cross-fade with the previous segment's tail already in out
      for (; i < X && start + i < n; ++i) {
        const float w = (static_cast<float>(i) + 0.5f) / static_cast<float>(X);
        out[start + i] = out[start + i] * (1.0f - w) + y[i] * w;
      }
    }
    for (; i < avail; ++i) out[start + i] = y[i];
    if (p.progress)
      p.progress(k + 1 == n_seg ? 1.0f
                                : static_cast<float>(static_cast<double>(k + 1) /
                                                     static_cast<double>(n_seg)),
                 p.progress_user_data);
  }
}

void render_loop(ngs_context &c, const ngs_loop_event *events, int n_events,
                 const ngs_loop_params &p, float *audio, size_t L) {
  const ngs_model &m = *c.model;
  const size_t len = m.sample_length();
  const int n_tracks = std::max(1, m.lc().n_conds);
  float *track = c.track.data();
  float *shot = c.seg_out.data();  // holds sample_length samples (max_grains >= n_grains)
  std::fill(audio, audio + L, 0.0f);
  for (int cls = 0; cls < n_tracks; ++cls) {
    const int want = m.lc().n_conds > 0 ? cls : NGS_CLASS_NONE;
    bool any = false;
    for (int i = 0; i < n_events; ++i) {
      const ngs_loop_event &ev = events[i];
      if ((m.lc().n_conds > 0 ? ev.class_index : NGS_CLASS_NONE) != want) continue;
      if (!any) std::fill(track, track + L, 0.0f);
      any = true;
      embedding_sample(m, p.temperature, p.seed, static_cast<uint32_t>(i), c.e.data());
      render_one_shot(c, c.e.data(), ev.class_index, p.seed, static_cast<uint32_t>(i), shot);
      const double mean = mean_of(shot, len);
      for (size_t t = 0; t < len; ++t) shot[t] = static_cast<float>(shot[t] - mean);
      const float peak = peak_of(shot, len);
      const double gain = peak > 0.0f ? static_cast<double>(ev.amplitude) / peak : 0.0;
      const size_t at = std::min(L, static_cast<size_t>(std::floor(static_cast<double>(ev.onset) * static_cast<double>(L))));
      const size_t cnt = std::min(len, L - at);
      for (size_t t = 0; t < cnt; ++t) track[at + t] += static_cast<float>(shot[t] * gain);
    }
    if (!any) continue;
    const float tp = peak_of(track, L);
    const double tg = tp > 0.95f ? 0.95 / static_cast<double>(tp) : 1.0;
    for (size_t t = 0; t < L; ++t) audio[t] += static_cast<float>(track[t] * tg);
  }
  const float mp = peak_of(audio, L);
  if (mp > 0.95f) scale(audio, L, 0.95 / static_cast<double>(mp));
}

}  // namespace ngs

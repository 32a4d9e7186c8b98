// Grain encoder (stage `encoder`, docs/MODEL_SPEC.md §4.1): audio -> mu, logvar on the
// device. Per grain: the OLA-windowed frame, n_convs stages of a reflection-padded strided
// conv (BN folded, LeakyReLU) and three residual units (LReLU, reflection-padded dilated
// conv, BN folded, LReLU; then the two 1x1 convs and the residual add fused into one
// product over the stacked [h; x]), the channel-major flatten, two linears with LReLU and
// the mu / logvar heads (Hardtanh(-5, 5) on logvar) as one product.
#pragma once

#include <vector>

#include "common.cuh"
#include "weights.h"

namespace ngs::cuda {

constexpr int kEncMaxStages = 8;

// One conv layer, channel-major activations [grain][C][L]: out[o][t] = act(b[o] +
// sum_{i,k} w[o][i][k] * xpad[i][t * stride + k * dilation]), reflection padding `pad`,
// xpad = LReLU(x) when in_lrelu. Its input may be two arrays stacked along the channels
// (c_in = c0 + c1; the residual units' fused 1x1 convs).
struct EncConv {
  const float *w = nullptr;  // [c_out][c_in][k] (device)
  const float *b = nullptr;  // [c_out] (device)
  int c_in = 0, c_out = 0, k = 1, stride = 1, dilation = 1, pad = 0;
  int l_in = 0, l_out = 0;
  bool in_lrelu = false, out_lrelu = false;
  int ci_tile = 1;  // input channels per shared-memory step (set by encoder_prepare)
};

// y[g][o] = act(b[o] + W[o] . x[g]), W [out][in]; rows >= split (when split > 0) go to
// y2[g][o - split] with Hardtanh(-5, 5) instead (the logvar head).
struct EncLinear {
  const float *w = nullptr, *b = nullptr;
  int in = 0, out = 0, split = 0;
  bool lrelu = false;
};

struct EncoderDevice {
  int l_grain = 0, hop = 0, channels = 0, n_stages = 0, flatten = 0, h_dim = 0, z_dim = 0;
  struct Stage {
    EncConv down, dil[3], mix[3];
  } stages[kEncMaxStages];
  EncLinear lin0, lin1, head;  // head: [mu; logvar] stacked, 2 z_dim outputs
  const float *hann = nullptr;  // [l_grain] periodic Hann (device)
  int act_floats = 0;           // per grain, the largest conv output (c_out * l_out)
};

// Checks the shapes (kBadModel) and that every layer's tile fits 48 KiB of shared memory
// (kUnsupported otherwise); chooses the tiles. Call once, before any launch.
void encoder_prepare(EncoderDevice &enc);

// The encoder's weights on the device (owned; uploaded once, landed before the constructor
// returns) and the prepared descriptors over them. hann: the device's periodic Hann window
// of l_grain samples (the noise filter's table). Throws ngs::Error.
class EncoderWeights {
 public:
  EncoderWeights(const WaveformWeights &w, const float *hann);
  ~EncoderWeights();
  EncoderWeights(const EncoderWeights &) = delete;
  EncoderWeights &operator=(const EncoderWeights &) = delete;
  const EncoderDevice &device() const { return dev_; }

 private:
  const float *upload(const float *host, size_t count);
  void release();
  std::vector<void *> bufs_;
  EncoderDevice dev_;
};

// Device floats of the workspace for chunks of up to `chunk` grains.
size_t encoder_work_floats(const EncoderDevice &enc, int chunk);

// Grains g0 .. g0 + count - 1 of a series of n_total (first/last windows) of the device
// audio [(n_total + 3) * hop]: mu, logvar [n_total][z_dim] rows g0.. (device; logvar may
// be null). work: encoder_work_floats(enc, count). Checks every launch.
void encoder_launch(const EncoderDevice &enc, const float *audio, int g0, int count,
                    int n_total, float *mu, float *logvar, float *work, cudaStream_t stream);

// B independent grains (Session::encode_grains): windows [count][l_grain] (device, the
// grains' raw samples), edges[g] (device): bit 0 a series' first grain (first half not
// windowed), bit 1 its last (second half) -> mu [count][z_dim] (device). Row g equals
// encoder_launch's row of the same grain. work: encoder_work_floats(enc, count); count is
// at most 65535 (the framing grid's y). live: null, or a device int: only the grains
// g < *live - live_base of this launch are computed and written (a chunk of a bucketed
// graph whose first grain is grain live_base of the batch). Checks every launch.
void encoder_grains_launch(const EncoderDevice &enc, const float *windows,
                           const unsigned char *edges, int count, float *mu, float *work,
                           cudaStream_t stream, const int *live = nullptr, int live_base = 0);

}  // namespace ngs::cuda

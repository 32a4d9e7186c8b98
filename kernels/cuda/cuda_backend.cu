// The CUDA backend (backend.h): device weights and tables of the grain encoder, the decoder
// and the sequence VAE (uploaded once), sessions with a workspace planned for max_grains, a
// stream, and CUDA Graphs of the whole decode per batch-size bucket. Every CUDA call and
// every launch is checked. The encoder runs on the device (encoder.cu; a model whose convs
// do not fit the tiles falls back to the CPU code, cpu::HostStages); so does the sequence
// VAE (latent_decode.cu, latent_encode.cu, rnn_step.cu); sample() keeps z on the device
// between latent_decode and decode (one graph); the streaming calls (rnn_step,
// decode_grains, encode_grains) keep the voices' state on the device and replay one graph
// per batch-size bucket.
#include "cuda_backend.cuh"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common.cuh"
#include "cpu/cpu.h"
#include "cpu/thread_pool.h"
#include "cuda_backend.h"
#include "decoder_mlp.cuh"
#include "latent_decode.cuh"
#include "latent_encode.cuh"
#include "encoder.cuh"
#include "noise_filter.cuh"
#include "overlap_add.cuh"
#include "rnn_step.cuh"

namespace ngs::cuda {

void throw_cuda_error(cudaError_t err, const char *expr, const char *func, const char *file,
                      int line) {
  throw Error(kBackendError, std::string("CUDA error ") + cudaGetErrorName(err) +
                                            " (" + cudaGetErrorString(err) + ") in " + expr +
                                            ", " + func + " at " + file + ":" +
                                            std::to_string(line));
}

namespace {

// RAII device array.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count) { resize(count); }
  ~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);
  }
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;
  void resize(size_t count) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = nullptr;
    count_ = count;
    NGS_CUDA_CHECK(cudaMalloc(&ptr_, sizeof(T) * (count ? count : 1)));
  }
  // A synchronous copy from pageable memory returns once the data is staged, and it is on
  // the legacy stream, which the sessions' non-blocking streams are not ordered after: wait
  // for it to land before anything can read it.
  void upload(const T *host, size_t count) {
    NGS_CUDA_CHECK(cudaMemcpy(ptr_, host, sizeof(T) * count, cudaMemcpyHostToDevice));
    NGS_CUDA_CHECK(cudaStreamSynchronize(nullptr));
  }
  T *get() const { return ptr_; }
  size_t size() const { return count_; }

 private:
  T *ptr_ = nullptr;
  size_t count_ = 0;
};

// RAII page-locked host array (for asynchronous copies inside the graph).
template <class T>
class PinnedBuffer {
 public:
  explicit PinnedBuffer(size_t count) {
    NGS_CUDA_CHECK(cudaMallocHost(&ptr_, sizeof(T) * (count ? count : 1)));
  }
  ~PinnedBuffer() {
    if (ptr_) cudaFreeHost(ptr_);
  }
  PinnedBuffer(const PinnedBuffer &) = delete;
  PinnedBuffer &operator=(const PinnedBuffer &) = delete;
  T *get() const { return ptr_; }

 private:
  T *ptr_ = nullptr;
};

class Stream {
 public:
  Stream() { NGS_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  ~Stream() {
    if (s_) cudaStreamDestroy(s_);
  }
  Stream(const Stream &) = delete;
  Stream &operator=(const Stream &) = delete;
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

class GraphExec {
 public:
  GraphExec() = default;
  ~GraphExec() { reset(); }
  GraphExec(const GraphExec &) = delete;
  GraphExec &operator=(const GraphExec &) = delete;
  void reset() {
    if (exec_) cudaGraphExecDestroy(exec_);
    exec_ = nullptr;
  }
  cudaGraphExec_t get() const { return exec_; }
  cudaGraphExec_t *out() { return &exec_; }

 private:
  cudaGraphExec_t exec_ = nullptr;
};

void check_device(int device) {
  const std::string reason = cuda_unavailable_reason(device);
  if (!reason.empty()) throw Error(kUnsupported, reason);
  NGS_CUDA_CHECK(cudaSetDevice(device));
}

class CudaBackend;

class CudaSession : public Session {
 public:
  CudaSession(const CudaBackend &b, int max_grains, int n_threads);
  void encoder(const float *audio, int n, float *mu, float *logvar) override;
  // Sequence VAE on the device (latent_decode.cu, latent_encode.cu).
  void latent_decode(const float *e, int class_index, int n, float *z) override;
  void latent_encode(const float *z, int n, float *e_mu, float *e_logvar) override;
  void decode(const float *z, int n, NoiseKey key, float *audio) override;
  void decoder_mlp(const float *z, int n, float *S) override;
  void noise_filter(const float *S, int n, int g0, int n_total, NoiseKey key,
                    float *y) override;
  void overlap_add(const float *y, int n, float *audio, bool ola_only) override;
  void sample(const float *e, int class_index, int n, NoiseKey key, float *audio) override;
  // Streaming (rnn_step.cu, noise_filter.cu's per-grain variant): state on the device, one
  // CUDA Graph per batch-size bucket (powers of two, the last one the planned maximum).
  void rnn_plan(int max_voices) override;
  void rnn_start(int slot, const float *e, int class_index) override;
  void rnn_step(const int *slots, int B, float *z, int ldz) override;
  void decode_grains(const float *z, int B, const GrainSpec *spec, float *y) override;
  // The device encoder over B host windows (encoder.cu's encoder_grains_launch), one CUDA
  // Graph per batch-size bucket, all planned by the first call (allocates: the synth's
  // probe at init); on the CPU (cpu::HostStages) when the encoder runs there.
  void encode_grains(const float *const *src, const unsigned char *first,
                     const unsigned char *last, int B, float *mu) override;

 private:
  static constexpr int kMaxBuckets = 32;
  const LatentDevice &latent(const char *what) const;
  void check_class(int class_index, const char *what) const;
  // Captures what enqueue() puts on the stream into exec (or, without graphs, just runs it).
  // launch false: only capture (rnn_plan, plan_grains).
  template <class F>
  void run_graph(GraphExec &exec, bool &valid, F enqueue, bool launch = true);
  void plan_grains(int max_batch);  // decode_grains' buffers and graphs (allocates)
  void enqueue_grains(int rows);    // decode_grains of the rows in h_z_ / h_specs_
  void enqueue_step(int rows);      // rnn_step of the slots in h_slots_ / h_count_
  void plan_encode();               // encode_grains' buffers and graphs (allocates)
  void enqueue_encode(int rows);    // encode_grains of the windows in h_win_ / h_edge_
  void check_n(int n, const char *what) const;
  // The decode of a bucket of `rows` grains whose live count is in h_n_ (copied to n_ by
  // the graph): the copy of the latents, then enqueue_decode_kernels.
  void enqueue_decode(int rows);
  // The decode kernels of the latents already in z_ (noise parameters in h_params_; with
  // count, the live grain count on the device: a bucket of `rows`, else exactly n = rows),
  // then the copy of the audio to h_audio_.
  void enqueue_decode_kernels(int rows, const int *count = nullptr);
  // The decode of the n latents already in h_z_.
  void run_decode(int n, NoiseKey key, float *audio);

  const CudaBackend &b_;
  int max_grains_;
  std::unique_ptr<cpu::ThreadPool> pool_;  // the context's one pool (CPU stages)
  cpu::HostStages host_;
  Stream stream_;
  DeviceBuffer<float> z_, S_, y_, audio_, mlp_work_;
  DeviceBuffer<NoiseParams> params_;
  // The live grain count of a bucketed graph (decode, decode_grains): pinned, copied to the
  // device by the graph, read by the kernels (rows past it are not computed).
  DeviceBuffer<int> n_;
  PinnedBuffer<float> h_z_, h_audio_;
  PinnedBuffer<NoiseParams> h_params_;
  PinnedBuffer<int> h_n_;
  // Sequence VAE: inputs and outputs of latent_decode / latent_encode / sample (one voice,
  // up to latent_grains_ steps) and the work area of their kernels.
  int latent_grains_ = 0;
  DeviceBuffer<float> e_, zl_, e_out_, lat_work_;
  DeviceBuffer<int> cls_;
  std::unique_ptr<PinnedBuffer<float>> h_e_, h_zl_, h_e_out_;
  std::unique_ptr<PinnedBuffer<int>> h_cls_;
  GraphExec sample_graph_;
  int sample_graph_n_ = 0;
  // Streaming sequence VAE (rnn_plan): voice slots on the device, the step's inputs and
  // outputs for up to max_voices_ voices, a ring of staging rows for rnn_start.
  int max_voices_ = 0, pending_starts_ = 0;
  size_t slot_floats_ = 0;
  DeviceBuffer<float> state_, start_e_, h_last_, zs_;
  DeviceBuffer<int> slot_cls_, start_cls_, slots_, count_, cls_rows_;
  std::unique_ptr<PinnedBuffer<float>> h_start_e_, h_zs_;
  std::unique_ptr<PinnedBuffer<int>> h_start_cls_, h_slots_, h_count_;
  std::vector<unsigned char> started_;
  std::vector<unsigned> seen_;  // distinct-slot check (generation marks)
  unsigned generation_ = 0;
  GraphExec step_graphs_[kMaxBuckets];
  bool step_valid_[kMaxBuckets] = {};
  // decode_grains: per-grain noise specs and the grains' host copy, for up to grains_max_.
  int grains_max_ = 0;
  DeviceBuffer<GrainNoise> specs_;
  std::unique_ptr<PinnedBuffer<GrainNoise>> h_specs_;
  std::unique_ptr<PinnedBuffer<float>> h_y_;
  GraphExec grain_graphs_[kMaxBuckets];
  bool grain_valid_[kMaxBuckets] = {};
  // encode_grains: the B windows and their edge flags (bit 0 first, bit 1 last) on the
  // device and their pinned staging, for up to max_grains_ grains (planned when enc_planned_).
  bool enc_planned_ = false;
  DeviceBuffer<float> win_;
  DeviceBuffer<unsigned char> edge_;
  std::unique_ptr<PinnedBuffer<float>> h_win_;
  std::unique_ptr<PinnedBuffer<unsigned char>> h_edge_;
  GraphExec enc_graphs_[kMaxBuckets];
  bool enc_valid_[kMaxBuckets] = {};
  // decode: one graph per batch-size bucket (1, 2, 4, ..., max_grains_), captured at the
  // bucket's first use; the live count is read on the device, so any n of a bucket
  // replays it (a capture and instantiation costs 50-100 us).
  GraphExec decode_graphs_[kMaxBuckets];
  bool decode_valid_[kMaxBuckets] = {};
  // Device encoder: workspace for enc_chunk_ grains, mu and logvar [2][max_grains][z_dim]
  // on the device and their pinned staging.
  int enc_chunk_ = 0;
  DeviceBuffer<float> enc_work_, enc_out_;
  PinnedBuffer<float> h_enc_;
};

class CudaBackend : public Backend {
 public:
  CudaBackend(const WaveformWeights &w, const LatentWeights *latent, int device,
              const BackendOptions &opt)
      : cfg_(w.cfg),
        device_(device),
        opt_(opt),
        encoder_(w) {
    check_device(device);
    if (latent) latent_ = std::make_unique<LatentDevice>(*latent);
    const WaveformConfig &c = w.cfg;
    const int n_layers = static_cast<int>(w.dec_lin.size()) + 1;
    if (n_layers > kMlpMaxLayers)
      throw Error(kBadModel, "CUDA backend: at most " +
                                            std::to_string(kMlpMaxLayers - 1) +
                                            " decoder hidden layers are supported");
    if (c.l_grain < 8 || (c.l_grain & (c.l_grain - 1)) || c.l_grain > 16384 ||
        c.hop <= 0 || c.l_grain != 4 * c.hop)
      throw Error(kUnsupported, "CUDA backend: l_grain must be a power of two in "
                                          "8 .. 16384 with hop = l_grain / 4");
    if (!w.pp_fir || c.pp_ker <= 0 || c.pp_ker % 2 == 0)
      throw Error(kBadModel, "CUDA backend: the post-processing FIR needs an odd "
                                        "number of taps");
    for (int l = 0; l < n_layers; ++l) layers_.push_back(std::make_unique<Layer>());
    for (int l = 0; l < n_layers; ++l) {
      const Linear &lin = l + 1 < n_layers ? w.dec_lin[l] : w.dec_out;
      const int expect_in = l == 0 ? c.z_dim : mlp_.dims[l];
      if (!lin.w || !lin.b || lin.in != expect_in || lin.out <= 0)
        throw Error(kBadModel, "CUDA backend: decoder layer " + std::to_string(l) +
                                              " has missing weights or wrong shape");
      const size_t count = static_cast<size_t>(lin.out) * lin.in;
      Layer &L = *layers_[l];
      L.w.resize(count);
      L.w.upload(lin.w, count);
      L.b.resize(lin.out);
      L.b.upload(lin.b, lin.out);
      if (opt.fp16_weights) {
        std::vector<__half> h(count);
        for (size_t i = 0; i < count; ++i) h[i] = __float2half(lin.w[i]);
        L.w_half.resize(count);
        L.w_half.upload(h.data(), count);
        mlp_.w_half[l] = L.w_half.get();
      }
      mlp_.w[l] = L.w.get();
      mlp_.b[l] = L.b.get();
      mlp_.dims[l] = lin.in;
      mlp_.dims[l + 1] = lin.out;
    }
    mlp_.n_layers = n_layers;
    mlp_.half = opt.fp16_weights;
    mlp_.kernel = opt.mlp_kernel;
    if (mlp_.dims[n_layers] != c.filter_size())
      throw Error(kBadModel, "CUDA backend: the decoder output has " +
                                            std::to_string(mlp_.dims[n_layers]) +
                                            " values, filter_size is " +
                                            std::to_string(c.filter_size()));
    // One opt-in value for every model (the device's maximum), so that loading a second
    // model never lowers the shared memory an earlier one launches with.
    int optin = 0;
    NGS_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    decoder_mlp_prepare(mlp_, static_cast<size_t>(optin));
    noise_filter_prepare(c.l_grain, static_cast<size_t>(optin));
    std::vector<float> tw(c.l_grain), hann(c.l_grain);
    noise_filter_tables(c.l_grain, tw.data(), hann.data());
    twiddles_.resize(tw.size());
    twiddles_.upload(tw.data(), tw.size());
    hann_.resize(hann.size());
    hann_.upload(hann.data(), hann.size());
    fir_.resize(c.pp_ker);
    fir_.upload(w.pp_fir, c.pp_ker);
    try {
      enc_dev_ = std::make_unique<EncoderWeights>(w, hann_.get());
    } catch (const Error &e) {
      if (e.status() != kUnsupported) throw;
      enc_host_reason_ = e.what();  // runs on the CPU (cpu::HostStages) instead
    }
    ola_.l_grain = c.l_grain;
    ola_.hop = c.hop;
    ola_.normalize = c.normalize_ola;
    ola_.fir = fir_.get();
    ola_.fir_len = c.pp_ker;
    ola_.bias = w.pp_bias;
  }

  const char *name() const override {
#ifdef NGS_CUDA_EMULATION
    return "cuda-emulation";
#else
    return "cuda";
#endif
  }

  bool has_latent() const override { return latent_ != nullptr; }
  // Empty when the encoder runs on the device, else why it runs on the CPU.
  const std::string &encoder_on_host() const { return enc_host_reason_; }

  // Precision::kFast is a CPU mode: CUDA sessions run fp32 (Session::precision()).
  std::unique_ptr<Session> create_session(int max_grains, int n_threads, Precision) override {
    if (max_grains <= 0)
      throw Error(kInvalidArgument, "CUDA backend: max_grains must be positive");
    if (n_threads < 1 || n_threads > 256)
      throw Error(kInvalidArgument, "CUDA backend: n_threads must be in 1..256");
    NGS_CUDA_CHECK(cudaSetDevice(device_));
    return std::make_unique<CudaSession>(*this, max_grains, n_threads);
  }

  struct Layer {
    DeviceBuffer<float> w, b;
    DeviceBuffer<__half> w_half;
  };
  WaveformConfig cfg_;
  int device_;
  BackendOptions opt_;
  std::vector<std::unique_ptr<Layer>> layers_;
  MlpDevice mlp_;
  DeviceBuffer<float> twiddles_, hann_, fir_;
  OlaParams ola_;
  cpu::WaveformEncoder encoder_;             // CPU fallback (encoder)
  std::unique_ptr<EncoderWeights> enc_dev_;  // the device encoder, or null
  std::string enc_host_reason_;
  std::unique_ptr<LatentDevice> latent_;     // the sequence VAE on the device, or null
};

CudaSession::CudaSession(const CudaBackend &b, int max_grains, int n_threads)
    : b_(b),
      max_grains_(max_grains),
      pool_(n_threads > 1 ? std::make_unique<cpu::ThreadPool>(n_threads) : nullptr),
      host_(b.encoder_, nullptr, max_grains, max_grains, pool_.get()),
      z_(static_cast<size_t>(max_grains) * b.cfg_.z_dim),
      S_(static_cast<size_t>(max_grains) * b.cfg_.filter_size()),
      y_(static_cast<size_t>(max_grains) * b.cfg_.l_grain),
      audio_(static_cast<size_t>(max_grains + 3) * b.cfg_.hop),
      mlp_work_(decoder_mlp_work_floats(b.mlp_, max_grains)),
      params_(1),
      n_(1),
      h_z_(static_cast<size_t>(std::max(max_grains, b.cfg_.n_grains)) * b.cfg_.z_dim),
      h_audio_(static_cast<size_t>(max_grains + 3) * b.cfg_.hop),
      h_params_(1),
      h_n_(1),
      // (at most 4096 grains per pass: the framing kernel's grid has a grain per y index)
      enc_chunk_(b.enc_dev_ ? std::max(1, std::min({max_grains, b.opt_.encoder_chunk, 4096}))
                            : 0),
      h_enc_(b.enc_dev_ ? 2 * static_cast<size_t>(max_grains) * b.cfg_.z_dim : 0) {
  if (b.enc_dev_) {
    enc_work_.resize(encoder_work_floats(b.enc_dev_->device(), enc_chunk_));
    enc_out_.resize(2 * static_cast<size_t>(max_grains) * b.cfg_.z_dim);
  }
  if (!b.latent_) return;
  const LatentDevice &d = *b.latent_;
  const LatentConfig &lc = d.cfg;
  latent_grains_ = std::max(max_grains, b.cfg_.n_grains);
  const size_t nz = static_cast<size_t>(latent_grains_) * lc.z_dim;
  e_.resize(lc.e_dim);
  cls_.resize(1);
  zl_.resize(nz);
  e_out_.resize(2 * static_cast<size_t>(lc.e_dim));
  lat_work_.resize(std::max(latent_decode_work_floats(d, 1, latent_grains_),
                            latent_encode_work_floats(d, 1, latent_grains_)));
  h_e_ = std::make_unique<PinnedBuffer<float>>(lc.e_dim);
  h_cls_ = std::make_unique<PinnedBuffer<int>>(1);
  h_zl_ = std::make_unique<PinnedBuffer<float>>(nz);
  h_e_out_ = std::make_unique<PinnedBuffer<float>>(2 * static_cast<size_t>(lc.e_dim));
}

// Bucket of a batch of B (1 <= B <= max): the next power of two, at most max; its index.
int bucket_rows(int B, int max) {
  int r = 1;
  while (r < B) r *= 2;
  return std::min(r, max);
}
int bucket_index(int B) {
  int i = 0;
  while ((1 << i) < B) ++i;
  return i;
}

void CudaSession::check_n(int n, const char *what) const {
  if (n <= 0)
    throw Error(kInvalidArgument,
                std::string("CUDA backend: ") + what + ": the grain count must be positive");
  if (n > max_grains_)
    throw Error(kCapacity, std::string("CUDA backend: ") + what + ": " +
                                         std::to_string(n) + " grains, the session holds " +
                                         std::to_string(max_grains_));
}

// The whole decode of a bucket on the stream, from the pinned inputs (h_z_, h_params_,
// h_n_) to the pinned output.
void CudaSession::enqueue_decode(int rows) {
  const WaveformConfig &c = b_.cfg_;
  const cudaStream_t s = stream_.get();
  NGS_CUDA_CHECK(cudaMemcpyAsync(z_.get(), h_z_.get(), sizeof(float) * rows * c.z_dim,
                                 cudaMemcpyHostToDevice, s));
  NGS_CUDA_CHECK(cudaMemcpyAsync(n_.get(), h_n_.get(), sizeof(int), cudaMemcpyHostToDevice, s));
  enqueue_decode_kernels(rows, n_.get());
}

void CudaSession::enqueue_decode_kernels(int rows, const int *count) {
  const WaveformConfig &c = b_.cfg_;
  const cudaStream_t s = stream_.get();
  NGS_CUDA_CHECK(cudaMemcpyAsync(params_.get(), h_params_.get(), sizeof(NoiseParams),
                                 cudaMemcpyHostToDevice, s));
  decoder_mlp_launch(b_.mlp_, z_.get(), rows, S_.get(), s, mlp_work_.get(), count);
  noise_filter_launch(S_.get(), rows, c.l_grain, b_.twiddles_.get(), b_.hann_.get(),
                      params_.get(), y_.get(), s, count);
  OlaParams ola = b_.ola_;
  ola.n = rows;
  ola.count = count;
  overlap_add_launch(ola, y_.get(), audio_.get(), s);
  // (the whole bucket's audio comes back; the caller reads the live (n + 3) hops of it)
  NGS_CUDA_CHECK(cudaMemcpyAsync(h_audio_.get(), audio_.get(),
                                 sizeof(float) * (rows + 3) * c.hop, cudaMemcpyDeviceToHost, s));
}

void CudaSession::encoder(const float *audio, int n, float *mu, float *logvar) {
  if (!b_.enc_dev_) {
    host_.encoder(audio, n, mu, logvar);
    return;
  }
  check_n(n, "encoder");
  if (!audio) throw Error(kInvalidArgument, "CUDA backend: encoder: null audio");
  const WaveformConfig &c = b_.cfg_;
  const cudaStream_t s = stream_.get();
  NGS_CUDA_CHECK(cudaSetDevice(b_.device_));
  const size_t len = static_cast<size_t>(n + 3) * c.hop, rows = static_cast<size_t>(n) * c.z_dim;
  const size_t half = static_cast<size_t>(max_grains_) * c.z_dim;
  std::memcpy(h_audio_.get(), audio, sizeof(float) * len);
  NGS_CUDA_CHECK(cudaMemcpyAsync(audio_.get(), h_audio_.get(), sizeof(float) * len,
                                 cudaMemcpyHostToDevice, s));
  float *d_mu = enc_out_.get(), *d_lv = enc_out_.get() + half;
  for (int g0 = 0; g0 < n; g0 += enc_chunk_)
    encoder_launch(b_.enc_dev_->device(), audio_.get(), g0, std::min(enc_chunk_, n - g0), n,
                   d_mu, d_lv, enc_work_.get(), s);
  NGS_CUDA_CHECK(cudaMemcpyAsync(h_enc_.get(), d_mu, sizeof(float) * rows,
                                 cudaMemcpyDeviceToHost, s));
  NGS_CUDA_CHECK(cudaMemcpyAsync(h_enc_.get() + half, d_lv, sizeof(float) * rows,
                                 cudaMemcpyDeviceToHost, s));
  NGS_CUDA_CHECK(cudaStreamSynchronize(s));
  if (mu) std::memcpy(mu, h_enc_.get(), sizeof(float) * rows);
  if (logvar) std::memcpy(logvar, h_enc_.get() + half, sizeof(float) * rows);
}


void CudaSession::decode(const float *z, int n, NoiseKey key, float *audio) {
  check_n(n, "decode");
  if (!z || !audio) throw Error(kInvalidArgument, "CUDA backend: decode: null array");
  std::memcpy(h_z_.get(), z, sizeof(float) * n * b_.cfg_.z_dim);
  run_decode(n, key, audio);
}


void CudaSession::run_decode(int n, NoiseKey key, float *audio) {
  const WaveformConfig &c = b_.cfg_;
  NGS_CUDA_CHECK(cudaSetDevice(b_.device_));
  *h_params_.get() = NoiseParams{key.seed, key.sequence, 0, n};
  *h_n_.get() = n;
  const cudaStream_t s = stream_.get();
  // Without graphs the launches are exactly n; with them, the graph of n's bucket.
  const int rows = b_.opt_.use_graphs ? bucket_rows(n, max_grains_) : n;
  const int i = bucket_index(rows);
  run_graph(decode_graphs_[i], decode_valid_[i], [&] { enqueue_decode(rows); });
  NGS_CUDA_CHECK(cudaStreamSynchronize(s));
  std::memcpy(audio, h_audio_.get(), sizeof(float) * (n + 3) * c.hop);
}

void CudaSession::decoder_mlp(const float *z, int n, float *S) {
  check_n(n, "decoder_mlp");
  if (!z || !S) throw Error(kInvalidArgument, "CUDA backend: decoder_mlp: null array");
  const WaveformConfig &c = b_.cfg_;
  const cudaStream_t s = stream_.get();
  NGS_CUDA_CHECK(cudaSetDevice(b_.device_));
  NGS_CUDA_CHECK(cudaMemcpyAsync(z_.get(), z, sizeof(float) * n * c.z_dim,
                                 cudaMemcpyHostToDevice, s));
  decoder_mlp_launch(b_.mlp_, z_.get(), n, S_.get(), s, mlp_work_.get());
  NGS_CUDA_CHECK(cudaMemcpyAsync(S, S_.get(), sizeof(float) * n * c.filter_size(),
                                 cudaMemcpyDeviceToHost, s));
  NGS_CUDA_CHECK(cudaStreamSynchronize(s));
}

void CudaSession::noise_filter(const float *S, int n, int g0, int n_total, NoiseKey key,
                               float *y) {
  check_n(n, "noise_filter");
  if (!S || !y) throw Error(kInvalidArgument, "CUDA backend: noise_filter: null array");
  if (g0 < 0 || g0 + n > n_total)
    throw Error(kInvalidArgument, "CUDA backend: noise_filter: grains " +
                                                 std::to_string(g0) + " .. " +
                                                 std::to_string(g0 + n - 1) + " are not in a "
                                                 "series of " + std::to_string(n_total));
  const WaveformConfig &c = b_.cfg_;
  const cudaStream_t s = stream_.get();
  NGS_CUDA_CHECK(cudaSetDevice(b_.device_));
  *h_params_.get() = NoiseParams{key.seed, key.sequence, g0, n_total};
  NGS_CUDA_CHECK(cudaMemcpyAsync(params_.get(), h_params_.get(), sizeof(NoiseParams),
                                 cudaMemcpyHostToDevice, s));
  NGS_CUDA_CHECK(cudaMemcpyAsync(S_.get(), S, sizeof(float) * n * c.filter_size(),
                                 cudaMemcpyHostToDevice, s));
  noise_filter_launch(S_.get(), n, c.l_grain, b_.twiddles_.get(), b_.hann_.get(), params_.get(),
                      y_.get(), s);
  NGS_CUDA_CHECK(cudaMemcpyAsync(y, y_.get(), sizeof(float) * n * c.l_grain,
                                 cudaMemcpyDeviceToHost, s));
  NGS_CUDA_CHECK(cudaStreamSynchronize(s));
}

void CudaSession::overlap_add(const float *y, int n, float *audio, bool ola_only) {
  check_n(n, "overlap_add");
  if (!y || !audio)
    throw Error(kInvalidArgument, "CUDA backend: overlap_add: null array");
  const WaveformConfig &c = b_.cfg_;
  const cudaStream_t s = stream_.get();
  NGS_CUDA_CHECK(cudaSetDevice(b_.device_));
  NGS_CUDA_CHECK(cudaMemcpyAsync(y_.get(), y, sizeof(float) * n * c.l_grain,
                                 cudaMemcpyHostToDevice, s));
  OlaParams ola = b_.ola_;
  ola.n = n;
  ola.ola_only = ola_only;
  overlap_add_launch(ola, y_.get(), audio_.get(), s);
  NGS_CUDA_CHECK(cudaMemcpyAsync(audio, audio_.get(), sizeof(float) * (n + 3) * c.hop,
                                 cudaMemcpyDeviceToHost, s));
  NGS_CUDA_CHECK(cudaStreamSynchronize(s));
}

// ---------------------------------------------------------------------------------------
// Sequence VAE on the device (latent_decode.cu, latent_encode.cu) and the streaming calls
// (rnn_step.cu, decode_grains).

const LatentDevice &CudaSession::latent(const char *what) const {
  if (!b_.latent_)
    throw Error(kInvalidArgument,
                std::string("CUDA backend: ") + what + ": the model has no sequence VAE");
  return *b_.latent_;
}

void CudaSession::check_class(int class_index, const char *what) const {
  // -1: no class (an unconditional model; for a conditional one, a zero one-hot as the CPU).
  const int nc = b_.latent_->cfg.n_conds;
  if (class_index < -1 || (class_index >= 0 && class_index >= nc))
    throw Error(kInvalidArgument, std::string("CUDA backend: ") + what + ": class " +
                                      std::to_string(class_index) + " of a model with " +
                                      std::to_string(nc) + " classes");
}

template <class F>
void CudaSession::run_graph(GraphExec &exec, bool &valid, F enqueue, bool launch) {
  const cudaStream_t s = stream_.get();
  if (!b_.opt_.use_graphs) {
    if (launch) enqueue();
    return;
  }
  if (!valid || !exec.get()) {
    exec.reset();
    valid = false;
    cudaGraph_t graph = nullptr;
    NGS_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    try {
      enqueue();
    } catch (...) {
      cudaStreamEndCapture(s, &graph);
      if (graph) cudaGraphDestroy(graph);
      throw;
    }
    NGS_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
    const cudaError_t err = cudaGraphInstantiate(exec.out(), graph, 0);
    cudaGraphDestroy(graph);
    NGS_CUDA_CHECK(err);
    valid = true;
  }
  if (launch) NGS_CUDA_CHECK(cudaGraphLaunch(exec.get(), s));
}

void CudaSession::latent_decode(const float *e, int class_index, int n, float *z) {
  const LatentDevice &d = latent("latent_decode");
  if (!e || !z) throw Error(kInvalidArgument, "CUDA backend: latent_decode: null array");
  if (n < 1 || n > latent_grains_)
    throw Error(kCapacity, "CUDA backend: latent_decode: " + std::to_string(n) +
                               " grains requested, session planned for 1.." +
                               std::to_string(latent_grains_));
  check_class(class_index, "latent_decode");
  const LatentConfig &lc = d.cfg;
  const cudaStream_t s = stream_.get();
  NGS_CUDA_CHECK(cudaSetDevice(b_.device_));
  std::memcpy(h_e_->get(), e, sizeof(float) * lc.e_dim);
  *h_cls_->get() = class_index;
  NGS_CUDA_CHECK(cudaMemcpyAsync(e_.get(), h_e_->get(), sizeof(float) * lc.e_dim,
                                 cudaMemcpyHostToDevice, s));
  NGS_CUDA_CHECK(cudaMemcpyAsync(cls_.get(), h_cls_->get(), sizeof(int), cudaMemcpyHostToDevice, s));
  latent_decode_launch(d, e_.get(), cls_.get(), 1, n, zl_.get(), lat_work_.get(), s);
  const size_t nz = static_cast<size_t>(n) * lc.z_dim;
  NGS_CUDA_CHECK(cudaMemcpyAsync(h_zl_->get(), zl_.get(), sizeof(float) * nz,
                                 cudaMemcpyDeviceToHost, s));
  NGS_CUDA_CHECK(cudaStreamSynchronize(s));
  std::memcpy(z, h_zl_->get(), sizeof(float) * nz);
}

void CudaSession::latent_encode(const float *z, int n, float *e_mu, float *e_logvar) {
  const LatentDevice &d = latent("latent_encode");
  if (!z) throw Error(kInvalidArgument, "CUDA backend: latent_encode: null array");
  if (n < 1 || n > latent_grains_)
    throw Error(kCapacity, "CUDA backend: latent_encode: " + std::to_string(n) +
                               " grains requested, session planned for 1.." +
                               std::to_string(latent_grains_));
  const LatentConfig &lc = d.cfg;
  const cudaStream_t s = stream_.get();
  NGS_CUDA_CHECK(cudaSetDevice(b_.device_));
  const size_t nz = static_cast<size_t>(n) * lc.z_dim;
  std::memcpy(h_zl_->get(), z, sizeof(float) * nz);
  NGS_CUDA_CHECK(cudaMemcpyAsync(zl_.get(), h_zl_->get(), sizeof(float) * nz,
                                 cudaMemcpyHostToDevice, s));
  latent_encode_launch(d, zl_.get(), 1, n, e_out_.get(), lat_work_.get(), s);
  NGS_CUDA_CHECK(cudaMemcpyAsync(h_e_out_->get(), e_out_.get(), sizeof(float) * 2 * lc.e_dim,
                                 cudaMemcpyDeviceToHost, s));
  NGS_CUDA_CHECK(cudaStreamSynchronize(s));
  if (e_mu) std::memcpy(e_mu, h_e_out_->get(), sizeof(float) * lc.e_dim);
  if (e_logvar) std::memcpy(e_logvar, h_e_out_->get() + lc.e_dim, sizeof(float) * lc.e_dim);
}

// latent_decode straight into the decoder's z_, then the decode: one graph per n, no host
// round trip for z.
void CudaSession::sample(const float *e, int class_index, int n, NoiseKey key, float *audio) {
  const LatentDevice &d = latent("sample");
  check_n(n, "sample");
  if (!e || !audio) throw Error(kInvalidArgument, "CUDA backend: sample: null array");
  check_class(class_index, "sample");
  const LatentConfig &lc = d.cfg;
  const WaveformConfig &c = b_.cfg_;
  if (lc.z_dim != c.z_dim)
    throw Error(kBadModel, "CUDA backend: sample: the sequence VAE's z_dim differs from the "
                           "grain decoder's");
  NGS_CUDA_CHECK(cudaSetDevice(b_.device_));
  std::memcpy(h_e_->get(), e, sizeof(float) * lc.e_dim);
  *h_cls_->get() = class_index;
  *h_params_.get() = NoiseParams{key.seed, key.sequence, 0, n};
  const cudaStream_t s = stream_.get();
  bool valid = sample_graph_n_ == n;
  run_graph(sample_graph_, valid, [&] {
    NGS_CUDA_CHECK(cudaMemcpyAsync(e_.get(), h_e_->get(), sizeof(float) * lc.e_dim,
                                   cudaMemcpyHostToDevice, s));
    NGS_CUDA_CHECK(cudaMemcpyAsync(cls_.get(), h_cls_->get(), sizeof(int),
                                   cudaMemcpyHostToDevice, s));
    latent_decode_launch(d, e_.get(), cls_.get(), 1, n, z_.get(), lat_work_.get(), s);
    enqueue_decode_kernels(n);
  });
  sample_graph_n_ = valid ? n : 0;
  NGS_CUDA_CHECK(cudaStreamSynchronize(s));
  std::memcpy(audio, h_audio_.get(), sizeof(float) * (n + 3) * c.hop);
}

void CudaSession::rnn_plan(int max_voices) {
  const LatentDevice &d = latent("rnn_plan");
  if (max_voices < 1 || max_voices > (1 << 20))
    throw Error(kInvalidArgument, "CUDA backend: rnn_plan: max_voices must be in 1..1048576");
  NGS_CUDA_CHECK(cudaSetDevice(b_.device_));
  NGS_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
  for (int i = 0; i < kMaxBuckets; ++i) {
    step_graphs_[i].reset();
    step_valid_[i] = false;
  }
  max_voices_ = 0;  // unplanned until every buffer is there
  const LatentConfig &lc = d.cfg;
  const int H = d.dec_rnn[d.n_dec_rnn - 1].hidden;
  const size_t V = static_cast<size_t>(max_voices);
  slot_floats_ = rnn_step_state_floats(d);
  // The memsets on the session's stream: a legacy-stream cudaMemset is not ordered with
  // this non-blocking stream (the step could read the slots before they are cleared).
  const cudaStream_t s = stream_.get();
  state_.resize(V * slot_floats_);
  NGS_CUDA_CHECK(cudaMemsetAsync(state_.get(), 0, sizeof(float) * V * slot_floats_, s));
  slot_cls_.resize(V);
  NGS_CUDA_CHECK(cudaMemsetAsync(slot_cls_.get(), 0xff, sizeof(int) * V, s));  // -1: no class
  start_e_.resize(V * lc.e_dim);
  start_cls_.resize(V);
  // (slots_, h_last_, cls_rows_: no memset; a step writes each row it reads first: the
  // graph copies the slots in, the step kernel writes h_last and cls_rows up to the count.)
  slots_.resize(V);
  count_.resize(1);
  h_last_.resize(V * H);
  cls_rows_.resize(V);
  zs_.resize(V * lc.z_dim);
  h_start_e_ = std::make_unique<PinnedBuffer<float>>(V * lc.e_dim);
  h_start_cls_ = std::make_unique<PinnedBuffer<int>>(V);
  h_slots_ = std::make_unique<PinnedBuffer<int>>(V);
  std::memset(h_slots_->get(), 0, sizeof(int) * V);  // rows past a step's count: copied, unread
  h_count_ = std::make_unique<PinnedBuffer<int>>(1);
  h_zs_ = std::make_unique<PinnedBuffer<float>>(V * lc.z_dim);
  started_.assign(V, 0);
  seen_.assign(V, 0);
  generation_ = 0;
  pending_starts_ = 0;
  max_voices_ = max_voices;
  // Every bucket's graph now, so that rnn_step never captures (capturing allocates).
  for (int rows = 1;; rows = std::min(2 * rows, max_voices)) {
    const int i = bucket_index(rows);
    run_graph(step_graphs_[i], step_valid_[i], [&] { enqueue_step(rows); }, false);
    if (rows == max_voices) break;
  }
  NGS_CUDA_CHECK(cudaStreamSynchronize(s));
  plan_grains(std::min(max_voices, max_grains_));
}

void CudaSession::rnn_start(int slot, const float *e, int class_index) {
  const LatentDevice &d = latent("rnn_start");
  if (max_voices_ == 0) throw Error(kInvalidArgument, "CUDA backend: rnn_start before rnn_plan");
  if (slot < 0 || slot >= max_voices_)
    throw Error(kInvalidArgument, "CUDA backend: rnn_start: slot " + std::to_string(slot) +
                                      " is not in 0.." + std::to_string(max_voices_ - 1));
  if (!e) throw Error(kInvalidArgument, "CUDA backend: rnn_start: null array");
  check_class(class_index, "rnn_start");
  const int E = d.cfg.e_dim;
  const cudaStream_t s = stream_.get();
  NGS_CUDA_CHECK(cudaSetDevice(b_.device_));
  // Staging row pending_starts_ of the ring: free again once the stream has passed its
  // copy, certainly after the next synchronisation (rnn_step, or here when the ring is full).
  if (pending_starts_ == max_voices_) {
    NGS_CUDA_CHECK(cudaStreamSynchronize(s));
    pending_starts_ = 0;
  }
  const int r = pending_starts_++;
  float *he = h_start_e_->get() + static_cast<size_t>(r) * E;
  std::memcpy(he, e, sizeof(float) * E);
  h_start_cls_->get()[r] = class_index;
  float *de = start_e_.get() + static_cast<size_t>(r) * E;
  int *dc = start_cls_.get() + r;
  NGS_CUDA_CHECK(cudaMemcpyAsync(de, he, sizeof(float) * E, cudaMemcpyHostToDevice, s));
  NGS_CUDA_CHECK(cudaMemcpyAsync(dc, h_start_cls_->get() + r, sizeof(int), cudaMemcpyHostToDevice, s));
  rnn_start_launch(d, de, dc, state_.get() + static_cast<size_t>(slot) * slot_floats_, s);
  NGS_CUDA_CHECK(cudaMemcpyAsync(slot_cls_.get() + slot, dc, sizeof(int), cudaMemcpyDeviceToDevice, s));
  started_[static_cast<size_t>(slot)] = 1;
}

// A step of the voices in h_slots_ (count in h_count_), for a bucket of `rows`.
void CudaSession::enqueue_step(int rows) {
  const LatentDevice &d = *b_.latent_;
  const cudaStream_t s = stream_.get();
  NGS_CUDA_CHECK(cudaMemcpyAsync(slots_.get(), h_slots_->get(), sizeof(int) * rows,
                                 cudaMemcpyHostToDevice, s));
  NGS_CUDA_CHECK(cudaMemcpyAsync(count_.get(), h_count_->get(), sizeof(int),
                                 cudaMemcpyHostToDevice, s));
  rnn_step_launch(d, state_.get(), slot_cls_.get(), slots_.get(), count_.get(), rows, zs_.get(),
                  h_last_.get(), cls_rows_.get(), s);
  NGS_CUDA_CHECK(cudaMemcpyAsync(h_zs_->get(), zs_.get(), sizeof(float) * rows * d.cfg.z_dim,
                                 cudaMemcpyDeviceToHost, s));
}

void CudaSession::rnn_step(const int *slots, int B, float *z, int ldz) {
  const LatentDevice &d = latent("rnn_step");
  if (max_voices_ == 0) throw Error(kInvalidArgument, "CUDA backend: rnn_step before rnn_plan");
  if (B < 1 || B > max_voices_)
    throw Error(kCapacity, "CUDA backend: rnn_step: " + std::to_string(B) +
                               " voices, planned for 1.." + std::to_string(max_voices_));
  const int zd = d.cfg.z_dim;
  if (!slots || !z || ldz < zd)
    throw Error(kInvalidArgument, "CUDA backend: rnn_step: null array or ldz below z_dim");
  if (++generation_ == 0) {  // wrapped: clear the marks
    std::fill(seen_.begin(), seen_.end(), 0u);
    generation_ = 1;
  }
  for (int b = 0; b < B; ++b) {
    const int v = slots[b];
    if (v < 0 || v >= max_voices_ || !started_[static_cast<size_t>(v)] ||
        seen_[static_cast<size_t>(v)] == generation_)
      throw Error(kInvalidArgument, "CUDA backend: rnn_step: slot " + std::to_string(v) +
                                        " is out of range, not started or given twice");
    seen_[static_cast<size_t>(v)] = generation_;
  }
  NGS_CUDA_CHECK(cudaSetDevice(b_.device_));
  std::memcpy(h_slots_->get(), slots, sizeof(int) * B);
  *h_count_->get() = B;
  const int rows = bucket_rows(B, max_voices_), i = bucket_index(rows);
  const cudaStream_t s = stream_.get();
  run_graph(step_graphs_[i], step_valid_[i], [&] { enqueue_step(rows); });
  NGS_CUDA_CHECK(cudaStreamSynchronize(s));
  pending_starts_ = 0;
  for (int b = 0; b < B; ++b)
    std::memcpy(z + static_cast<size_t>(b) * ldz, h_zs_->get() + static_cast<size_t>(b) * zd,
                sizeof(float) * zd);
}

void CudaSession::plan_grains(int max_batch) {
  const WaveformConfig &c = b_.cfg_;
  max_batch = std::max(1, std::min(max_batch, max_grains_));
  if (grains_max_ == 0) {  // the buffers, for max_grains_, once
    specs_.resize(max_grains_);
    h_specs_ = std::make_unique<PinnedBuffer<GrainNoise>>(max_grains_);
    std::memset(h_specs_->get(), 0, sizeof(GrainNoise) * max_grains_);
    h_y_ = std::make_unique<PinnedBuffer<float>>(static_cast<size_t>(max_grains_) * c.l_grain);
    grains_max_ = max_grains_;
  }
  // The graphs of the buckets up to max_batch not captured yet.
  for (int rows = 1;; rows = std::min(2 * rows, max_grains_)) {
    const int i = bucket_index(rows);
    run_graph(grain_graphs_[i], grain_valid_[i], [&] { enqueue_grains(rows); }, false);
    if (rows >= max_batch) break;
  }
}

void CudaSession::enqueue_grains(int rows) {
  const WaveformConfig &c = b_.cfg_;
  const cudaStream_t s = stream_.get();
  NGS_CUDA_CHECK(cudaMemcpyAsync(z_.get(), h_z_.get(), sizeof(float) * rows * c.z_dim,
                                 cudaMemcpyHostToDevice, s));
  NGS_CUDA_CHECK(cudaMemcpyAsync(specs_.get(), h_specs_->get(), sizeof(GrainNoise) * rows,
                                 cudaMemcpyHostToDevice, s));
  NGS_CUDA_CHECK(cudaMemcpyAsync(n_.get(), h_n_.get(), sizeof(int), cudaMemcpyHostToDevice, s));
  // Grains past the live count (*n_) are not computed.
  decoder_mlp_launch(b_.mlp_, z_.get(), rows, S_.get(), s, mlp_work_.get(), n_.get());
  noise_filter_grains_launch(S_.get(), rows, c.l_grain, b_.twiddles_.get(), b_.hann_.get(),
                             specs_.get(), y_.get(), s, n_.get());
  NGS_CUDA_CHECK(cudaMemcpyAsync(h_y_->get(), y_.get(), sizeof(float) * rows * c.l_grain,
                                 cudaMemcpyDeviceToHost, s));
}

void CudaSession::decode_grains(const float *z, int B, const GrainSpec *spec, float *y) {
  check_n(B, "decode_grains");
  if (!z || !spec || !y) throw Error(kInvalidArgument, "CUDA backend: decode_grains: null array");
  for (int b = 0; b < B; ++b)
    if (spec[b].g < 0)
      throw Error(kInvalidArgument, "CUDA backend: decode_grains: grain index " +
                                        std::to_string(spec[b].g) + " is negative");
  const WaveformConfig &c = b_.cfg_;
  NGS_CUDA_CHECK(cudaSetDevice(b_.device_));
  // Every bucket's graph at the first call (or rnn_plan), so that later calls never
  // capture or allocate (a model without a sequence VAE plans here, at the synth's probe).
  plan_grains(max_grains_);
  const int rows = bucket_rows(B, max_grains_), i = bucket_index(rows);
  // Rows past B are copied in by the graph but not computed (the kernels read *n_ = B).
  std::memcpy(h_z_.get(), z, sizeof(float) * B * c.z_dim);
  GrainNoise *q = h_specs_->get();
  for (int b = 0; b < B; ++b)
    q[b] = GrainNoise{spec[b].key.seed, spec[b].key.sequence, spec[b].g, spec[b].first ? 1 : 0,
                      spec[b].last ? 1 : 0};
  *h_n_.get() = B;
  run_graph(grain_graphs_[i], grain_valid_[i], [&] { enqueue_grains(rows); });
  NGS_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
  std::memcpy(y, h_y_->get(), sizeof(float) * B * c.l_grain);
}

void CudaSession::plan_encode() {
  const WaveformConfig &c = b_.cfg_;
  const size_t G = static_cast<size_t>(max_grains_);
  // (No device memset: a legacy-stream memset is not ordered with the session's
  // non-blocking stream, and every row a graph reads is first copied in by that graph.)
  win_.resize(G * c.l_grain);
  edge_.resize(G);
  h_win_ = std::make_unique<PinnedBuffer<float>>(G * c.l_grain);
  std::memset(h_win_->get(), 0, sizeof(float) * G * c.l_grain);
  h_edge_ = std::make_unique<PinnedBuffer<unsigned char>>(G);
  std::memset(h_edge_->get(), 0, G);
  for (int rows = 1;; rows = std::min(2 * rows, max_grains_)) {
    const int i = bucket_index(rows);
    run_graph(enc_graphs_[i], enc_valid_[i], [&] { enqueue_encode(rows); }, false);
    if (rows == max_grains_) break;
  }
  enc_planned_ = true;
}

// The windows of `rows` grains to the device, the encoder in chunks of enc_chunk_ grains
// (its workspace), mu back to h_enc_.
void CudaSession::enqueue_encode(int rows) {
  const WaveformConfig &c = b_.cfg_;
  const cudaStream_t s = stream_.get();
  NGS_CUDA_CHECK(cudaMemcpyAsync(win_.get(), h_win_->get(), sizeof(float) * rows * c.l_grain,
                                 cudaMemcpyHostToDevice, s));
  NGS_CUDA_CHECK(cudaMemcpyAsync(edge_.get(), h_edge_->get(), rows, cudaMemcpyHostToDevice, s));
  NGS_CUDA_CHECK(cudaMemcpyAsync(n_.get(), h_n_.get(), sizeof(int), cudaMemcpyHostToDevice, s));
  // Grains past the live count (*n_) are not computed (a chunk wholly past it: no work).
  for (int g0 = 0; g0 < rows; g0 += enc_chunk_)
    encoder_grains_launch(b_.enc_dev_->device(), win_.get() + static_cast<size_t>(g0) * c.l_grain,
                          edge_.get() + g0, std::min(enc_chunk_, rows - g0),
                          enc_out_.get() + static_cast<size_t>(g0) * c.z_dim, enc_work_.get(), s,
                          n_.get(), g0);
  NGS_CUDA_CHECK(cudaMemcpyAsync(h_enc_.get(), enc_out_.get(), sizeof(float) * rows * c.z_dim,
                                 cudaMemcpyDeviceToHost, s));
}

void CudaSession::encode_grains(const float *const *src, const unsigned char *first,
                                const unsigned char *last, int B, float *mu) {
  if (!b_.enc_dev_) {
    host_.encode_grains(src, first, last, B, mu);
    return;
  }
  check_n(B, "encode_grains");
  if (!src || !first || !last || !mu)
    throw Error(kInvalidArgument, "CUDA backend: encode_grains: null array");
  for (int b = 0; b < B; ++b)
    if (!src[b])
      throw Error(kInvalidArgument, "CUDA backend: encode_grains: window " + std::to_string(b) +
                                        " is null");
  const WaveformConfig &c = b_.cfg_;
  NGS_CUDA_CHECK(cudaSetDevice(b_.device_));
  if (!enc_planned_) plan_encode();
  const int rows = bucket_rows(B, max_grains_), i = bucket_index(rows);
  const size_t l = static_cast<size_t>(c.l_grain);
  float *w = h_win_->get();
  unsigned char *edge = h_edge_->get();
  for (int b = 0; b < B; ++b) {
    std::memcpy(w + b * l, src[b], sizeof(float) * l);
    edge[b] = static_cast<unsigned char>((first[b] ? 1 : 0) | (last[b] ? 2 : 0));
  }
  // Rows past B are copied in by the graph but not computed (the kernels read *n_ = B).
  *h_n_.get() = B;
  run_graph(enc_graphs_[i], enc_valid_[i], [&] { enqueue_encode(rows); });
  NGS_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
  std::memcpy(mu, h_enc_.get(), sizeof(float) * B * c.z_dim);
}

}  // namespace

std::string encoder_on_host(const Backend &backend) {
  const auto *b = dynamic_cast<const CudaBackend *>(&backend);
  if (!b) throw Error(kInvalidArgument, "encoder_on_host: not a CUDA backend");
  return b->encoder_on_host();
}

std::unique_ptr<Backend> make_backend(const WaveformWeights &w, int device,
                                      const BackendOptions &options,
                                      const LatentWeights *latent) {
  return std::make_unique<CudaBackend>(w, latent, device, options);
}

}  // namespace ngs::cuda

namespace ngs {

std::string cuda_unavailable_reason(int device) {
#ifdef NGS_CUDA_EMULATION
  return device == 0 ? std::string() : "CUDA emulation: only device 0 exists";
#else
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear the error of a failed runtime initialisation
    if (err == cudaErrorNoDevice) return "CUDA: no device found";
    if (err == cudaErrorInsufficientDriver)
      return "CUDA: no usable device (no NVIDIA driver, or one older than the CUDA runtime "
             "ngs was built with)";
    return std::string("CUDA: no usable device (") + cudaGetErrorString(err) + ")";
  }
  if (count == 0) return "CUDA: no device found";
  if (device < 0 || device >= count)
    return "CUDA: device " + std::to_string(device) + " does not exist (" +
           std::to_string(count) + " found)";
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess)
    return "CUDA: cannot query device " + std::to_string(device);
  if (prop.major < 8)
    return "CUDA: device " + std::to_string(device) + " (" + prop.name +
           ") has compute capability " + std::to_string(prop.major) + "." +
           std::to_string(prop.minor) + "; ngs needs 8.0 or newer";
  return std::string();
#endif
}

std::unique_ptr<Backend> make_cuda_backend(const WaveformWeights &weights,
                                           const LatentWeights *latent, int device) {
  cuda::BackendOptions opt;
  // The decoder MLP kernel for an A/B on a GPU (docs/CUDA.md): rows (default) or tiled.
  if (const char *k = std::getenv("NGS_CUDA_MLP")) {
    const std::string v = k;
    if (v == "tiled")
      opt.mlp_kernel = cuda::MlpKernel::kTiled;
    else if (v != "rows" && !v.empty())
      throw Error(kInvalidArgument, "NGS_CUDA_MLP=" + v + ": expected rows or tiled");
  }
  return cuda::make_backend(weights, device, opt, latent);
}

}  // namespace ngs

// The CUDA backend (backend.h): device weights and tables of the grain decoder (uploaded
// once), sessions with a workspace planned for max_grains, a stream, and a CUDA Graph of
// the whole decode re-used while the request size stays the same. Every CUDA call and
// every launch is checked. There are no encoder or sequence-VAE kernels yet: those stages
// are delegated to the CPU implementation (cpu::HostStages on the session's CPU thread
// pool); sample() runs the sequence VAE on the CPU straight into the pinned input of the
// decode graph.
#include "cuda_backend.cuh"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "common.cuh"
#include "cpu/cpu.h"
#include "cpu/thread_pool.h"
#include "cuda_backend.h"
#include "decoder_mlp.cuh"
#include "noise_filter.cuh"
#include "overlap_add.cuh"

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
  void upload(const T *host, size_t count) {
    NGS_CUDA_CHECK(cudaMemcpy(ptr_, host, sizeof(T) * count, cudaMemcpyHostToDevice));
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
  // Delegated to the CPU (no CUDA kernels for these stages yet).
  void encoder(const float *audio, int n, float *mu, float *logvar) override;
  void latent_decode(const float *e, int class_index, int n, float *z) override;
  void latent_encode(const float *z, int n, float *e_mu, float *e_logvar) override;
  void decode(const float *z, int n, NoiseKey key, float *audio) override;
  void decoder_mlp(const float *z, int n, float *S) override;
  void noise_filter(const float *S, int n, int g0, int n_total, NoiseKey key,
                    float *y) override;
  void overlap_add(const float *y, int n, float *audio, bool ola_only) override;
  void sample(const float *e, int class_index, int n, NoiseKey key, float *audio) override;

 private:
  void check_n(int n, const char *what) const;
  void enqueue_decode(int n);
  // The decode of the n latents already in h_z_.
  void run_decode(int n, NoiseKey key, float *audio);

  const CudaBackend &b_;
  int max_grains_;
  std::unique_ptr<cpu::ThreadPool> pool_;  // the context's one pool (CPU stages)
  cpu::HostStages host_;
  Stream stream_;
  DeviceBuffer<float> z_, S_, y_, audio_;
  DeviceBuffer<NoiseParams> params_;
  PinnedBuffer<float> h_z_, h_audio_;
  PinnedBuffer<NoiseParams> h_params_;
  GraphExec graph_;
  int graph_n_ = 0;
};

class CudaBackend : public Backend {
 public:
  CudaBackend(const WaveformWeights &w, const LatentWeights *latent, int device,
              const BackendOptions &opt)
      : cfg_(w.cfg),
        device_(device),
        opt_(opt),
        encoder_(w),
        latent_(latent ? std::make_unique<cpu::LatentModel>(*latent) : nullptr) {
    check_device(device);
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
    if (mlp_.dims[n_layers] != c.filter_size())
      throw Error(kBadModel, "CUDA backend: the decoder output has " +
                                            std::to_string(mlp_.dims[n_layers]) +
                                            " values, filter_size is " +
                                            std::to_string(c.filter_size()));
    decoder_mlp_prepare(mlp_);
    noise_filter_prepare(c.l_grain);
    std::vector<float> tw(c.l_grain), hann(c.l_grain);
    noise_filter_tables(c.l_grain, tw.data(), hann.data());
    twiddles_.resize(tw.size());
    twiddles_.upload(tw.data(), tw.size());
    hann_.resize(hann.size());
    hann_.upload(hann.data(), hann.size());
    fir_.resize(c.pp_ker);
    fir_.upload(w.pp_fir, c.pp_ker);
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
  cpu::WaveformEncoder encoder_;           // CPU delegation (encoder)
  std::unique_ptr<cpu::LatentModel> latent_;  // CPU delegation (sequence VAE), or null
};

CudaSession::CudaSession(const CudaBackend &b, int max_grains, int n_threads)
    : b_(b),
      max_grains_(max_grains),
      pool_(n_threads > 1 ? std::make_unique<cpu::ThreadPool>(n_threads) : nullptr),
      host_(b.encoder_, b.latent_.get(), max_grains, std::max(max_grains, b.cfg_.n_grains),
            pool_.get()),
      z_(static_cast<size_t>(max_grains) * b.cfg_.z_dim),
      S_(static_cast<size_t>(max_grains) * b.cfg_.filter_size()),
      y_(static_cast<size_t>(max_grains) * b.cfg_.l_grain),
      audio_(static_cast<size_t>(max_grains + 3) * b.cfg_.hop),
      params_(1),
      h_z_(static_cast<size_t>(std::max(max_grains, b.cfg_.n_grains)) * b.cfg_.z_dim),
      h_audio_(static_cast<size_t>(max_grains + 3) * b.cfg_.hop),
      h_params_(1) {}

void CudaSession::check_n(int n, const char *what) const {
  if (n <= 0)
    throw Error(kInvalidArgument,
                std::string("CUDA backend: ") + what + ": the grain count must be positive");
  if (n > max_grains_)
    throw Error(kCapacity, std::string("CUDA backend: ") + what + ": " +
                                         std::to_string(n) + " grains, the session holds " +
                                         std::to_string(max_grains_));
}

// The whole decode on the stream, from the pinned inputs to the pinned output.
void CudaSession::enqueue_decode(int n) {
  const WaveformConfig &c = b_.cfg_;
  const cudaStream_t s = stream_.get();
  NGS_CUDA_CHECK(cudaMemcpyAsync(z_.get(), h_z_.get(), sizeof(float) * n * c.z_dim,
                                 cudaMemcpyHostToDevice, s));
  NGS_CUDA_CHECK(cudaMemcpyAsync(params_.get(), h_params_.get(), sizeof(NoiseParams),
                                 cudaMemcpyHostToDevice, s));
  decoder_mlp_launch(b_.mlp_, z_.get(), n, S_.get(), s);
  noise_filter_launch(S_.get(), n, c.l_grain, b_.twiddles_.get(), b_.hann_.get(), params_.get(),
                      y_.get(), s);
  OlaParams ola = b_.ola_;
  ola.n = n;
  overlap_add_launch(ola, y_.get(), audio_.get(), s);
  NGS_CUDA_CHECK(cudaMemcpyAsync(h_audio_.get(), audio_.get(), sizeof(float) * (n + 3) * c.hop,
                                 cudaMemcpyDeviceToHost, s));
}

void CudaSession::encoder(const float *audio, int n, float *mu, float *logvar) {
  host_.encoder(audio, n, mu, logvar);
}

void CudaSession::latent_decode(const float *e, int class_index, int n, float *z) {
  host_.latent_decode(e, class_index, n, z);
}

void CudaSession::latent_encode(const float *z, int n, float *e_mu, float *e_logvar) {
  host_.latent_encode(z, n, e_mu, e_logvar);
}

void CudaSession::decode(const float *z, int n, NoiseKey key, float *audio) {
  check_n(n, "decode");
  if (!z || !audio) throw Error(kInvalidArgument, "CUDA backend: decode: null array");
  std::memcpy(h_z_.get(), z, sizeof(float) * n * b_.cfg_.z_dim);
  run_decode(n, key, audio);
}

void CudaSession::sample(const float *e, int class_index, int n, NoiseKey key, float *audio) {
  check_n(n, "sample");
  if (!e || !audio) throw Error(kInvalidArgument, "CUDA backend: sample: null array");
  host_.latent_decode(e, class_index, n, h_z_.get());
  run_decode(n, key, audio);
}

void CudaSession::run_decode(int n, NoiseKey key, float *audio) {
  const WaveformConfig &c = b_.cfg_;
  NGS_CUDA_CHECK(cudaSetDevice(b_.device_));
  *h_params_.get() = NoiseParams{key.seed, key.sequence, 0, n};
  const cudaStream_t s = stream_.get();
  if (!b_.opt_.use_graphs) {
    enqueue_decode(n);
  } else {
    if (graph_n_ != n || !graph_.get()) {
      graph_.reset();
      graph_n_ = 0;
      cudaGraph_t graph = nullptr;
      NGS_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
      try {
        enqueue_decode(n);
      } catch (...) {
        cudaStreamEndCapture(s, &graph);
        if (graph) cudaGraphDestroy(graph);
        throw;
      }
      NGS_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
      const cudaError_t err = cudaGraphInstantiate(graph_.out(), graph, 0);
      cudaGraphDestroy(graph);
      NGS_CUDA_CHECK(err);
      graph_n_ = n;
    }
    NGS_CUDA_CHECK(cudaGraphLaunch(graph_.get(), s));
  }
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
  decoder_mlp_launch(b_.mlp_, z_.get(), n, S_.get(), s);
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

}  // namespace

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
  return cuda::make_backend(weights, device, cuda::BackendOptions{}, latent);
}

}  // namespace ngs

// Rational polyphase sample-rate converter (the real-time synth's default, docs/SYNTH.md
// "Sample rates"): in_rate -> out_rate = L / M in lowest terms, one Kaiser-windowed sinc
// designed at init at the rate L * in_rate, split into L phases of `taps()` coefficients.
//
// Filter spec: passband to 0.45 of the lower of the two rates, stopband from 0.5 of it
// (its Nyquist frequency), Kaiser window for 100 dB (beta 10.06); measured >= 90 dB
// stopband attenuation and <= 0.001 dB passband ripple (tests/cpp/test_resample.cpp).
// Length N = 2 half + 1 with N - 1 = (A - 7.95) / (2.285 * 2 pi * 0.05 lower / (L in_rate)):
// about 128 taps per output sample when converting up, 128 x in_rate / out_rate down.
//
// Output sample k is time-aligned with input sample k * M / L (the filter is centred:
// zero group delay, like libsamplerate); it is produced once the input has reached
// floor((k M + half) / L), i.e. lookahead() input samples past its time. Every output is
// one dot product of a phase's coefficients with the input window, always in the same
// order, so the output does not depend on how the input is cut into calls, and is a pure
// function of the input samples and of k (what the synth relies on to skip its input
// converter while no voice listens and restart it at any point). No call but the
// constructor allocates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ngs::cpu {

class Polyphase {
 public:
  // Floats of the phase table of an in_rate -> out_rate converter (L * padded taps).
  static size_t table_floats(int in_rate, int out_rate);
  // max_in: the most input samples one process call consumes.
  Polyphase(int in_rate, int out_rate, int max_in);

  // Back to the state after construction (input and output counts 0, zero history).
  void reset();
  // Restarts the stream at input sample n_in and output sample k_out (k_out must be the
  // first output not ready at n_in: first_output(n_in)), with the last min(n_in, history())
  // input samples in hist (oldest first); the outputs from then on equal those of a
  // converter that was fed every sample.
  void restart(int64_t n_in, const float *hist, int n_hist);
  // Consumes up to n_in input samples (all of them when n_in <= max_in) and writes up to
  // max_out ready outputs; *used / *gen receive the counts.
  void process(const float *in, long n_in, float *out, long max_out, long *used, long *gen);

  int up() const { return L_; }
  int down() const { return M_; }
  int taps() const { return T_; }           // coefficients per output (padded)
  int half() const { return half_; }        // prototype half length (rate L * in_rate)
  int history() const { return T_; }        // input samples restart() needs
  double lookahead() const { return static_cast<double>(half_) / L_; }
  int64_t inputs() const { return n_in_; }  // input samples consumed since reset
  int64_t outputs() const { return k_; }    // output samples produced since reset
  // The first output sample that is not ready after n_in input samples.
  int64_t first_output(int64_t n_in) const;
  // The prototype filter h[i], i in [0, 2 half], in double precision (tests: direct
  // evaluation y[k] = sum_n x[n] h[k M + half - n L]).
  const std::vector<double> &prototype() const { return proto_; }

 private:
  float dot(int64_t k) const;
  int L_ = 1, M_ = 1, T_ = 0, half_ = 0, max_in_ = 0;
  std::vector<double> proto_;
  std::vector<float> phases_;  // [L][T]: phase p's coefficients, oldest input first
  std::vector<float> hist_;    // input samples [base_, base_ + len_)
  int64_t base_ = 0;
  int len_ = 0;
  int64_t n_in_ = 0, k_ = 0;
};

}  // namespace ngs::cpu

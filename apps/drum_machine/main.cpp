// ngs-drum-machine: a neural drum machine on the public C API (README "Neural drum
// machine", apps/drum_machine/README.md). 8 tracks x 16 steps, each track one buffer
// written by the model; OSC control over UDP (liblo's codec); real-time audio through
// JACK; --offline renders without a sound server.
//
// Threads (live):
//   main      parses options, starts everything, waits for SIGINT/SIGTERM or JACK's end,
//             then stops everything in order and commits the recording;
//   osc       receives and validates messages, queues requests to the worker (or replies
//             with an error at once);
//   worker    owns the model, the context and the state; writes buffers, publishes them
//             to the audio thread (one atomic pointer per track), frees the ones the audio
//             thread hands back (SPSC ring), sends sequencer changes (SPSC ring), replies;
//   audio     JACK's process callback: applies sequencer changes, takes new buffers, mixes
//             (Sequencer), hands retired buffers back, copies the block to the recording
//             ring. No allocation, lock, wait or system call;
//   recorder  (--record) drains the recording ring into the temporary WAV file.
#include <fcntl.h>
#include <jack/jack.h>
#include <signal.h>
#include <sndfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include "args.h"
#include "common.h"
#include "handoff.h"
#include "io.h"
#include "machine.h"
#include "osc.h"
#include "sequencer.h"

#ifndef NGS_DRUM_MODEL_DIR
#define NGS_DRUM_MODEL_DIR ""
#endif
#ifndef NGS_SOURCE_DIR
#define NGS_SOURCE_DIR ""
#endif

using namespace ngs_drum;
using ngs_cli::Failure;

namespace {

const char *const kProg = "ngs-drum-machine";

struct Options {
  std::string model, offline, record, pattern, host = "localhost", name = "ngs-drum-machine";
  std::string server;
  int port = 9000, bars = 1, rate = 0, threads = 1;
  uint64_t seed = 0;
  bool seed_given = false, no_connect = false;
  double bpm = 120;
  float temperature = 1.0f;
};

// --model, else $NGS_MODEL, else the installed bundled model (PREFIX/share/ngs, next to
// the program's ../share/ngs), else the source tree's models/drums.safetensors.
std::string find_model(const std::string &given) {
  if (!given.empty()) return given;
  if (const char *env = std::getenv("NGS_MODEL")) {
    if (*env) return env;
  }
  std::vector<std::string> candidates;
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    std::string dir = exe;
    dir = dir.substr(0, dir.find_last_of('/'));
    candidates.push_back(dir + "/../share/ngs/drums.safetensors");
  }
  if (*NGS_DRUM_MODEL_DIR) candidates.push_back(std::string(NGS_DRUM_MODEL_DIR) + "/drums.safetensors");
  if (*NGS_SOURCE_DIR) candidates.push_back(std::string(NGS_SOURCE_DIR) + "/models/drums.safetensors");
  for (const std::string &c : candidates)
    if (access(c.c_str(), R_OK) == 0) return c;
  throw Failure("no model found: pass --model FILE or set NGS_MODEL (looked in " +
                (candidates.empty() ? std::string("nothing") : candidates.front()) + ")");
}

// A regular file's text, at most max_bytes (a FIFO or a device is refused, never waited on).
std::string read_text_file(const std::string &path, size_t max_bytes) {
  const std::string name = "pattern '" + ngs_cli::truncated(path) + "'";
  const int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw Failure("cannot read " + name + ": " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    throw Failure("cannot read " + name + ": not a regular file");
  }
  std::string s;
  char buf[65536];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      throw Failure("cannot read " + name + ": " + std::strerror(err));
    }
    if (n == 0) break;
    s.append(buf, size_t(n));
    if (s.size() > max_bytes) {
      close(fd);
      throw Failure(name + " is larger than " + std::to_string(max_bytes) + " bytes");
    }
  }
  close(fd);
  return s;
}

// A pattern from JSON text (starting with '{') or from the file it names.
ngs_cli::Pattern load_pattern(const std::string &text_or_path) {
  size_t i = text_or_path.find_first_not_of(" \t\r\n");
  if (i != std::string::npos && text_or_path[i] == '{')
    return ngs_cli::parse_pattern(text_or_path, "(message)");
  return ngs_cli::parse_pattern(read_text_file(text_or_path, 1 << 20), text_or_path);
}

std::string steps_text(const Grid &g, int t) {
  std::string s;
  char b[32];
  for (int k = 0; k < kSteps; ++k) {
    std::snprintf(b, sizeof b, "%s%.9g", k ? "," : "", double(g.v[t][k]));  // round-trips the float
    s += b;
  }
  return s;
}

// Initial sounds: track t a one-shot of class t (mod the class count), or a path for a
// model without a sequence VAE.
void initial_tracks(Machine &m) {
  for (int t = 0; t < kTracks; ++t) {
    if (m.engine.info.has_latent_model) {
      const int cls = m.engine.info.n_classes > 0 ? t % m.engine.info.n_classes : NGS_CLASS_NONE;
      m.tracks[t] = m.sample_note(cls, m.next_seed());
    } else {
      m.tracks[t] = m.sample_path(m.next_seed());
    }
  }
}

void print_tracks(const Machine &m, const std::string &model_path) {
  std::fprintf(stderr, "%s: model %s\n", kProg, model_path.c_str());
  for (int t = 0; t < kTracks; ++t)
    std::fprintf(stderr, "%s: track %d: %s seed %llu\n", kProg, t, m.label(t).c_str(),
                 (unsigned long long)m.tracks[t].seed);
}

bool is_flac(const std::string &path) {
  const size_t dot = path.find_last_of('.');
  if (dot == std::string::npos) return false;
  std::string ext = path.substr(dot + 1);
  for (char &ch : ext) ch = char(std::tolower((unsigned char)ch));
  return ext == "flac";
}

// A whole file: WAV as 32-bit float, FLAC as 24-bit; temporary file renamed when complete.
void write_wav(const std::string &path, const std::vector<std::string> &inputs,
               const std::vector<float> &audio, int rate) {
  ngs_cli::check_audio_extension(path);
  ngs_cli::OutputFile out(path, inputs);
  ngs_cli::write_audio(out, audio.data(), audio.size(), rate, is_flac(path) ? 24 : 32);
  out.commit();
}

// ---- live mode ----------------------------------------------------------------------

// What the JACK callbacks share with the other threads; all of it lock-free.
struct Live {
  Live(int rate, size_t record_frames) : handoff(rate, record_frames) {}
  Handoff handoff;
  std::atomic<int> latency{0};
  std::atomic<bool> jack_gone{false};
  jack_port_t *port = nullptr;
};

int on_process(jack_nframes_t n, void *arg) {
  Live &L = *static_cast<Live *>(arg);
  L.handoff.process(static_cast<float *>(jack_port_get_buffer(L.port, n)), int(n));
  return 0;
}

void on_latency(jack_latency_callback_mode_t mode, void *arg) {
  Live &L = *static_cast<Live *>(arg);
  if (mode != JackPlaybackLatency || !L.port) return;
  jack_latency_range_t r;
  jack_port_get_latency_range(L.port, JackPlaybackLatency, &r);
  L.latency.store(int(r.max));
}

void on_jack_shutdown(void *arg) { static_cast<Live *>(arg)->jack_gone.store(true); }

// A request from the OSC thread to the worker, already checked for types and ranges.
struct Request {
  enum Type { kSampleNote, kSamplePath, kStep, kPattern, kClear, kBpm, kPlay, kStop, kTemperature, kSave, kStatus } type;
  std::string address;
  int track = -1, step = 0, bars = 1;
  std::string text;  // class, pattern, file
  bool has_seed = false;
  uint64_t seed = 0;
  double value = 0;
  Peer peer;
};

class RequestQueue {
 public:
  static constexpr size_t kMax = 256;
  bool push(Request r) {
    std::lock_guard<std::mutex> lk(mu_);
    if (q_.size() >= kMax) return false;
    q_.push_back(std::move(r));
    cv_.notify_one();
    return true;
  }
  bool pop(Request &r, int timeout_ms) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] { return !q_.empty(); });
    if (q_.empty()) return false;
    r = std::move(q_.front());
    q_.pop_front();
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Request> q_;
};

// An /error reply to the sender, also logged (a sender such as oscsend does not listen).
void reply_error(const Peer &p, const std::string &address, const std::string &message) {
  const std::string a = ngs_cli::truncated(address, 64);
  OscServer::send(p, "/error", {OscArg::Str(a), OscArg::Str(message)});
  std::fprintf(stderr, "%s: %s%s%s\n", kProg, a.c_str(), a.empty() ? "" : ": ", message.c_str());
}

// The model worker: the only thread that calls the model and changes the state.
class Worker {
 public:
  Worker(Machine &m, Live &live, const std::vector<std::string> &inputs)
      : m_(m), live_(live), inputs_(inputs) {}
  // Before the audio starts: the initial buffers and state.
  void start() {
    for (int t = 0; t < kTracks; ++t) live_.handoff.publish(t, m_.tracks[t].audio);
    send_grid();
    SeqCommand c;
    c.type = SeqCommand::kBpm;
    c.bpm = m_.bpm;
    live_.handoff.send(c);
  }

  void run(RequestQueue &q, const std::atomic<bool> &stop) {
    while (!stop.load()) {
      Request r;
      const bool got = q.pop(r, 20);
      live_.handoff.reclaim();
      if (!got) continue;
      try {
        handle(r);
      } catch (const std::bad_alloc &) {
        reply_error(r.peer, r.address, "out of memory");
      } catch (const std::exception &e) {
        reply_error(r.peer, r.address, e.what());
      }
    }
  }

 private:
  void send(const SeqCommand &c) { live_.handoff.send(c); }
  void send_grid() {
    SeqCommand c;
    c.type = SeqCommand::kGrid;
    c.grid = m_.grid;
    send(c);
  }
  void publish(int t) { live_.handoff.publish(t, m_.tracks[t].audio); }

  void ready(const Request &r, std::vector<OscArg> args) {
    args.insert(args.begin(), OscArg::Str(r.address));
    OscServer::send(r.peer, "/ready", args);
  }

  void handle(const Request &r) {
    switch (r.type) {
      case Request::kSampleNote: {
        const int cls = m_.parse_class(r.text);
        const uint64_t seed = r.has_seed ? r.seed : m_.next_seed();
        m_.tracks[r.track] = m_.sample_note(cls, seed);
        publish(r.track);
        ready(r, {OscArg::Int(r.track), OscArg::Str(m_.label(r.track)), OscArg::Long(int64_t(seed))});
        break;
      }
      case Request::kSamplePath: {
        const uint64_t seed = r.has_seed ? r.seed : m_.next_seed();
        m_.tracks[r.track] = m_.sample_path(seed);
        publish(r.track);
        ready(r, {OscArg::Int(r.track), OscArg::Long(int64_t(seed))});
        break;
      }
      case Request::kStep:
        m_.grid.v[r.track][r.step] = float(r.value);
        send_grid();
        ready(r, {OscArg::Int(r.track), OscArg::Int(r.step), OscArg::Float(m_.grid.v[r.track][r.step])});
        break;
      case Request::kPattern: {
        const Grid g = m_.pattern_grid(load_pattern(r.text));
        int hits = 0;
        for (auto &row : g.v)
          for (float v : row) hits += v > 0;
        m_.grid = g;
        send_grid();
        ready(r, {OscArg::Int(hits)});
        break;
      }
      case Request::kClear:
        for (int t = 0; t < kTracks; ++t)
          if (r.track < 0 || r.track == t)
            for (float &v : m_.grid.v[t]) v = 0;
        send_grid();
        ready(r, {});
        break;
      case Request::kBpm: {
        m_.bpm = r.value;
        SeqCommand c;
        c.type = SeqCommand::kBpm;
        c.bpm = r.value;
        send(c);
        ready(r, {OscArg::Float(r.value)});
        break;
      }
      case Request::kPlay:
      case Request::kStop: {
        SeqCommand c;
        c.type = r.type == Request::kPlay ? SeqCommand::kPlay : SeqCommand::kStop;
        send(c);
        m_.playing = r.type == Request::kPlay;
        ready(r, {});
        break;
      }
      case Request::kTemperature:
        m_.temperature = float(r.value);
        ready(r, {OscArg::Float(r.value)});
        break;
      case Request::kSave: {
        const std::vector<float> audio = m_.render(r.bars);
        write_wav(r.text, inputs_, audio, m_.rate);
        ready(r, {OscArg::Str(r.text), OscArg::Long(int64_t(audio.size()))});
        break;
      }
      case Request::kStatus: {
        std::vector<OscArg> a = {OscArg::Float(m_.bpm),
                                 OscArg::Int(m_.playing),
                                 OscArg::Float(m_.temperature),
                                 OscArg::Long(live_.handoff.frame()),
                                 OscArg::Long(live_.handoff.play_frame()),
                                 OscArg::Int(m_.rate),
                                 OscArg::Int(live_.latency.load()),
                                 OscArg::Int(live_.handoff.voices())};
        for (int t = 0; t < kTracks; ++t) {
          a.push_back(OscArg::Str(m_.label(t)));
          a.push_back(OscArg::Long(int64_t(m_.tracks[t].seed)));
          a.push_back(OscArg::Str(steps_text(m_.grid, t)));
        }
        OscServer::send(r.peer, "/status", a);
        break;
      }
    }
  }

  Machine &m_;
  Live &live_;
  std::vector<std::string> inputs_;
};

// Parses one message into a request; throws Failure with the reason (the reply).
Request parse_request(const OscMessage &m, const Peer &peer) {
  Request r;
  r.address = m.path;
  r.peer = peer;
  const std::string &a = m.path;
  const size_t argc = m.types.size();
  auto want = [&](size_t lo, size_t hi, const char *usage) {
    if (argc < lo || argc > hi)
      throw Failure("expects " + std::string(usage) + ", got " + std::to_string(argc) + " argument(s) of types '" +
                    ngs_cli::truncated(m.types, 16) + "'");
  };
  auto get_int = [&](int i, const char *what, int64_t lo, int64_t hi) {
    int64_t v;
    if (!osc_int(m, i, &v))
      throw Failure(std::string(what) + " must be an integer (argument " + std::to_string(i + 1) + " has type '" +
                    m.types[i] + "')");
    if (v < lo || v > hi)
      throw Failure(std::string(what) + " " + std::to_string(v) + " is not in " + std::to_string(lo) + ".." +
                    std::to_string(hi));
    return v;
  };
  auto get_float = [&](int i, const char *what, double lo, double hi) {
    double v;
    if (!osc_float(m, i, &v))
      throw Failure(std::string(what) + " must be a finite number (argument " + std::to_string(i + 1) +
                    " has type '" + m.types[i] + "')");
    if (!(v >= lo && v <= hi)) {
      char b[128];
      std::snprintf(b, sizeof b, "%s %g is not in [%g, %g]", what, v, lo, hi);
      throw Failure(b);
    }
    return v;
  };
  auto get_string = [&](int i, const char *what, size_t max) {
    std::string s;
    if (!osc_string(m, i, &s))
      throw Failure(std::string(what) + " must be a string (argument " + std::to_string(i + 1) + " has type '" +
                    m.types[i] + "')");
    if (s.empty() || s.size() > max)
      throw Failure(std::string(what) + " must have 1 to " + std::to_string(max) + " characters");
    return s;
  };
  auto get_seed = [&](int i) {
    if (size_t(i) < argc) {
      r.has_seed = true;
      r.seed = uint64_t(get_int(i, "seed", 0, INT64_MAX));
    }
  };
  if (a == "/sample_note") {
    r.type = Request::kSampleNote;
    want(2, 3, "<track> <class> [seed]");
    r.track = int(get_int(0, "track", 0, kTracks - 1));
    int64_t ci;
    if (osc_int(m, 1, &ci)) {
      if (ci < -1 || ci > 1 << 20) throw Failure("class " + std::to_string(ci) + " out of range");
      r.text = std::to_string(ci);
    } else {
      r.text = get_string(1, "class", 256);
    }
    get_seed(2);
  } else if (a == "/sample_path") {
    r.type = Request::kSamplePath;
    want(1, 2, "<track> [seed]");
    r.track = int(get_int(0, "track", 0, kTracks - 1));
    get_seed(1);
  } else if (a == "/step") {
    r.type = Request::kStep;
    want(3, 3, "<track> <step> <velocity>");
    r.track = int(get_int(0, "track", 0, kTracks - 1));
    r.step = int(get_int(1, "step", 0, kSteps - 1));
    r.value = get_float(2, "velocity", 0, 1);
  } else if (a == "/pattern") {
    r.type = Request::kPattern;
    want(1, 1, "<pattern JSON or file>");
    r.text = get_string(0, "pattern", 60000);
  } else if (a == "/clear") {
    r.type = Request::kClear;
    want(0, 1, "[track]");
    if (argc == 1) r.track = int(get_int(0, "track", 0, kTracks - 1));
  } else if (a == "/bpm") {
    r.type = Request::kBpm;
    want(1, 1, "<bpm>");
    r.value = get_float(0, "bpm", 20, 400);
  } else if (a == "/play" || a == "/stop" || a == "/status") {
    r.type = a == "/play" ? Request::kPlay : a == "/stop" ? Request::kStop : Request::kStatus;
    want(0, 0, "no arguments");
  } else if (a == "/temperature") {
    r.type = Request::kTemperature;
    want(1, 1, "<temperature>");
    r.value = get_float(0, "temperature", 0, 10);
  } else if (a == "/save") {
    r.type = Request::kSave;
    want(1, 2, "<file.wav> [bars]");
    r.text = get_string(0, "file", 4096);
    if (argc == 2) r.bars = int(get_int(1, "bars", 1, 64));
    ngs_cli::check_audio_extension(r.text);
  } else {
    throw Failure("unknown address (/sample_note, /sample_path, /step, /pattern, /clear, /bpm, /play, /stop, "
                  "/temperature, /save, /status)");
  }
  return r;
}

int run_live(const Options &o, const std::string &model_path) {
  // Every thread started from here on (JACK's too) inherits the blocked signals; main
  // takes them with sigtimedwait.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  OscServer osc(o.host, o.port);

  ngs_cli::GlobalOptions g;
  g.threads = o.threads;
  ngs_cli::Engine engine(model_path, g);

  jack_status_t st;
  const char *server = o.server.empty() ? nullptr : o.server.c_str();
  jack_client_t *client = jack_client_open(o.name.c_str(),
                                           jack_options_t(JackNoStartServer | (server ? JackServerName : 0)),
                                           &st, server);
  if (!client)
    throw Failure("cannot connect to a JACK server" + std::string(server ? " '" + o.server + "'" : "") +
                  " (is one running? e.g. jackd -d dummy, or jackd -d alsa)");
  struct ClientCloser {
    jack_client_t *c;
    bool closed = false;
    void close() {
      if (!closed) jack_client_close(c);
      closed = true;
    }
    ~ClientCloser() { close(); }
  } closer{client};
  const int rate = int(jack_get_sample_rate(client));

  // 8 s of audio between the audio thread and the disk when recording.
  Live live(rate, o.record.empty() ? 0 : size_t(rate) * 8);
  live.port = jack_port_register(client, "out", JACK_DEFAULT_AUDIO_TYPE, JackPortIsOutput | JackPortIsTerminal, 0);
  if (!live.port) throw Failure("cannot register the JACK output port");

  std::unique_ptr<ngs_cli::OutputFile> rec_file;
  SNDFILE *rec_sf = nullptr;
  struct SfCloser {
    SNDFILE *&sf;
    ~SfCloser() {
      if (sf) sf_close(sf);
    }
  } sf_closer{rec_sf};
  // What /save must not overwrite.
  const std::vector<std::string> inputs = {model_path, o.pattern, o.record};
  if (!o.record.empty()) {
    ngs_cli::check_audio_extension(o.record);
    rec_file.reset(new ngs_cli::OutputFile(o.record, {model_path, o.pattern}));
    SF_INFO info{};
    info.samplerate = rate;
    info.channels = 1;
    info.format = is_flac(o.record) ? SF_FORMAT_FLAC | SF_FORMAT_PCM_24 : SF_FORMAT_WAV | SF_FORMAT_FLOAT;
    rec_sf = sf_open_fd(rec_file->fd(), SFM_WRITE, &info, SF_FALSE);
    if (!rec_sf) throw Failure("cannot write '" + o.record + "': " + sf_strerror(nullptr));
  }

  Machine m(engine, rate, o.seed, o.temperature);
  m.bpm = o.bpm;
  initial_tracks(m);
  m.grid = m.pattern_grid(load_pattern(o.pattern.empty() ? kDefaultPattern : o.pattern));
  print_tracks(m, model_path);
  Worker worker(m, live, inputs);
  worker.start();

  jack_set_process_callback(client, on_process, &live);
  jack_set_latency_callback(client, on_latency, &live);
  jack_on_shutdown(client, on_jack_shutdown, &live);
  if (jack_activate(client) != 0) throw Failure("cannot activate the JACK client");
  // Playback latency: the largest of the ports we feed (our port's own range is updated
  // by JACK asynchronously, through on_latency).
  int latency = 0;
  if (!o.no_connect) {
    const char **ports = jack_get_ports(client, nullptr, JACK_DEFAULT_AUDIO_TYPE, JackPortIsPhysical | JackPortIsInput);
    for (int i = 0; ports && ports[i] && i < 2; ++i) {
      if (jack_connect(client, jack_port_name(live.port), ports[i]) != 0) continue;
      jack_latency_range_t r;
      jack_port_get_latency_range(jack_port_by_name(client, ports[i]), JackPlaybackLatency, &r);
      latency = std::max(latency, int(r.max));
    }
    if (ports) jack_free(ports);
  }
  live.latency.store(latency);
  jack_recompute_total_latencies(client);

  // The recorder.
  std::atomic<bool> stop_recorder{false};
  std::string rec_error;
  std::thread recorder;
  if (rec_sf) {
    recorder = std::thread([&] {
      std::vector<float> buf(8192);
      for (;;) {
        const bool last = stop_recorder.load();
        size_t n;
        while ((n = live.handoff.record()->read(buf.data(), buf.size())) > 0)
          if (rec_error.empty() && sf_writef_float(rec_sf, buf.data(), sf_count_t(n)) != sf_count_t(n))
            rec_error = std::string("cannot write '") + o.record + "': " + sf_strerror(rec_sf);
        if (last) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    });
  }

  RequestQueue queue;
  std::atomic<bool> stop_threads{false};
  std::thread worker_thread([&] { worker.run(queue, stop_threads); });
  std::thread osc_thread([&] {
    while (!stop_threads.load()) {
      osc.poll(
          100,
          [&](const OscMessage &msg, const Peer &peer) {
            try {
              Request r = parse_request(msg, peer);
              if (!queue.push(std::move(r)))
                reply_error(peer, msg.path, "busy: " + std::to_string(RequestQueue::kMax) + " requests queued");
            } catch (const Failure &e) {
              reply_error(peer, msg.path, e.what());
            }
          },
          [&](const std::string &why, const Peer &peer) { reply_error(peer, "", why); });
    }
  });

  std::printf("%s: ready: osc.udp://%s:%d/ jack client '%s' at %d Hz, block %d, playback latency %d frames, seed %llu\n",
              kProg, o.host == "any" ? "0.0.0.0" : o.host.c_str(), osc.port(), jack_get_client_name(client), rate,
              int(jack_get_buffer_size(client)), live.latency.load(), (unsigned long long)o.seed);
  std::fflush(stdout);

  const timespec tick{0, 100 * 1000 * 1000};
  while (!live.jack_gone.load()) {
    const int s = sigtimedwait(&sigs, nullptr, &tick);
    if (s == SIGINT || s == SIGTERM) break;
  }
  // Teardown: no more requests, then no more audio, then the recording's end.
  stop_threads.store(true);
  osc_thread.join();
  worker_thread.join();
  const bool jack_died = live.jack_gone.load();
  jack_deactivate(client);
  closer.close();
  int status = 0;
  if (jack_died) {
    std::fprintf(stderr, "%s: error: the JACK server stopped\n", kProg);
    status = 1;
  }
  if (rec_file) {
    stop_recorder.store(true);
    recorder.join();
    const sf_count_t frames = sf_seek(rec_sf, 0, SEEK_CUR);
    const int closed = sf_close(rec_sf);
    rec_sf = nullptr;
    if (closed != 0 && rec_error.empty()) rec_error = "cannot write '" + o.record + "'";
    const uint64_t lost = live.handoff.record_lost();
    if (lost > 0 && rec_error.empty())
      std::fprintf(stderr, "%s: warning: the recording lost %llu frames (the disk was too slow)\n", kProg,
                   (unsigned long long)lost);
    if (!rec_error.empty()) {
      std::fprintf(stderr, "%s: error: %s\n", kProg, rec_error.c_str());
      return 1;  // rec_file's destructor removes the temporary file
    }
    rec_file->commit();
    std::fprintf(stderr, "%s: wrote %s (%lld frames at %d Hz)\n", kProg, o.record.c_str(), (long long)frames, rate);
  }
  return status;
}

int run_offline(const Options &o, const std::string &model_path) {
  ngs_cli::install_signal_cleanup();  // Ctrl-C removes the temporary output
  ngs_cli::GlobalOptions g;
  g.threads = o.threads;
  ngs_cli::check_audio_extension(o.offline);
  // The output's temporary file first: a bad output path fails before any work.
  ngs_cli::OutputFile out(o.offline, {model_path, o.pattern});
  ngs_cli::Engine engine(model_path, g);
  const int rate = o.rate > 0 ? o.rate : engine.info.sample_rate;
  Machine m(engine, rate, o.seed, o.temperature);
  m.bpm = o.bpm;
  const ngs_cli::Pattern pattern = load_pattern(o.pattern.empty() ? kDefaultPattern : o.pattern);
  initial_tracks(m);
  m.grid = m.pattern_grid(pattern);
  const std::vector<float> audio = m.render(o.bars);
  ngs_cli::write_audio(out, audio.data(), audio.size(), rate, is_flac(o.offline) ? 24 : 32);
  out.commit();
  print_tracks(m, model_path);
  std::fprintf(stderr, "%s: wrote %s (%zu frames at %d Hz, %d bar(s) at %g bpm)\n", kProg, o.offline.c_str(),
               audio.size(), rate, o.bars, o.bpm);
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  CLI::App app{"ngs-drum-machine: a neural drum machine (8 tracks x 16 steps) played over OSC, through JACK "
               "(README \"Neural drum machine\")",
               kProg};
  app.set_version_flag("--version", std::string(kProg) + " " + ngs_version());
  Options o;
  app.add_option("--model", o.model,
                 "Model file (default: $NGS_MODEL, else the bundled drums.safetensors)");
  ngs_cli::add_int(&app, "--port", o.port, 0, 65535, "OSC UDP port (0 = any free port, printed at start)");
  app.add_option("--host", o.host,
                 "Address to listen on: localhost (127.0.0.1 and ::1), any, or a numeric address")
      ->capture_default_str();
  auto *seed = ngs_cli::add_u64(&app, "--seed", o.seed, "Key of the model's draws (default: random, printed)");
  seed->default_str("random");
  ngs_cli::add_real(&app, "--bpm", o.bpm, 20, 400, "Tempo (16th-note steps)");
  ngs_cli::add_real(&app, "--temperature", o.temperature, 0, 10, "Embedding / path temperature of the draws");
  app.add_option("--pattern", o.pattern, "Start pattern, a JSON file as apps/examples/pattern.json (default: that one)");
  app.add_option("--record", o.record, "Record what JACK plays to this .wav (float) or .flac, written at exit");
  app.add_option("--offline", o.offline, "Render --bars bars to this .wav (float) or .flac without a sound server, and exit");
  ngs_cli::add_int(&app, "--bars", o.bars, 1, 1024, "Bars of --offline");
  ngs_cli::add_int(&app, "--rate", o.rate, 0, 192000, "Sample rate of --offline (0 = the model's)");
  app.add_option("--name", o.name, "JACK client name")->capture_default_str();
  app.add_option("--server", o.server, "JACK server name (default: $JACK_DEFAULT_SERVER, else 'default')");
  app.add_flag("--no-connect", o.no_connect, "Do not connect the output to the system playback ports");
  ngs_cli::add_int(&app, "--threads", o.threads, 1, 64, "CPU threads of the model's calls");
  bool done = false;
  if (const int rc = ngs_cli::parse_command_line(app, argc, argv, kProg, &done); done) return rc;
  o.seed_given = seed->count() > 0;
  if (!o.seed_given) o.seed = (uint64_t(std::random_device{}()) << 32 | std::random_device{}()) >> 1;
  if (o.rate != 0 && o.rate < 8000) {
    std::fprintf(stderr, "%s: error: --rate must be 0 or 8000..192000\n", kProg);
    return 1;
  }
  if (!o.offline.empty() && !o.record.empty()) {
    std::fprintf(stderr, "%s: error: --record records a live session; --offline writes its own file\n", kProg);
    return 1;
  }
  try {
    const std::string model = find_model(o.model);
    return o.offline.empty() ? run_live(o, model) : run_offline(o, model);
  } catch (const Failure &e) {
    std::fprintf(stderr, "%s: error: %s\n", kProg, e.what());
  } catch (const std::bad_alloc &) {
    std::fprintf(stderr, "%s: error: out of memory\n", kProg);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "%s: error: %s\n", kProg, e.what());
  }
  return 1;
}

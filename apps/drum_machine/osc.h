// OSC over UDP for the drum machine: the server's sockets (bound to one address, IPv4
// and IPv6 loopback by default) and the message codec of liblo (lo_message_deserialise /
// lo_message_serialise: OSC 1.0, bundles unpacked here). Each datagram is read whole
// (at most 65,536 bytes); its sender is kept so that the reply goes back to it, from the
// server's own port.
#pragma once

#include <sys/socket.h>

#include <lo/lo.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ngs_drum {

// Where a message came from; replies go there.
struct Peer {
  int fd = -1;
  sockaddr_storage addr{};
  socklen_t len = 0;
};

// A decoded message: its address, type tags and arguments (owned by `msg`).
struct OscMessage {
  std::string path;
  std::string types;
  lo_arg **argv = nullptr;
  lo_message msg = nullptr;
};

// One argument read as a given type. Numbers are accepted as any OSC numeric type
// (i, h, f, d; an integer argument given as a float must be whole), since Pd, Max and
// oscsend users send them differently; strings as s or S.
bool osc_int(const OscMessage &m, int i, int64_t *out);
bool osc_float(const OscMessage &m, int i, double *out);
bool osc_string(const OscMessage &m, int i, std::string *out);

// A reply argument.
struct OscArg {
  char type = 's';  // 'i', 'h', 'f', 's'
  int64_t i = 0;
  double f = 0;
  std::string s;
  static OscArg Int(int64_t v) { return make('i', v, 0, {}); }
  static OscArg Long(int64_t v) { return make('h', v, 0, {}); }
  static OscArg Float(double v) { return make('f', 0, v, {}); }
  static OscArg Str(std::string v) { return make('s', 0, 0, std::move(v)); }
  static OscArg make(char t, int64_t i, double f, std::string s) {
    OscArg a;
    a.type = t;
    a.i = i;
    a.f = f;
    a.s = std::move(s);
    return a;
  }
};

class OscServer {
 public:
  // host: "localhost" (127.0.0.1 and ::1), "any" (every interface, IPv4 and IPv6) or a
  // numeric address; port 0 = any free port. Throws ngs_cli::Failure.
  OscServer(const std::string &host, int port);
  ~OscServer();
  OscServer(const OscServer &) = delete;
  OscServer &operator=(const OscServer &) = delete;
  int port() const { return port_; }

  // Waits up to timeout_ms for datagrams and hands each message to on_message (a
  // bundle's messages in order; time tags are ignored: everything applies at once).
  // A datagram that is not valid OSC goes to on_malformed with the reason.
  void poll(int timeout_ms, const std::function<void(const OscMessage &, const Peer &)> &on_message,
            const std::function<void(const std::string &, const Peer &)> &on_malformed);

  // Sends a message to a peer (from the socket it wrote to). Thread-safe (one sendto).
  static void send(const Peer &to, const std::string &path, const std::vector<OscArg> &args);

 private:
  void dispatch(char *data, size_t size, const Peer &from, int depth,
                const std::function<void(const OscMessage &, const Peer &)> &on_message,
                const std::function<void(const std::string &, const Peer &)> &on_malformed);
  std::vector<int> fds_;
  int port_ = 0;
  std::vector<char> buf_;
};

}  // namespace ngs_drum

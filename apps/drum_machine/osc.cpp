#include "osc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "common.h"  // ngs_cli::Failure

namespace ngs_drum {

using ngs_cli::Failure;

namespace {

constexpr size_t kMaxDatagram = 65536;
constexpr int kMaxBundleDepth = 8;

uint32_t read_be32(const char *p) {
  const unsigned char *u = reinterpret_cast<const unsigned char *>(p);
  return (uint32_t(u[0]) << 24) | (uint32_t(u[1]) << 16) | (uint32_t(u[2]) << 8) | u[3];
}

// A bound UDP socket, or -1 with errno set.
int bind_udp(const sockaddr *sa, socklen_t len, bool v6only) {
  int fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (sa->sa_family == AF_INET6) {
    int on = v6only ? 1 : 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
  }
  if (bind(fd, sa, len) != 0) {
    const int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

int bound_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &len);
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in *>(&ss)->sin_port);
  return ntohs(reinterpret_cast<sockaddr_in6 *>(&ss)->sin6_port);
}

sockaddr_in v4(const char *addr, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  inet_pton(AF_INET, addr, &a.sin_addr);
  return a;
}

sockaddr_in6 v6(const char *addr, int port) {
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(uint16_t(port));
  inet_pton(AF_INET6, addr, &a.sin6_addr);
  return a;
}

}  // namespace

bool osc_int(const OscMessage &m, int i, int64_t *out) {
  if (i >= int(m.types.size())) return false;
  const lo_arg *a = m.argv[i];
  double d;
  switch (m.types[i]) {
    case 'i': *out = a->i; return true;
    case 'h': *out = a->h; return true;
    case 'f': d = a->f; break;
    case 'd': d = a->d; break;
    default: return false;
  }
  if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9.0e15) return false;
  *out = int64_t(d);
  return true;
}

bool osc_float(const OscMessage &m, int i, double *out) {
  if (i >= int(m.types.size())) return false;
  const lo_arg *a = m.argv[i];
  switch (m.types[i]) {
    case 'i': *out = a->i; break;
    case 'h': *out = double(a->h); break;
    case 'f': *out = a->f; break;
    case 'd': *out = a->d; break;
    default: return false;
  }
  return std::isfinite(*out);
}

bool osc_string(const OscMessage &m, int i, std::string *out) {
  if (i >= int(m.types.size())) return false;
  if (m.types[i] != 's' && m.types[i] != 'S') return false;
  *out = &m.argv[i]->s;
  return true;
}

OscServer::OscServer(const std::string &host, int port) : buf_(kMaxDatagram + 1) {
  if (port < 0 || port > 65535) throw Failure("--port " + std::to_string(port) + " is not in 0..65535");
  auto fail = [&](const std::string &where) {
    const int err = errno;
    for (int fd : fds_) close(fd);
    fds_.clear();
    throw Failure("cannot listen for OSC on UDP " + where + " port " + std::to_string(port) + ": " +
                  std::strerror(err));
  };
  if (host == "localhost") {
    // 127.0.0.1 and ::1 on the same port ("localhost" may resolve to either for a client).
    for (int attempt = 0; attempt < 20 && fds_.empty(); ++attempt) {
      sockaddr_in a = v4("127.0.0.1", port);
      int fd = bind_udp(reinterpret_cast<sockaddr *>(&a), sizeof a, false);
      if (fd < 0) fail("127.0.0.1");
      fds_.push_back(fd);
      const int p = bound_port(fd);
      sockaddr_in6 b = v6("::1", p);
      int fd6 = bind_udp(reinterpret_cast<sockaddr *>(&b), sizeof b, true);
      if (fd6 >= 0) {
        fds_.push_back(fd6);
      } else if (errno == EADDRINUSE) {
        if (port != 0) fail("::1");
        close(fds_.back());  // the free IPv4 port is taken on ::1: try another one
        fds_.clear();
      }  // no IPv6 here: IPv4 only
    }
    if (fds_.empty()) fail("localhost");
  } else if (host == "any") {
    sockaddr_in6 b = v6("::", port);
    int fd = bind_udp(reinterpret_cast<sockaddr *>(&b), sizeof b, false);
    if (fd < 0) {
      sockaddr_in a = v4("0.0.0.0", port);
      fd = bind_udp(reinterpret_cast<sockaddr *>(&a), sizeof a, false);
    }
    if (fd < 0) fail("any address");
    fds_.push_back(fd);
  } else {
    sockaddr_in a{};
    sockaddr_in6 b{};
    int fd;
    if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) == 1) {
      a = v4(host.c_str(), port);
      fd = bind_udp(reinterpret_cast<sockaddr *>(&a), sizeof a, false);
    } else if (inet_pton(AF_INET6, host.c_str(), &b.sin6_addr) == 1) {
      b = v6(host.c_str(), port);
      fd = bind_udp(reinterpret_cast<sockaddr *>(&b), sizeof b, true);
    } else {
      throw Failure("--host '" + host + "' is not localhost, any or a numeric IPv4/IPv6 address");
    }
    if (fd < 0) fail(host);
    fds_.push_back(fd);
  }
  port_ = bound_port(fds_[0]);
}

OscServer::~OscServer() {
  for (int fd : fds_) close(fd);
}

void OscServer::poll(int timeout_ms,
                     const std::function<void(const OscMessage &, const Peer &)> &on_message,
                     const std::function<void(const std::string &, const Peer &)> &on_malformed) {
  std::vector<pollfd> p;
  for (int fd : fds_) p.push_back({fd, POLLIN, 0});
  if (::poll(p.data(), p.size(), timeout_ms) <= 0) return;
  for (const pollfd &q : p) {
    if (!(q.revents & POLLIN)) continue;
    Peer from;
    from.fd = q.fd;
    from.len = sizeof from.addr;
    // One byte more than the largest datagram: a longer one would be truncated (MSG_TRUNC).
    const ssize_t n = recvfrom(q.fd, buf_.data(), buf_.size(), MSG_DONTWAIT | MSG_TRUNC,
                               reinterpret_cast<sockaddr *>(&from.addr), &from.len);
    if (n < 0) continue;
    if (size_t(n) > kMaxDatagram) {
      on_malformed("datagram of " + std::to_string(n) + " bytes is longer than 65536", from);
      continue;
    }
    dispatch(buf_.data(), size_t(n), from, 0, on_message, on_malformed);
  }
}

void OscServer::dispatch(char *data, size_t size, const Peer &from, int depth,
                         const std::function<void(const OscMessage &, const Peer &)> &on_message,
                         const std::function<void(const std::string &, const Peer &)> &on_malformed) {
  if (size >= 8 && std::memcmp(data, "#bundle", 8) == 0) {
    if (depth >= kMaxBundleDepth) return on_malformed("bundles nested too deep", from);
    if (size < 16) return on_malformed("bundle shorter than its header", from);
    size_t at = 16;  // "#bundle\0" + 8-byte time tag
    while (at < size) {
      if (size - at < 4) return on_malformed("bundle element size truncated", from);
      const uint32_t n = read_be32(data + at);
      at += 4;
      if (n > size - at || n % 4 != 0)
        return on_malformed("bundle element of " + std::to_string(n) + " bytes does not fit", from);
      dispatch(data + at, n, from, depth + 1, on_message, on_malformed);
      at += n;
    }
    return;
  }
  if (size == 0 || size % 4 != 0)
    return on_malformed("OSC packet size " + std::to_string(size) + " is not a positive multiple of 4", from);
  const char *path = lo_get_path(data, ssize_t(size));
  if (!path || path[0] != '/') return on_malformed("no OSC address pattern", from);
  int result = 0;
  lo_message m = lo_message_deserialise(data, size, &result);
  if (!m) {
    std::string p = path;
    if (p.size() > 64) p = p.substr(0, 64) + "...";
    return on_malformed("malformed OSC message to " + p + " (liblo error " + std::to_string(result) + ")", from);
  }
  OscMessage msg;
  msg.path = path;
  const char *types = lo_message_get_types(m);
  msg.types = types ? types : "";
  msg.argv = lo_message_get_argv(m);
  msg.msg = m;
  on_message(msg, from);
  lo_message_free(m);
}

void OscServer::send(const Peer &to, const std::string &path, const std::vector<OscArg> &args) {
  lo_message m = lo_message_new();
  if (!m) return;
  for (const OscArg &a : args) {
    switch (a.type) {
      case 'i': lo_message_add_int32(m, int32_t(a.i)); break;
      case 'h': lo_message_add_int64(m, a.i); break;
      case 'f': lo_message_add_float(m, float(a.f)); break;
      default: lo_message_add_string(m, a.s.c_str()); break;
    }
  }
  size_t size = 0;
  void *data = lo_message_serialise(m, path.c_str(), nullptr, &size);
  if (data) {
    sendto(to.fd, data, size, MSG_DONTWAIT | MSG_NOSIGNAL, reinterpret_cast<const sockaddr *>(&to.addr), to.len);
    std::free(data);
  }
  lo_message_free(m);
}

}  // namespace ngs_drum

// Real-time-safety interposer: see rt_interpose.h. Every definition below replaces the
// C library's (or libstdc++'s) for the whole program, including the shared ngs library,
// and forwards to the next definition found by dlsym(RTLD_NEXT) once it has noted the
// call. dlsym itself may allocate (its error buffer: calloc), so the allocation functions
// serve from a static bootstrap buffer while the forwarding pointers are being resolved.
// Nothing here allocates, locks or calls anything interposed while noting a call.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include "rt_interpose.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#error "rt_interpose.cpp replaces malloc and pthread functions: not for sanitizer builds"
#endif

namespace {

// ---- bookkeeping (lock-free, allocation-free) ---------------------------------------------

__thread int t_depth = 0;  // > 0: this thread is inside a guarded section

std::atomic<long> g_violations{0};
constexpr int kMaxNames = 64;
std::atomic<const char *> g_names[kMaxNames];
std::atomic<long> g_name_counts[kMaxNames];

void note(const char *name) {
  if (t_depth <= 0) return;
  g_violations.fetch_add(1, std::memory_order_relaxed);
  for (int i = 0; i < kMaxNames; ++i) {
    const char *cur = g_names[i].load(std::memory_order_acquire);
    if (cur == nullptr) {
      const char *expected = nullptr;
      if (g_names[i].compare_exchange_strong(expected, name, std::memory_order_acq_rel) ||
          expected == name) {
        g_name_counts[i].fetch_add(1, std::memory_order_relaxed);
        return;
      }
      cur = expected;
    }
    if (cur == name) {
      g_name_counts[i].fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
}

// ---- bootstrap allocator (used only while dlsym runs) ---------------------------------------

alignas(64) unsigned char g_boot[1 << 16];
size_t g_boot_used = 0;
constexpr size_t kBootHeader = 16;  // holds the block size, keeps 16-byte alignment

bool in_boot(const void *p) {
  const unsigned char *c = static_cast<const unsigned char *>(p);
  return c >= g_boot && c < g_boot + sizeof g_boot;
}

void *boot_alloc(size_t n, size_t align = 16) {
  size_t start = (g_boot_used + kBootHeader + align - 1) & ~(align - 1);
  if (start + n > sizeof g_boot) return nullptr;
  std::memcpy(g_boot + start - sizeof(size_t), &n, sizeof n);
  g_boot_used = start + n;
  std::memset(g_boot + start, 0, n);  // fresh memory: calloc semantics for free
  return g_boot + start;
}

size_t boot_size(const void *p) {
  size_t n;
  std::memcpy(&n, static_cast<const unsigned char *>(p) - sizeof(size_t), sizeof n);
  return n;
}

// ---- forwarding pointers ------------------------------------------------------------------

#define NGS_RT_FUNCS(X)                                                                   \
  X(malloc, void *, (size_t))                                                             \
  X(calloc, void *, (size_t, size_t))                                                     \
  X(realloc, void *, (void *, size_t))                                                    \
  X(reallocarray, void *, (void *, size_t, size_t))                                       \
  X(free, void, (void *))                                                                 \
  X(aligned_alloc, void *, (size_t, size_t))                                              \
  X(posix_memalign, int, (void **, size_t, size_t))                                       \
  X(memalign, void *, (size_t, size_t))                                                   \
  X(valloc, void *, (size_t))                                                             \
  X(pvalloc, void *, (size_t))                                                            \
  X(pthread_mutex_lock, int, (pthread_mutex_t *))                                         \
  X(pthread_mutex_trylock, int, (pthread_mutex_t *))                                      \
  X(pthread_mutex_timedlock, int, (pthread_mutex_t *, const struct timespec *))           \
  X(pthread_mutex_clocklock, int, (pthread_mutex_t *, clockid_t, const struct timespec *)) \
  X(pthread_mutex_unlock, int, (pthread_mutex_t *))                                       \
  X(pthread_rwlock_rdlock, int, (pthread_rwlock_t *))                                     \
  X(pthread_rwlock_tryrdlock, int, (pthread_rwlock_t *))                                  \
  X(pthread_rwlock_timedrdlock, int, (pthread_rwlock_t *, const struct timespec *))       \
  X(pthread_rwlock_wrlock, int, (pthread_rwlock_t *))                                     \
  X(pthread_rwlock_trywrlock, int, (pthread_rwlock_t *))                                  \
  X(pthread_rwlock_timedwrlock, int, (pthread_rwlock_t *, const struct timespec *))       \
  X(pthread_rwlock_unlock, int, (pthread_rwlock_t *))                                     \
  X(pthread_spin_lock, int, (pthread_spinlock_t *))                                       \
  X(pthread_spin_trylock, int, (pthread_spinlock_t *))                                    \
  X(pthread_spin_unlock, int, (pthread_spinlock_t *))                                     \
  X(pthread_create, int, (pthread_t *, const pthread_attr_t *, void *(*)(void *), void *)) \
  X(pthread_join, int, (pthread_t, void **))                                              \
  X(sem_wait, int, (sem_t *))                                                             \
  X(sem_trywait, int, (sem_t *))                                                          \
  X(sem_timedwait, int, (sem_t *, const struct timespec *))                               \
  X(sem_post, int, (sem_t *))                                                             \
  X(write, ssize_t, (int, const void *, size_t))                                          \
  X(writev, ssize_t, (int, const struct iovec *, int))                                    \
  X(read, ssize_t, (int, void *, size_t))                                                 \
  X(close, int, (int))                                                                    \
  X(nanosleep, int, (const struct timespec *, struct timespec *))                         \
  X(clock_nanosleep, int, (clockid_t, int, const struct timespec *, struct timespec *))   \
  X(usleep, int, (useconds_t))                                                            \
  X(sleep, unsigned, (unsigned))                                                          \
  X(sched_yield, int, (void))                                                             \
  X(poll, int, (struct pollfd *, nfds_t, int))                                            \
  X(select, int, (int, fd_set *, fd_set *, fd_set *, struct timeval *))                   \
  X(epoll_wait, int, (int, struct epoll_event *, int, int))                               \
  X(mmap, void *, (void *, size_t, int, int, int, off_t))                                 \
  X(munmap, int, (void *, size_t))                                                        \
  X(mprotect, int, (void *, size_t, int))                                                 \
  X(madvise, int, (void *, size_t, int))                                                  \
  X(fwrite, size_t, (const void *, size_t, size_t, FILE *))                               \
  X(fputs, int, (const char *, FILE *))                                                   \
  X(puts, int, (const char *))                                                            \
  X(fflush, int, (FILE *))                                                                \
  X(vfprintf, int, (FILE *, const char *, va_list))                                       \
  X(__vfprintf_chk, int, (FILE *, int, const char *, va_list))                            \
  X(fopen, FILE *, (const char *, const char *))

// The functions whose definitions are variadic are forwarded through these.
#define NGS_RT_VARIADIC(X)                                                                \
  X(syscall, long, (long, ...))                                                          \
  X(ioctl, int, (int, unsigned long, ...))                                                \
  X(open, int, (const char *, int, ...))                                                  \
  X(openat, int, (int, const char *, int, ...))

#define NGS_RT_DECLARE(name, ret, args) ret(*real_##name) args = nullptr;
NGS_RT_FUNCS(NGS_RT_DECLARE)
NGS_RT_VARIADIC(NGS_RT_DECLARE)
#undef NGS_RT_DECLARE

int g_state = 0;  // 0 unresolved, 1 resolving, 2 resolved

void *find(const char *name) {
  // The condition variable functions exist in two versions; take the current one.
  if (std::strncmp(name, "pthread_cond_", 13) == 0) {
    if (void *p = dlvsym(RTLD_NEXT, name, "GLIBC_2.3.2")) return p;
  }
  return dlsym(RTLD_NEXT, name);
}

using cond_wait_t = int (*)(pthread_cond_t *, pthread_mutex_t *);
using cond_timedwait_t = int (*)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
using cond_clockwait_t = int (*)(pthread_cond_t *, pthread_mutex_t *, clockid_t,
                                 const struct timespec *);
using cond_one_t = int (*)(pthread_cond_t *);
cond_wait_t real_cond_wait = nullptr;
cond_timedwait_t real_cond_timedwait = nullptr;
cond_clockwait_t real_cond_clockwait = nullptr;
cond_one_t real_cond_signal = nullptr;
cond_one_t real_cond_broadcast = nullptr;

// First use happens on the main thread before any other thread exists.
inline void ensure() {
  if (__builtin_expect(g_state == 2, 1)) return;
  if (g_state == 1) return;
  g_state = 1;
#define NGS_RT_RESOLVE(name, ret, args) \
  real_##name = reinterpret_cast<ret(*) args>(find(#name));
  NGS_RT_FUNCS(NGS_RT_RESOLVE)
  NGS_RT_VARIADIC(NGS_RT_RESOLVE)
#undef NGS_RT_RESOLVE
  real_cond_wait = reinterpret_cast<cond_wait_t>(find("pthread_cond_wait"));
  real_cond_timedwait = reinterpret_cast<cond_timedwait_t>(find("pthread_cond_timedwait"));
  real_cond_clockwait = reinterpret_cast<cond_clockwait_t>(find("pthread_cond_clockwait"));
  real_cond_signal = reinterpret_cast<cond_one_t>(find("pthread_cond_signal"));
  real_cond_broadcast = reinterpret_cast<cond_one_t>(find("pthread_cond_broadcast"));
  g_state = 2;
}

bool resolving() { return g_state == 1; }

}  // namespace

// ---- the public helpers ---------------------------------------------------------------------

namespace ngs::rt {

void enter() { ++t_depth; }
void leave() { --t_depth; }
bool inside() { return t_depth > 0; }
long violations() { return g_violations.load(); }

void reset() {
  g_violations.store(0);
  for (int i = 0; i < kMaxNames; ++i) {
    g_names[i].store(nullptr);
    g_name_counts[i].store(0);
  }
}

std::string report() {
  std::string s;
  for (int i = 0; i < kMaxNames; ++i) {
    const char *n = g_names[i].load();
    if (n == nullptr) break;
    if (!s.empty()) s += ", ";
    s += n;
    s += " x" + std::to_string(g_name_counts[i].load());
  }
  return s.empty() ? "no violations" : "called inside the audio section: " + s;
}

bool active() {
  ensure();
  return g_state == 2 && real_malloc != nullptr && real_free != nullptr &&
         real_pthread_mutex_lock != nullptr && real_cond_wait != nullptr && real_write != nullptr &&
         real_syscall != nullptr;
}

}  // namespace ngs::rt

// ---- allocation ---------------------------------------------------------------------------

extern "C" {

void *malloc(size_t n) {
  ensure();
  if (resolving()) return boot_alloc(n);
  note("malloc");
  return real_malloc(n);
}

void *calloc(size_t a, size_t b) {
  ensure();
  if (resolving()) return (b != 0 && a > SIZE_MAX / b) ? nullptr : boot_alloc(a * b);
  note("calloc");
  return real_calloc(a, b);
}

void *realloc(void *p, size_t n) {
  ensure();
  if (resolving() || in_boot(p)) {
    void *q = resolving() ? boot_alloc(n) : real_malloc(n);
    if (q != nullptr && p != nullptr) {
      const size_t old = boot_size(p);
      std::memcpy(q, p, old < n ? old : n);
    }
    return q;
  }
  note("realloc");
  return real_realloc(p, n);
}

void *reallocarray(void *p, size_t a, size_t b) {
  ensure();
  if (b != 0 && a > SIZE_MAX / b) return nullptr;
  if (resolving() || in_boot(p)) return realloc(p, a * b);
  note("reallocarray");
  return real_reallocarray(p, a, b);
}

void free(void *p) {
  if (p == nullptr || in_boot(p)) return;
  ensure();
  note("free");
  real_free(p);
}

void *aligned_alloc(size_t a, size_t n) {
  ensure();
  if (resolving()) return boot_alloc(n, a < 16 ? 16 : a);
  note("aligned_alloc");
  return real_aligned_alloc(a, n);
}

int posix_memalign(void **out, size_t a, size_t n) {
  ensure();
  if (resolving()) {
    *out = boot_alloc(n, a < 16 ? 16 : a);
    return *out ? 0 : 12;
  }
  note("posix_memalign");
  return real_posix_memalign(out, a, n);
}

void *memalign(size_t a, size_t n) {
  ensure();
  if (resolving()) return boot_alloc(n, a < 16 ? 16 : a);
  note("memalign");
  return real_memalign(a, n);
}

void *valloc(size_t n) {
  ensure();
  note("valloc");
  return real_valloc(n);
}

void *pvalloc(size_t n) {
  ensure();
  note("pvalloc");
  return real_pvalloc(n);
}

}  // extern "C"

namespace {

void *new_impl(size_t n, size_t align, bool nothrow) {
  ensure();
  note(align > 0 ? "operator new (aligned)" : "operator new");
  if (n == 0) n = 1;
  void *p = nullptr;
  if (align > 0) {
    if (real_posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, n) != 0) p = nullptr;
  } else {
    p = real_malloc(n);
  }
  if (p == nullptr && !nothrow) throw std::bad_alloc();
  return p;
}

void delete_impl(void *p) {
  if (p == nullptr || in_boot(p)) return;
  ensure();
  note("operator delete");
  real_free(p);
}

}  // namespace

void *operator new(size_t n) { return new_impl(n, 0, false); }
void *operator new[](size_t n) { return new_impl(n, 0, false); }
void *operator new(size_t n, const std::nothrow_t &) noexcept { return new_impl(n, 0, true); }
void *operator new[](size_t n, const std::nothrow_t &) noexcept { return new_impl(n, 0, true); }
void *operator new(size_t n, std::align_val_t a) { return new_impl(n, size_t(a), false); }
void *operator new[](size_t n, std::align_val_t a) { return new_impl(n, size_t(a), false); }
void *operator new(size_t n, std::align_val_t a, const std::nothrow_t &) noexcept {
  return new_impl(n, size_t(a), true);
}
void *operator new[](size_t n, std::align_val_t a, const std::nothrow_t &) noexcept {
  return new_impl(n, size_t(a), true);
}
void operator delete(void *p) noexcept { delete_impl(p); }
void operator delete[](void *p) noexcept { delete_impl(p); }
void operator delete(void *p, size_t) noexcept { delete_impl(p); }
void operator delete[](void *p, size_t) noexcept { delete_impl(p); }
void operator delete(void *p, const std::nothrow_t &) noexcept { delete_impl(p); }
void operator delete[](void *p, const std::nothrow_t &) noexcept { delete_impl(p); }
void operator delete(void *p, std::align_val_t) noexcept { delete_impl(p); }
void operator delete[](void *p, std::align_val_t) noexcept { delete_impl(p); }
void operator delete(void *p, size_t, std::align_val_t) noexcept { delete_impl(p); }
void operator delete[](void *p, size_t, std::align_val_t) noexcept { delete_impl(p); }
void operator delete(void *p, std::align_val_t, const std::nothrow_t &) noexcept { delete_impl(p); }
void operator delete[](void *p, std::align_val_t, const std::nothrow_t &) noexcept { delete_impl(p); }

// ---- locks, waits, threads, system calls ----------------------------------------------------

extern "C" {

// Forwarders for the functions of NGS_RT_FUNCS other than the allocation ones; while the
// pointers are being resolved (one thread, inside dlsym) a lock or unlock is a no-op.
#define NGS_RT_FORWARD(name, ret, params, args, fallback) \
  ret name params {                                       \
    ensure();                                             \
    if (real_##name == nullptr) return fallback;          \
    note(#name);                                          \
    return real_##name args;                              \
  }

NGS_RT_FORWARD(pthread_mutex_lock, int, (pthread_mutex_t * m), (m), 0)
NGS_RT_FORWARD(pthread_mutex_trylock, int, (pthread_mutex_t * m), (m), 0)
NGS_RT_FORWARD(pthread_mutex_timedlock, int, (pthread_mutex_t * m, const struct timespec *t), (m, t), 0)
NGS_RT_FORWARD(pthread_mutex_clocklock, int, (pthread_mutex_t * m, clockid_t c, const struct timespec *t),
               (m, c, t), 0)
NGS_RT_FORWARD(pthread_mutex_unlock, int, (pthread_mutex_t * m), (m), 0)
NGS_RT_FORWARD(pthread_rwlock_rdlock, int, (pthread_rwlock_t * l), (l), 0)
NGS_RT_FORWARD(pthread_rwlock_tryrdlock, int, (pthread_rwlock_t * l), (l), 0)
NGS_RT_FORWARD(pthread_rwlock_timedrdlock, int, (pthread_rwlock_t * l, const struct timespec *t), (l, t), 0)
NGS_RT_FORWARD(pthread_rwlock_wrlock, int, (pthread_rwlock_t * l), (l), 0)
NGS_RT_FORWARD(pthread_rwlock_trywrlock, int, (pthread_rwlock_t * l), (l), 0)
NGS_RT_FORWARD(pthread_rwlock_timedwrlock, int, (pthread_rwlock_t * l, const struct timespec *t), (l, t), 0)
NGS_RT_FORWARD(pthread_rwlock_unlock, int, (pthread_rwlock_t * l), (l), 0)
NGS_RT_FORWARD(pthread_spin_lock, int, (pthread_spinlock_t * l), (l), 0)
NGS_RT_FORWARD(pthread_spin_trylock, int, (pthread_spinlock_t * l), (l), 0)
NGS_RT_FORWARD(pthread_spin_unlock, int, (pthread_spinlock_t * l), (l), 0)
NGS_RT_FORWARD(pthread_create, int,
               (pthread_t * t, const pthread_attr_t *a, void *(*f)(void *), void *u), (t, a, f, u), 11)
NGS_RT_FORWARD(pthread_join, int, (pthread_t t, void **r), (t, r), 3)
NGS_RT_FORWARD(sem_wait, int, (sem_t * s), (s), 0)
NGS_RT_FORWARD(sem_trywait, int, (sem_t * s), (s), 0)
NGS_RT_FORWARD(sem_timedwait, int, (sem_t * s, const struct timespec *t), (s, t), 0)
NGS_RT_FORWARD(sem_post, int, (sem_t * s), (s), 0)
NGS_RT_FORWARD(write, ssize_t, (int fd, const void *b, size_t n), (fd, b, n), -1)
NGS_RT_FORWARD(writev, ssize_t, (int fd, const struct iovec *v, int n), (fd, v, n), -1)
NGS_RT_FORWARD(read, ssize_t, (int fd, void *b, size_t n), (fd, b, n), -1)
NGS_RT_FORWARD(close, int, (int fd), (fd), -1)
NGS_RT_FORWARD(nanosleep, int, (const struct timespec *a, struct timespec *b), (a, b), -1)
NGS_RT_FORWARD(clock_nanosleep, int, (clockid_t c, int f, const struct timespec *a, struct timespec *b),
               (c, f, a, b), -1)
NGS_RT_FORWARD(usleep, int, (useconds_t u), (u), -1)
NGS_RT_FORWARD(sleep, unsigned, (unsigned s), (s), s)
NGS_RT_FORWARD(sched_yield, int, (void), (), 0)
NGS_RT_FORWARD(poll, int, (struct pollfd * f, nfds_t n, int t), (f, n, t), -1)
NGS_RT_FORWARD(select, int, (int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *t), (n, r, w, e, t), -1)
NGS_RT_FORWARD(epoll_wait, int, (int fd, struct epoll_event *e, int n, int t), (fd, e, n, t), -1)
NGS_RT_FORWARD(mmap, void *, (void *a, size_t n, int p, int f, int fd, off_t o), (a, n, p, f, fd, o),
               MAP_FAILED)
NGS_RT_FORWARD(munmap, int, (void *a, size_t n), (a, n), -1)
NGS_RT_FORWARD(mprotect, int, (void *a, size_t n, int p), (a, n, p), -1)
NGS_RT_FORWARD(madvise, int, (void *a, size_t n, int p), (a, n, p), -1)
NGS_RT_FORWARD(fwrite, size_t, (const void *b, size_t s, size_t n, FILE *f), (b, s, n, f), 0)
NGS_RT_FORWARD(fputs, int, (const char *s, FILE *f), (s, f), EOF)
NGS_RT_FORWARD(puts, int, (const char *s), (s), EOF)
NGS_RT_FORWARD(fflush, int, (FILE * f), (f), EOF)
NGS_RT_FORWARD(vfprintf, int, (FILE * f, const char *fmt, va_list ap), (f, fmt, ap), -1)
NGS_RT_FORWARD(__vfprintf_chk, int, (FILE * f, int flag, const char *fmt, va_list ap), (f, flag, fmt, ap), -1)
NGS_RT_FORWARD(fopen, FILE *, (const char *p, const char *m), (p, m), nullptr)
#undef NGS_RT_FORWARD

int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m) {
  ensure();
  note("pthread_cond_wait");
  return real_cond_wait(c, m);
}
int pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *t) {
  ensure();
  note("pthread_cond_timedwait");
  return real_cond_timedwait(c, m, t);
}
int pthread_cond_clockwait(pthread_cond_t *c, pthread_mutex_t *m, clockid_t k, const struct timespec *t) {
  ensure();
  note("pthread_cond_clockwait");
  return real_cond_clockwait(c, m, k, t);
}
int pthread_cond_signal(pthread_cond_t *c) {
  ensure();
  note("pthread_cond_signal");
  return real_cond_signal(c);
}
int pthread_cond_broadcast(pthread_cond_t *c) {
  ensure();
  note("pthread_cond_broadcast");
  return real_cond_broadcast(c);
}

int printf(const char *fmt, ...) {
  ensure();
  note("printf");
  va_list ap;
  va_start(ap, fmt);
  const int r = real_vfprintf(stdout, fmt, ap);
  va_end(ap);
  return r;
}
int fprintf(FILE *f, const char *fmt, ...) {
  ensure();
  note("fprintf");
  va_list ap;
  va_start(ap, fmt);
  const int r = real_vfprintf(f, fmt, ap);
  va_end(ap);
  return r;
}
int __fprintf_chk(FILE *f, int flag, const char *fmt, ...) {
  ensure();
  note("__fprintf_chk");
  va_list ap;
  va_start(ap, fmt);
  const int r = real___vfprintf_chk(f, flag, fmt, ap);
  va_end(ap);
  return r;
}
int __printf_chk(int flag, const char *fmt, ...) {
  ensure();
  note("__printf_chk");
  va_list ap;
  va_start(ap, fmt);
  const int r = real___vfprintf_chk(stdout, flag, fmt, ap);
  va_end(ap);
  return r;
}

// syscall(2) takes up to six arguments after the number (futex, gettid, ...).
long syscall(long number, ...) {
  ensure();
  note("syscall");
  va_list ap;
  va_start(ap, number);
  long a[6];
  for (long &x : a) x = va_arg(ap, long);
  va_end(ap);
  return real_syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

int ioctl(int fd, unsigned long request, ...) {
  ensure();
  note("ioctl");
  va_list ap;
  va_start(ap, request);
  void *arg = va_arg(ap, void *);
  va_end(ap);
  return real_ioctl(fd, request, arg);
}

int open(const char *path, int flags, ...) {
  ensure();
  note("open");
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = static_cast<mode_t>(va_arg(ap, int));
    va_end(ap);
  }
  return real_open(path, flags, static_cast<int>(mode));
}

int openat(int dir, const char *path, int flags, ...) {
  ensure();
  note("openat");
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = static_cast<mode_t>(va_arg(ap, int));
    va_end(ap);
  }
  return real_openat(dir, path, flags, static_cast<int>(mode));
}

}  // extern "C"

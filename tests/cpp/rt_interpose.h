// Real-time-safety interposer (tests/cpp/rt_interpose.cpp), linked into a test program:
// it defines the allocation functions (malloc family, every operator new/delete), the
// pthread mutex / condition variable / rwlock / spinlock functions, the semaphores and the
// system-call-like functions a library can reach through the PLT (write, read, nanosleep,
// usleep, sched_yield, syscall (futex), poll, mmap, stdio output, ...), and forwards each
// to the real one (dlsym(RTLD_NEXT)). A call made while the calling thread is inside a
// guarded section counts as a violation, with the function's name recorded.
//
//   ngs::rt::reset();
//   { ngs::rt::Section s; ngs_synth_process(...); }     // only this thread is watched
//   EXPECT_EQ(ngs::rt::violations(), 0) << ngs::rt::report();
//
// Only calls that cross a shared-library boundary (or are made in the test program
// itself) are seen: glibc's internal calls (e.g. the futex inside pthread_mutex_lock) are
// not, which is why the public entry points are interposed. Not usable with ASan/TSan,
// which interpose the same functions.
#pragma once

#include <string>

namespace ngs::rt {

// Marks the calling thread as inside (or outside) the audio section. Nestable.
void enter();
void leave();
bool inside();

struct Section {
  Section() { enter(); }
  ~Section() { leave(); }
  Section(const Section &) = delete;
  Section &operator=(const Section &) = delete;
};

// Violations since the last reset (any thread), and a summary "name xN, ..." of the
// functions that were called (the first 64 distinct names).
long violations();
std::string report();
void reset();

// Whether the interposer is linked and its forwarding pointers resolved (false would make
// every test above vacuous).
bool active();

}  // namespace ngs::rt

// The C API's error reporting, shared by every file of C entry points (api.cpp,
// synth_api.cpp): the thread-local message that ngs_last_error() returns (fixed size,
// never allocates), the exception guard of each entry point, and the check of an enum
// field that a C caller may have filled with any int.
#pragma once

#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "common/error.h"
#include "ngs/ngs.h"

namespace ngs {

void api_set_error(const char *message);

// Runs f at the C boundary: NGS_STATUS_OK, or the status of what it threw with the
// message set; nothing escapes (no exception crosses into C). Allocates nothing itself.
template <class F>
ngs_status api_guard(F &&f) noexcept {
  try {
    f();
    return NGS_STATUS_OK;
  } catch (const Error &e) {
    api_set_error(e.what());
    const int s = e.status();
    return s <= NGS_STATUS_OK || s > NGS_STATUS_INTERNAL_ERROR ? NGS_STATUS_INTERNAL_ERROR
                                                              : static_cast<ngs_status>(s);
  } catch (const std::bad_alloc &) {
    api_set_error("out of memory");
    return NGS_STATUS_OUT_OF_MEMORY;
  } catch (const std::exception &e) {
    char msg[512];
    std::snprintf(msg, sizeof msg, "internal error: %s", e.what());
    api_set_error(msg);
    return NGS_STATUS_INTERNAL_ERROR;
  } catch (...) {
    api_set_error("internal error: unknown exception");
    return NGS_STATUS_INTERNAL_ERROR;
  }
}

// An ngs_precision field as a C caller stored it: its bits are read as an int (loading an
// out-of-range value as the enum is undefined behaviour in C++). Throws kInvalidArgument
// naming `field` unless it is NGS_PRECISION_FP32 or NGS_PRECISION_FAST; true for FAST.
inline bool api_precision_is_fast(const ngs_precision &p, const char *field) {
  int v = 0;
  static_assert(sizeof p == sizeof v, "ngs_precision is an int");
  std::memcpy(&v, &p, sizeof v);
  if (v != NGS_PRECISION_FP32 && v != NGS_PRECISION_FAST)
    throw Error(kInvalidArgument, std::string(field) + " = " + std::to_string(v) +
                                      " must be NGS_PRECISION_FP32 (0) or NGS_PRECISION_FAST (1)");
  return v == NGS_PRECISION_FAST;
}

}  // namespace ngs

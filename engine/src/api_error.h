// The C API's error reporting, shared by every file of C entry points (api.cpp,
// synth_api.cpp): the thread-local message that ngs_last_error() returns (fixed size,
// never allocates) and the exception guard of each entry point.
#pragma once

#include <cstdio>
#include <exception>
#include <new>

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

}  // namespace ngs

// The C API's error reporting, shared by the entry points outside api.cpp (synth_api.cpp):
// writes the thread-local message that ngs_last_error() returns (fixed size, never
// allocates).
#pragma once

namespace ngs {

void api_set_error(const char *message);

}  // namespace ngs

// Error type of the compute layer: thrown by kernels and backends (and by the engine
// above them), caught at the C boundary (engine/src/api.cpp), which turns it into the
// ngs_status of the same value plus the thread-local message. kernels/ does not see the
// public header, so the kinds are listed here; api.cpp checks that every value equals the
// ngs_status of the same name.
#pragma once

#include <stdexcept>
#include <string>

namespace ngs {

enum ErrorKind : int {
  kInvalidArgument = 1,  // NGS_STATUS_INVALID_ARGUMENT
  kIoError = 2,          // NGS_STATUS_IO_ERROR
  kBadModel = 3,         // NGS_STATUS_BAD_MODEL
  kUnsupported = 4,      // NGS_STATUS_UNSUPPORTED
  kCapacity = 5,         // NGS_STATUS_CAPACITY
  kOutOfMemory = 6,      // NGS_STATUS_OUT_OF_MEMORY
  kBackendError = 7,     // NGS_STATUS_BACKEND_ERROR
  kInternalError = 8,    // NGS_STATUS_INTERNAL_ERROR
};

class Error : public std::runtime_error {
 public:
  // status: an ErrorKind, or (in the engine) the ngs_status of the same value.
  Error(int status, const std::string &message)
      : std::runtime_error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

}  // namespace ngs

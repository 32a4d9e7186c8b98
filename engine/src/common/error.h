// Internal error type: thrown inside the engine, caught at the C boundary (api.cpp) and
// turned into an ngs_status plus the thread-local message.
#pragma once

#include <stdexcept>
#include <string>

#include "ngs/ngs.h"

namespace ngs {

class Error : public std::runtime_error {
 public:
  Error(ngs_status status, const std::string &message)
      : std::runtime_error(message), status_(status) {}
  ngs_status status() const { return status_; }

 private:
  ngs_status status_;
};

}  // namespace ngs

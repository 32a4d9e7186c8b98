// Strict parsing of the command line's numbers and of untrusted JSON.
//
// Numbers: the whole argument must be a number of the option's type and range: no sign on
// unsigned values ("-1" is not wrapped to 2^64 - 1), no clamping, no trailing text, no
// NaN or Inf, no "1e8" for a count. A bad value is one clear error naming the option:
//   ngs: error: --seed: '-1' is not an integer in [0, 18446744073709551615] (see ngs --help)
//
// JSON (pattern files, model metadata): nesting deeper than kMaxJsonDepth is refused
// before parsing (printing, copying or comparing a deep value recurses), and messages
// quote values only in brief.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace ngs_cli {

// Registers an option whose value is parsed strictly into `field` (its current value is
// the default shown by --help). Throws CLI::ValidationError from the parser on bad input.
CLI::Option *add_u64(CLI::App *app, const std::string &names, uint64_t &field,
                     const std::string &help);
CLI::Option *add_int(CLI::App *app, const std::string &names, int &field, int lo, int hi,
                     const std::string &help);
// --bits: 16, 24 or 32.
CLI::Option *add_bits(CLI::App *app, int &field, const std::string &help);
// Finite reals in [lo, hi] (or (lo, hi] with lo_open).
CLI::Option *add_real(CLI::App *app, const std::string &names, double &field, double lo,
                      double hi, const std::string &help, bool lo_open = false);
CLI::Option *add_real(CLI::App *app, const std::string &names, float &field, double lo,
                      double hi, const std::string &help, bool lo_open = false);

// Parses the command line: 0 when the program should run on; otherwise the exit status to
// return (--help / --version printed: 0; a parse error printed on one line as
// "<prog>: error: ... (see <prog> --help)": 2).
int parse_command_line(CLI::App &app, int argc, char **argv, const char *prog, bool *done);

// The parsers behind them; throw std::invalid_argument with the message.
uint64_t parse_u64(const std::string &text);
long long parse_int(const std::string &text, long long lo, long long hi);
double parse_real(const std::string &text, double lo, double hi, bool lo_open);

constexpr size_t kMaxJsonDepth = 64;
// Deepest [ ] / { } nesting of JSON text (brackets in strings ignored).
size_t json_nesting_depth(const std::string &text);
// Parses untrusted JSON text: is_discarded() on a syntax error or a nesting deeper than
// kMaxJsonDepth (*too_deep says which).
nlohmann::json parse_json(const std::string &text, bool *too_deep = nullptr);
// A value for a message: arrays and objects by size, scalars cut to 40 characters.
std::string json_brief(const nlohmann::json &v);
// Untrusted text for a message, cut to max_chars.
std::string truncated(const std::string &s, size_t max_chars = 60);

}  // namespace ngs_cli

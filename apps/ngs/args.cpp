#include "args.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace ngs_cli {

namespace {

std::string num(double v) {
  std::ostringstream s;
  s.precision(17);
  s << v;
  return s.str();
}

template <class Parse>
CLI::Option *strict(CLI::App *app, const std::string &names, Parse parse, const std::string &help,
                    const std::string &def, const std::string &type) {
  auto *opt = app->add_option_function<std::string>(
      names,
      [names, parse](const std::string &text) {
        try {
          parse(text);
        } catch (const std::invalid_argument &e) {
          // CLI11 puts the option's name in front of the message.
          throw CLI::ValidationError(names.substr(0, names.find(',')), e.what());
        }
      },
      help);
  opt->default_str(def)->type_name(type);
  return opt;
}

}  // namespace

uint64_t parse_u64(const std::string &text) {
  const std::string want = "is not an integer in [0, 18446744073709551615]";
  if (text.empty() || text.size() > 20) throw std::invalid_argument("'" + truncated(text) + "' " + want);
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') throw std::invalid_argument("'" + truncated(text) + "' " + want);
    const uint64_t d = uint64_t(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10)
      throw std::invalid_argument("'" + truncated(text) + "' " + want);
    v = v * 10 + d;
  }
  return v;
}

long long parse_int(const std::string &text, long long lo, long long hi) {
  const std::string want = "is not an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  size_t i = (!text.empty() && (text[0] == '-' || text[0] == '+')) ? 1 : 0;
  if (i == text.size() || text.size() > 19) throw std::invalid_argument("'" + truncated(text) + "' " + want);
  for (size_t k = i; k < text.size(); ++k)
    if (text[k] < '0' || text[k] > '9') throw std::invalid_argument("'" + truncated(text) + "' " + want);
  errno = 0;
  const long long v = std::strtoll(text.c_str(), nullptr, 10);
  if (errno != 0 || v < lo || v > hi) throw std::invalid_argument("'" + truncated(text) + "' " + want);
  return v;
}

double parse_real(const std::string &text, double lo, double hi, bool lo_open) {
  const std::string want = std::string("is not a number in ") + (lo_open ? "(" : "[") + num(lo) +
                           ", " + num(hi) + "]";
  // Digits, sign, point and exponent only: strtod would also take "nan", "inf", hex.
  if (text.empty() || text.size() > 64) throw std::invalid_argument("'" + truncated(text) + "' " + want);
  bool digit = false;
  for (char c : text) {
    if (c >= '0' && c <= '9') digit = true;
    else if (c != '-' && c != '+' && c != '.' && c != 'e' && c != 'E')
      throw std::invalid_argument("'" + truncated(text) + "' " + want);
  }
  char *end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (!digit || end != text.c_str() + text.size() || errno == ERANGE || !std::isfinite(v) ||
      v < lo || v > hi || (lo_open && v == lo))
    throw std::invalid_argument("'" + truncated(text) + "' " + want);
  return v;
}

CLI::Option *add_u64(CLI::App *app, const std::string &names, uint64_t &field,
                     const std::string &help) {
  return strict(app, names, [&field](const std::string &t) { field = parse_u64(t); }, help,
                std::to_string(field), "UINT64");
}

CLI::Option *add_int(CLI::App *app, const std::string &names, int &field, int lo, int hi,
                     const std::string &help) {
  return strict(app, names, [&field, lo, hi](const std::string &t) { field = int(parse_int(t, lo, hi)); },
                help, std::to_string(field), "INT");
}

CLI::Option *add_bits(CLI::App *app, int &field, const std::string &help) {
  return strict(app, "--bits",
                [&field](const std::string &t) {
                  const long long v = parse_int(t, 16, 32);
                  if (v != 16 && v != 24 && v != 32)
                    throw std::invalid_argument("'" + t + "' is not 16, 24 or 32");
                  field = int(v);
                },
                help, std::to_string(field), "16|24|32");
}

CLI::Option *add_real(CLI::App *app, const std::string &names, double &field, double lo,
                      double hi, const std::string &help, bool lo_open) {
  return strict(app, names,
                [&field, lo, hi, lo_open](const std::string &t) { field = parse_real(t, lo, hi, lo_open); },
                help, num(field), "FLOAT");
}

CLI::Option *add_real(CLI::App *app, const std::string &names, float &field, double lo,
                      double hi, const std::string &help, bool lo_open) {
  return strict(app, names,
                [&field, lo, hi, lo_open](const std::string &t) {
                  field = float(parse_real(t, lo, hi, lo_open));
                },
                help, num(field), "FLOAT");
}

size_t json_nesting_depth(const std::string &text) {
  size_t depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > deepest) deepest = depth;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

nlohmann::json parse_json(const std::string &text, bool *too_deep) {
  const bool deep = json_nesting_depth(text) > kMaxJsonDepth;
  if (too_deep != nullptr) *too_deep = deep;
  if (deep) return nlohmann::json(nlohmann::json::value_t::discarded);
  return nlohmann::json::parse(text, nullptr, false);
}

std::string truncated(const std::string &s, size_t max_chars) {
  if (s.size() <= max_chars) return s;
  return s.substr(0, max_chars > 3 ? max_chars - 3 : 0) + "...";
}

std::string json_brief(const nlohmann::json &v) {
  if (v.is_array()) return "an array of " + std::to_string(v.size()) + " elements";
  if (v.is_object()) return "an object of " + std::to_string(v.size()) + " keys";
  return truncated(v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), 40);
}

int parse_command_line(CLI::App &app, int argc, char **argv, const char *prog, bool *done) {
  *done = true;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp &e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp &e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion &e) {
    return app.exit(e);
  } catch (const CLI::ParseError &e) {
    std::string msg = e.what();
    for (char &c : msg)
      if (c == '\n') c = ' ';
    std::fprintf(stderr, "%s: error: %s (see %s --help)\n", prog, msg.c_str(), prog);
    return 2;
  }
  *done = false;
  return 0;
}

}  // namespace ngs_cli

// event_log.cpp: reading a log file into lines and deriving a topic per line.
#include "event_log.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <system_error>

namespace replay {

namespace {

constexpr std::size_t kFieldsUsed = 5;  // date, time, action and two arguments

constexpr bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

constexpr bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Splits off up to kFieldsUsed blank-separated fields; returns how many.
std::size_t split_fields(std::string_view line, std::array<std::string_view, kFieldsUsed>& f) {
  std::size_t n = 0;
  std::size_t i = 0;
  while (n < f.size()) {
    while (i < line.size() && is_blank(line[i])) {
      ++i;
    }
    if (i == line.size()) {
      break;
    }
    const std::size_t start = i;
    while (i < line.size() && !is_blank(line[i])) {
      ++i;
    }
    f[n++] = line.substr(start, i - start);
  }
  return n;
}

// True when `s` has digits everywhere `shape` has 'd' and the same byte elsewhere.
bool has_shape(std::string_view s, std::string_view shape) {
  if (s.size() != shape.size()) {
    return false;
  }
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (shape[i] == 'd' ? !is_digit(s[i]) : s[i] != shape[i]) {
      return false;
    }
  }
  return true;
}

bool is_package_action(std::string_view a) {
  return a == "install" || a == "upgrade" || a == "remove" || a == "purge" || a == "configure" ||
         a == "trigproc";
}

// Appends '/' and `field` as one level: cut to kMaxLevelBytes, and every byte
// that could break the name or its level count replaced. Bytes of multi-byte
// UTF-8 characters are replaced one by one; the topic stays plain ASCII.
void append_level(std::string& out, std::string_view field) {
  out.push_back('/');
  const std::size_t n = field.size() < kMaxLevelBytes ? field.size() : kMaxLevelBytes;
  for (std::size_t i = 0; i < n; ++i) {
    const char c = field[i];
    const bool printable = c > ' ' && c < '\x7f';
    out.push_back(printable && c != '+' && c != '#' && c != '/' ? c : '_');
  }
}

}  // namespace

LogFile read_log(const std::string& path, std::size_t max_payload) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::runtime_error("cannot open " + path + ": " + std::generic_category().message(errno));
  }
  LogFile log;
  log.text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (in.bad()) {
    throw std::runtime_error("cannot read " + path);
  }
  const std::string_view text = log.text;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    const std::size_t len = end - start < max_payload ? end - start : max_payload;
    log.lines.push_back(text.substr(start, len));
    start = end + 1;
  }
  return log;
}

void derive_topic(std::string_view line, std::string& out) {
  out.clear();
  out.append("dpkg");
  std::array<std::string_view, kFieldsUsed> f;
  const std::size_t n = split_fields(line, f);
  if (n >= 4 && has_shape(f[0], "dddd-dd-dd") && has_shape(f[1], "dd:dd:dd")) {
    const std::string_view action = f[2];
    if (action == "status" && n >= 5) {
      out.append("/status");
      append_level(out, f[3]);
      append_level(out, f[4]);
      return;
    }
    if (action == "startup" || is_package_action(action)) {
      append_level(out, action);
      append_level(out, f[3]);
      return;
    }
  }
  out.append("/other");
}

}  // namespace replay

// text.cpp: Table, OutputBuffer, UTF-8 checking and base64.
#include "text.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ostream>
#include <system_error>

#include "cli.hpp"

namespace ipcbus::cli {

// --- Table -------------------------------------------------------------------

Table::Table(std::vector<std::string> header) : right_(header.size(), false) {
  rows_.push_back(std::move(header));
}

void Table::right_align(const std::vector<std::size_t>& columns) {
  for (std::size_t c : columns) {
    if (c < right_.size()) {
      right_[c] = true;
    }
  }
}

namespace {

bool is_control(unsigned char u) {
  return u < 0x20 || u == 0x7F;
}

// append_hex shows byte `u` as \xNN.
void append_hex(std::string& out, unsigned char u) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += "\\x";
  out += kHex[u >> 4];
  out += kHex[u & 0xF];
}

}  // namespace

std::string quote_arg(std::string_view text, std::size_t max) {
  std::string out = "'";
  std::size_t i = 0;
  while (i < text.size() && i < max) {
    const auto u = static_cast<unsigned char>(text[i]);
    // The length of the UTF-8 sequence starting here, 0 if it is not one.
    std::size_t n = u < 0x80           ? 1
                    : (u >> 5) == 0x6  ? 2
                    : (u >> 4) == 0xE  ? 3
                    : (u >> 3) == 0x1E ? 4
                                       : 0;
    if (n > 1 && (i + n > text.size() || !is_valid_utf8(text.substr(i, n)))) {
      n = 0;
    }
    if (n == 0 || is_control(u)) {
      append_hex(out, u);
      ++i;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  out += "'";
  if (i < text.size()) {
    out += "... (" + std::to_string(text.size()) + " bytes)";
  }
  return out;
}

void Table::add_row(std::vector<std::string> cells) {
  cells.resize(right_.size());
  for (std::string& cell : cells) {
    // A control character (a filter may hold a newline) would break the
    // columns, or the terminal: show it escaped.
    if (std::any_of(cell.begin(), cell.end(),
                    [](char c) { return is_control(static_cast<unsigned char>(c)); })) {
      std::string shown;
      for (const char c : cell) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '\n') {
          shown += "\\n";
        } else if (c == '\t') {
          shown += "\\t";
        } else if (is_control(u)) {
          append_hex(shown, u);
        } else {
          shown += c;
        }
      }
      cell = std::move(shown);
    }
  }
  rows_.push_back(std::move(cells));
}

void Table::print(std::ostream& out) const {
  std::vector<std::size_t> width(right_.size(), 0);
  for (const auto& row : rows_) {
    for (std::size_t c = 0; c < row.size(); ++c) {
      width[c] = std::max(width[c], row[c].size());
    }
  }
  for (const auto& row : rows_) {
    std::string line;
    for (std::size_t c = 0; c < row.size(); ++c) {
      const bool last = c + 1 == row.size();
      const std::string pad(width[c] - row[c].size(), ' ');
      if (right_[c]) {
        line += pad + row[c];
      } else {
        line += row[c];
        if (!last) {
          line += pad;
        }
      }
      if (!last) {
        line += "  ";
      }
    }
    line.erase(line.find_last_not_of(' ') + 1);
    out << line << '\n';
  }
}

// --- OutputBuffer ------------------------------------------------------------

OutputBuffer::OutputBuffer(int fd, std::size_t capacity) : fd_(fd), capacity_(capacity) {
  buffer_.reserve(capacity_);
}

OutputBuffer::~OutputBuffer() {
  try {
    flush();
  } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor must not throw
  }
}

void OutputBuffer::append(std::string_view bytes) {
  if (buffer_.size() + bytes.size() > capacity_) {
    flush();
  }
  if (bytes.size() >= capacity_) {
    write_all(bytes);  // too big to buffer: straight through
    return;
  }
  buffer_.append(bytes);
}

void OutputBuffer::append(char c) {
  append(std::string_view(&c, 1));
}

void OutputBuffer::flush() {
  std::string pending;
  pending.swap(buffer_);
  write_all(pending);
  pending.clear();
  buffer_.swap(pending);  // keeps the reserved capacity
}

void OutputBuffer::write_all(std::string_view bytes) {
  std::size_t done = 0;
  while (done < bytes.size() && !closed_) {
    const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n >= 0) {
      done += static_cast<std::size_t>(n);
    } else if (errno == EPIPE) {
      closed_ = true;
    } else if (errno != EINTR) {
      throw CliError(kExitRuntime,
                     "cannot write output: " + std::generic_category().message(errno));
    }
  }
}

// --- UTF-8 and base64 -------------------------------------------------------

bool is_valid_utf8(std::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const auto* end = p + bytes.size();
  while (p < end) {
    const unsigned char b = *p;
    if (b < 0x80) {
      ++p;
      continue;
    }
    // Lead byte: sequence length and the range the second byte must be in
    // (the narrow ranges exclude overlong forms, surrogates and > U+10FFFF).
    std::size_t len = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      lo = b == 0xE0 ? 0xA0 : 0x80;
      hi = b == 0xED ? 0x9F : 0xBF;
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      lo = b == 0xF0 ? 0x90 : 0x80;
      hi = b == 0xF4 ? 0x8F : 0xBF;
    } else {
      return false;
    }
    if (static_cast<std::size_t>(end - p) < len || p[1] < lo || p[1] > hi) {
      return false;
    }
    for (std::size_t i = 2; i < len; ++i) {
      if ((p[i] & 0xC0) != 0x80) {
        return false;
      }
    }
    p += len;
  }
  return true;
}

std::string base64_encode(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t v = (std::uint32_t{p[i]} << 16) | (std::uint32_t{p[i + 1]} << 8) | p[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    std::uint32_t v = std::uint32_t{p[i]} << 16;
    if (rest == 2) {
      v |= std::uint32_t{p[i + 1]} << 8;
    }
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string join(const std::vector<std::string>& parts, std::string_view separator) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i != 0) {
      out += separator;
    }
    out += parts[i];
  }
  return out;
}

}  // namespace ipcbus::cli

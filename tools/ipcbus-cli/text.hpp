// text.hpp: output helpers of the `ipcbus` tool: a column-aligning table, a
// buffered writer on a file descriptor, UTF-8 checking and base64.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

namespace ipcbus::cli {

// Table prints rows in columns two spaces apart, the header first. Columns
// named in right_align() are right-aligned (numbers); the last column is not
// padded, so lines carry no trailing blanks.
class Table {
 public:
  explicit Table(std::vector<std::string> header);
  void right_align(const std::vector<std::size_t>& columns);
  void add_row(std::vector<std::string> cells);
  void print(std::ostream& out) const;

 private:
  std::vector<std::vector<std::string>> rows_;  // rows_[0] is the header
  std::vector<bool> right_;
};

// OutputBuffer collects bytes for one file descriptor and writes them with
// write(2) when full or on flush(). A failed write throws CliError, except a
// closed pipe (EPIPE), which sets closed() so that the caller can stop.
class OutputBuffer {
 public:
  explicit OutputBuffer(int fd, std::size_t capacity = std::size_t{64} * 1024);
  ~OutputBuffer();  // flushes, ignoring errors
  OutputBuffer(const OutputBuffer&) = delete;
  OutputBuffer& operator=(const OutputBuffer&) = delete;

  void append(std::string_view bytes);
  void append(char c);
  void flush();
  bool closed() const { return closed_; }
  bool empty() const { return buffer_.empty(); }

 private:
  void write_all(std::string_view bytes);

  int fd_;
  std::size_t capacity_;
  std::string buffer_;
  bool closed_ = false;
};

// quote_arg shows a user's topic or filter in a diagnostic: in quotes, control
// characters and bytes that are not UTF-8 as \xNN, and cut after `max`
// bytes with the full length said, so that one bad argument is one line.
std::string quote_arg(std::string_view text, std::size_t max = 120);

// is_valid_utf8 tells whether `bytes` is well-formed UTF-8 (no overlong forms,
// no surrogates, nothing above U+10FFFF). NUL is valid.
bool is_valid_utf8(std::string_view bytes);

// base64_encode encodes with the standard alphabet and '=' padding (RFC 4648).
std::string base64_encode(std::string_view bytes);

// join returns the parts separated by `separator`.
std::string join(const std::vector<std::string>& parts, std::string_view separator);

}  // namespace ipcbus::cli

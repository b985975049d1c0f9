// event_format.cpp: parsing and writing `sub -F` format strings.
#include "event_format.hpp"

#include <string_view>

#include "cli.hpp"
#include "text.hpp"

namespace ipcbus::cli {

namespace {

constexpr std::string_view kFields = "tplsTIx";

char escaped(char ch) {
  switch (ch) {
    case 'n':
      return '\n';
    case 't':
      return '\t';
    case 'r':
      return '\r';
    case '\\':
      return '\\';
    default:
      return 0;
  }
}

}  // namespace

EventFormat::EventFormat(const std::string& format) {
  std::string literal;
  auto flush_literal = [&] {
    if (!literal.empty()) {
      pieces_.push_back({0, literal});
      literal.clear();
    }
  };
  for (std::size_t i = 0; i < format.size(); ++i) {
    const char ch = format[i];
    if (ch != '%' && ch != '\\') {
      literal += ch;
      continue;
    }
    if (i + 1 == format.size()) {
      throw CliError(kExitUsage, std::string("format ends in a lone '") + ch + "'");
    }
    const char next = format[++i];
    if (ch == '\\') {
      const char e = escaped(next);
      if (e == 0) {
        throw CliError(kExitUsage, std::string("unknown escape '\\") + next +
                                       "' in the format (known: \\n \\t \\r \\\\)");
      }
      literal += e;
    } else if (next == '%') {
      literal += '%';
    } else if (kFields.find(next) != std::string_view::npos) {
      flush_literal();
      pieces_.push_back({next, {}});
    } else {
      throw CliError(kExitUsage, std::string("unknown field '%") + next +
                                     "' in the format (known: %t %p %l %s %T %I %x %%)");
    }
  }
  flush_literal();
}

void EventFormat::write(const Sample& sample, OutputBuffer& out) const {
  static constexpr char kHex[] = "0123456789abcdef";
  for (const Piece& piece : pieces_) {
    switch (piece.field) {
      case 0:
        out.append(piece.text);
        break;
      case 't':
        out.append(sample.topic());
        break;
      case 'p':
        out.append(sample.payload_text());
        break;
      case 'l':
        out.append(std::to_string(sample.payload().size()));
        break;
      case 's':
        out.append(std::to_string(sample.sequence()));
        break;
      case 'T':
        out.append(std::to_string(sample.timestamp_ns()));
        break;
      case 'I':
        out.append(std::to_string(sample.publisher_id()));
        break;
      case 'x':
        for (const std::byte b : sample.payload()) {
          const auto v = std::to_integer<unsigned>(b);
          out.append(kHex[v >> 4]);
          out.append(kHex[v & 15]);
        }
        break;
      default:
        break;  // the constructor admits only the fields above
    }
  }
}

}  // namespace ipcbus::cli

// event_format.hpp: `ipcbus sub -F FORMAT`, one line per event written from
// a format string, as mosquitto_sub -F does.
#pragma once

#include <string>
#include <vector>

#include "ipcbus/bus.hpp"

namespace ipcbus::cli {

class OutputBuffer;

// EventFormat is a parsed format string:
//   %t topic          %p payload            %l payload length in bytes
//   %s sequence       %T timestamp (ns, CLOCK_MONOTONIC at publish)
//   %I publisher id   %x payload as lowercase hex      %% a '%'
//   \n newline   \t tab   \r carriage return   \\ a backslash
// Any other % or \ sequence is a usage error (CliError, kExitUsage).
class EventFormat {
 public:
  explicit EventFormat(const std::string& format);
  void write(const Sample& sample, OutputBuffer& out) const;

 private:
  // A piece is literal text (field == 0) or one field letter.
  struct Piece {
    char field = 0;
    std::string text;
  };
  std::vector<Piece> pieces_;
};

}  // namespace ipcbus::cli

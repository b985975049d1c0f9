// output.hpp: the output formats of the inspecting subcommands (-o table,
// json, ndjson, csv, prometheus, with --json as the short form of -o json),
// records printed in any of them, and the units people read: times in ISO
// 8601, rates, sizes and latencies with their unit.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace ipcbus::cli {

using Json = nlohmann::ordered_json;

enum class Format { kTable, kJson, kNdjson, kCsv, kPrometheus };

// FormatOption holds what -o and --json said; add_format_option binds both
// to `command`, -o limited to `allowed` (the first is the default).
struct FormatOption {
  std::string name;
  bool json = false;
  Format format() const;
};
void add_format_option(CLI::App& command, FormatOption& option,
                       const std::vector<std::string>& allowed);

// A column of the human table: its heading and the record key it shows.
struct Column {
  std::string header;
  std::string key;
};

// print_records prints `rows` (a JSON array of flat-ish objects, one per
// record) as: a table of `columns` (numbers right-aligned); a JSON array; one
// object per line; or CSV with every key, flattened (see flatten()) and
// arrays of scalars joined by spaces. `example` is one
// record with every key, for the CSV header when `rows` is empty. kPrometheus
// is not handled here (see prometheus.hpp).
void print_records(std::ostream& out, Format format, const Json& rows,
                   const std::vector<Column>& columns, const Json& example);

// json_text serialises `value` like dump(indent), writing bytes that are not
// UTF-8 (only a corrupt segment has such filters or error texts) as U+FFFD
// instead of failing.
std::string json_text(const Json& value, int indent = -1);

// cell_text is how a table shows a JSON value: strings as they are, arrays of
// strings joined by spaces, booleans yes/no, null as "-".
std::string cell_text(const Json& value);

// csv_field quotes a field when RFC 4180 needs it (comma, quote, CR or LF).
std::string csv_field(const std::string& text);

// flatten turns nested objects into one level with "outer.inner" keys, and
// arrays that hold objects into "outer.0.inner", "outer.1.inner", ...
Json flatten(const Json& object);

// iso8601_utc writes nanoseconds since the epoch as 2026-01-31T12:34:56.789Z;
// 0 becomes "-".
std::string iso8601_utc(std::uint64_t realtime_ns);

// realtime_ns is CLOCK_REALTIME now, in nanoseconds.
std::uint64_t realtime_ns();

// Human units: "12.3k" (SI prefixes for counts and rates), "4.0 KiB"
// (binary prefixes for sizes), "850 ns" / "12.5 us" / "3.20 ms" / "1.50 s".
std::string si_number(double value);
std::string byte_size(double bytes);
std::string duration_ns(double ns);

}  // namespace ipcbus::cli

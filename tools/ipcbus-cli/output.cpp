// output.cpp: formats of records, CSV quoting, ISO 8601 times and human units.
#include "output.hpp"

#include <time.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ostream>

#include "text.hpp"

namespace ipcbus::cli {

Format FormatOption::format() const {
  if (json || name == "json") {
    return Format::kJson;
  }
  if (name == "ndjson") {
    return Format::kNdjson;
  }
  if (name == "csv") {
    return Format::kCsv;
  }
  if (name == "prometheus") {
    return Format::kPrometheus;
  }
  return Format::kTable;
}

void add_format_option(CLI::App& command, FormatOption& option,
                       const std::vector<std::string>& allowed) {
  option.name = allowed.front();
  CLI::Option* output =
      command.add_option("-o,--output", option.name, "Output format: " + join(allowed, ", "))
          ->type_name("FORMAT")
          ->check(CLI::IsMember(allowed))
          ->capture_default_str();
  command.add_flag("--json", option.json, "Short for -o json")->excludes(output);
}

namespace {

bool is_scalar_array(const Json& value) {
  if (!value.is_array()) {
    return false;
  }
  for (const Json& item : value) {
    if (item.is_structured()) {
      return false;
    }
  }
  return true;
}

void flatten_into(const Json& value, const std::string& prefix, Json& out) {
  const bool nested = value.is_object() || (value.is_array() && !is_scalar_array(value));
  if (!nested) {
    out[prefix] = value;
    return;
  }
  std::size_t position = 0;
  for (const auto& [key, item] : value.items()) {
    // items() of an array names them "0", "1", ...; keep the order explicit.
    const std::string part = value.is_array() ? std::to_string(position++) : key;
    std::string path = prefix;
    if (!path.empty()) {
      path += '.';
    }
    path += part;
    flatten_into(item, path, out);
  }
}

// Text of a value in a CSV field: like a table cell, but null is empty and
// booleans stay true/false, as spreadsheets and pandas read them.
std::string csv_text(const Json& value) {
  if (value.is_null()) {
    return "";
  }
  if (value.is_boolean()) {
    return value.get<bool>() ? "true" : "false";
  }
  return cell_text(value);
}

void print_csv(std::ostream& out, const Json& rows, const Json& example) {
  std::vector<std::string> keys;
  auto learn = [&](const Json& flat) {
    for (const auto& [key, value] : flat.items()) {
      if (std::find(keys.begin(), keys.end(), key) == keys.end()) {
        keys.push_back(key);
      }
    }
  };
  learn(flatten(example));
  std::vector<Json> flat_rows;
  flat_rows.reserve(rows.size());
  for (const Json& row : rows) {
    flat_rows.push_back(flatten(row));
    learn(flat_rows.back());
  }
  std::vector<std::string> fields;
  fields.reserve(keys.size());
  for (const std::string& key : keys) {
    fields.push_back(csv_field(key));
  }
  out << join(fields, ",") << "\r\n";  // RFC 4180 line ends
  for (const Json& row : flat_rows) {
    fields.clear();
    for (const std::string& key : keys) {
      fields.push_back(csv_field(row.contains(key) ? csv_text(row[key]) : ""));
    }
    out << join(fields, ",") << "\r\n";
  }
}

void print_table(std::ostream& out, const Json& rows, const std::vector<Column>& columns) {
  std::vector<std::string> header;
  header.reserve(columns.size());
  for (const Column& c : columns) {
    header.push_back(c.header);
  }
  Table table(header);
  std::vector<std::size_t> right;
  for (std::size_t c = 0; c < columns.size(); ++c) {
    for (const Json& row : rows) {
      const Json& value = row.contains(columns[c].key) ? row[columns[c].key] : Json();
      if (!value.is_null()) {
        if (value.is_number()) {
          right.push_back(c);
        }
        break;
      }
    }
  }
  table.right_align(right);
  for (const Json& row : rows) {
    std::vector<std::string> cells;
    cells.reserve(columns.size());
    for (const Column& c : columns) {
      cells.push_back(row.contains(c.key) ? cell_text(row[c.key]) : "-");
    }
    table.add_row(std::move(cells));
  }
  table.print(out);
}

}  // namespace

Json flatten(const Json& object) {
  Json out = Json::object();
  flatten_into(object, "", out);
  return out;
}

std::string cell_text(const Json& value) {
  if (value.is_null()) {
    return "-";
  }
  if (value.is_string()) {
    return value.get<std::string>();
  }
  if (value.is_boolean()) {
    return value.get<bool>() ? "yes" : "no";
  }
  if (is_scalar_array(value)) {
    std::vector<std::string> parts;
    for (const Json& item : value) {
      parts.push_back(item.is_string() ? item.get<std::string>() : json_text(item));
    }
    return join(parts, " ");
  }
  return json_text(value);
}

std::string json_text(const Json& value, int indent) {
  return value.dump(indent, ' ', false, Json::error_handler_t::replace);
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) {
    return text;
  }
  std::string quoted = "\"";
  for (char ch : text) {
    quoted += ch;
    if (ch == '"') {
      quoted += '"';
    }
  }
  return quoted + "\"";
}

void print_records(std::ostream& out, Format format, const Json& rows,
                   const std::vector<Column>& columns, const Json& example) {
  switch (format) {
    case Format::kJson:
      out << json_text(rows, 2) << '\n';
      return;
    case Format::kNdjson:
      for (const Json& row : rows) {
        out << json_text(row) << '\n';
      }
      return;
    case Format::kCsv:
      print_csv(out, rows, example);
      return;
    case Format::kTable:
    case Format::kPrometheus:  // callers handle it; a table is the safe fallback
      print_table(out, rows, columns);
      return;
  }
}

std::uint64_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

std::string iso8601_utc(std::uint64_t realtime_ns) {
  if (realtime_ns == 0) {
    return "-";
  }
  const auto seconds = static_cast<time_t>(realtime_ns / 1000000000ULL);
  const auto millis = static_cast<unsigned>(realtime_ns % 1000000000ULL / 1000000ULL);
  tm parts{};
  gmtime_r(&seconds, &parts);
  char text[80];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", parts.tm_year + 1900,
                parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec, millis);
  return text;
}

std::string si_number(double value) {
  static constexpr const char* kPrefixes[] = {"", "k", "M", "G", "T"};
  int p = 0;
  double v = value;
  while (std::fabs(v) >= 1000.0 && p < 4) {
    v /= 1000.0;
    ++p;
  }
  char text[32];
  if (p == 0) {
    std::snprintf(text, sizeof text, std::fabs(v) < 10 && v != std::round(v) ? "%.2f" : "%.0f", v);
  } else {
    std::snprintf(text, sizeof text, std::fabs(v) < 10 ? "%.2f%s" : "%.1f%s", v, kPrefixes[p]);
  }
  return text;
}

std::string byte_size(double bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  double v = bytes;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  char text[32];
  std::snprintf(text, sizeof text, u == 0 ? "%.0f %s" : "%.1f %s", v, kUnits[u]);
  return text;
}

std::string duration_ns(double ns) {
  char text[32];
  if (ns < 1e3) {
    std::snprintf(text, sizeof text, "%.0f ns", ns);
  } else if (ns < 1e6) {
    std::snprintf(text, sizeof text, "%.1f us", ns / 1e3);
  } else if (ns < 1e9) {
    std::snprintf(text, sizeof text, "%.2f ms", ns / 1e6);
  } else {
    std::snprintf(text, sizeof text, "%.2f s", ns / 1e9);
  }
  return text;
}

}  // namespace ipcbus::cli

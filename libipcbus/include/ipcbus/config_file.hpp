// ipcbus/config_file.hpp: bus configuration from a TOML file.
//
// The embedded defaults (Config{}) need no file; a file overrides any of
// them. Unknown keys and out-of-range values are errors that name the key,
// so a typo never passes silently. See etc/ipcbus.toml for every key.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ipcbus/config.hpp"
#include "ipcbus/result.hpp"

namespace ipcbus {

// What ipcbus-agent reads from the [agent] table; re-read on SIGHUP.
struct AgentSettings {
  std::string log_level = "info";   // trace, debug, info, warn, error, critical, off
  std::uint32_t interval_ms = 100;  // between looks at the process table
};

struct ConfigFile {
  Config bus;           // the [bus] table, over the embedded defaults
  AgentSettings agent;  // the [agent] table
};

// parse_config_text parses TOML text; `source` names it in messages.
// Errors: kInvalidArgument with "source:line:column: what".
Result<ConfigFile> parse_config_text(std::string_view text, std::string_view source);

// load_config_file reads and parses a file. Errors: kNotFound when missing,
// kInvalidArgument for bad content.
Result<ConfigFile> load_config_file(const std::string& path);

}  // namespace ipcbus

// config_file.cpp: TOML configuration (toml++, Debian's libtomlplusplus-dev).
#include "ipcbus/config_file.hpp"

#include <toml++/toml.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace ipcbus {

namespace {

Error bad(std::string_view source, const toml::source_region& where, const std::string& what) {
  std::ostringstream out;
  out << source << ':' << where.begin.line << ':' << where.begin.column << ": " << what;
  return Error{Errc::kInvalidArgument, out.str()};
}

// Reject keys of `table` outside `known`.
Result<void> only_keys(std::string_view source, const toml::table& table, std::string_view name,
                       const std::set<std::string_view>& known) {
  for (const auto& [key, node] : table) {
    if (known.count(key.str()) == 0) {
      return bad(source, node.source(),
                 "unknown key '" + std::string(key.str()) + "' in [" + std::string(name) + "]");
    }
  }
  return {};
}

// Read an unsigned 32-bit integer key if present.
Result<void> read_u32(std::string_view source, const toml::table& table, std::string_view key,
                      std::uint32_t* out) {
  const toml::node* node = table.get(key);
  if (node == nullptr) {
    return {};
  }
  const auto v = node->value<std::int64_t>();
  if (!v || *v < 0 || *v > 0xFFFFFFFFLL || !node->is_integer()) {
    return bad(source, node->source(),
               "'" + std::string(key) + "' must be a non-negative integer below 2^32");
  }
  *out = static_cast<std::uint32_t>(*v);
  return {};
}

Result<void> read_bus(std::string_view source, const toml::table& t, Config* c) {
  if (auto ok = only_keys(
          source, t, "bus",
          {"max_listeners", "ring_capacity", "trie_nodes", "subscriptions", "max_topic_bytes",
           "max_level_bytes", "max_processes", "max_publishers", "mode", "group", "pools"});
      !ok) {
    return ok;
  }
  for (auto [key, field] :
       {std::pair{"max_listeners", &c->max_listeners},
        std::pair{"ring_capacity", &c->ring_capacity}, std::pair{"trie_nodes", &c->trie_nodes},
        std::pair{"subscriptions", &c->subscriptions},
        std::pair{"max_topic_bytes", &c->max_topic_bytes},
        std::pair{"max_level_bytes", &c->max_level_bytes},
        std::pair{"max_processes", &c->max_processes},
        std::pair{"max_publishers", &c->max_publishers}}) {
    if (auto ok = read_u32(source, t, key, field); !ok) {
      return ok;
    }
  }
  if (const toml::node* mode = t.get("mode")) {
    // "0660" as a string (octal, as chmod reads it) or an integer such as 0o660.
    if (const auto s = mode->value<std::string>(); s && mode->is_string()) {
      std::size_t used = 0;
      unsigned long v = 0;
      try {
        v = std::stoul(*s, &used, 8);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != s->size() || s->empty()) {
        return bad(source, mode->source(), "'mode' must be octal digits such as \"0660\"");
      }
      c->mode = static_cast<std::uint32_t>(v);
    } else if (auto ok = read_u32(source, t, "mode", &c->mode); !ok) {
      return ok;
    }
  }
  if (const toml::node* group = t.get("group")) {
    if (!group->is_string()) {
      return bad(source, group->source(), "'group' must be a string (a group name)");
    }
    c->group = *group->value<std::string>();
  }
  if (const toml::node* pools = t.get("pools")) {
    const toml::array* arr = pools->as_array();
    if (arr == nullptr || arr->empty()) {
      return bad(source, pools->source(),
                 "'pools' must be a non-empty array of {payload_bytes, count} tables");
    }
    c->pools.clear();
    for (const toml::node& item : *arr) {
      const toml::table* p = item.as_table();
      if (p == nullptr) {
        return bad(source, item.source(), "each pool must be a table {payload_bytes, count}");
      }
      if (auto ok = only_keys(source, *p, "bus.pools", {"payload_bytes", "count"}); !ok) {
        return ok;
      }
      PoolClass pc{0, 0};
      if (auto ok = read_u32(source, *p, "payload_bytes", &pc.payload_bytes); !ok) {
        return ok;
      }
      if (auto ok = read_u32(source, *p, "count", &pc.count); !ok) {
        return ok;
      }
      c->pools.push_back(pc);
    }
  }
  return {};
}

Result<void> read_agent(std::string_view source, const toml::table& t, AgentSettings* a) {
  if (auto ok = only_keys(source, t, "agent", {"log_level", "interval_ms"}); !ok) {
    return ok;
  }
  if (const toml::node* level = t.get("log_level")) {
    static const std::set<std::string_view> kLevels = {"trace", "debug",    "info", "warn",
                                                       "error", "critical", "off"};
    const auto s = level->value<std::string>();
    if (!level->is_string() || kLevels.count(*s) == 0) {
      return bad(source, level->source(),
                 "'log_level' must be one of trace, debug, info, warn, error, critical, off");
    }
    a->log_level = *s;
  }
  if (auto ok = read_u32(source, t, "interval_ms", &a->interval_ms); !ok) {
    return ok;
  }
  if (a->interval_ms < 10 || a->interval_ms > 60000) {
    return bad(source, t.get("interval_ms")->source(), "'interval_ms' must be 10..60000");
  }
  return {};
}

}  // namespace

Result<ConfigFile> parse_config_text(std::string_view text, std::string_view source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    return bad(source, e.source(), std::string(e.description()));
  }
  ConfigFile out;
  if (auto ok = only_keys(source, root, "top level", {"bus", "agent"}); !ok) {
    return ok.error();
  }
  if (const toml::node* bus = root.get("bus")) {
    if (!bus->is_table()) {
      return bad(source, bus->source(), "'bus' must be a table");
    }
    if (auto ok = read_bus(source, *bus->as_table(), &out.bus); !ok) {
      return ok.error();
    }
  }
  if (const toml::node* agent = root.get("agent")) {
    if (!agent->is_table()) {
      return bad(source, agent->source(), "'agent' must be a table");
    }
    if (auto ok = read_agent(source, *agent->as_table(), &out.agent); !ok) {
      return ok.error();
    }
  }
  if (auto ok = out.bus.validate(); !ok) {
    return Error{Errc::kInvalidArgument, std::string(source) + ": " + ok.error().message};
  }
  return out;
}

Result<ConfigFile> load_config_file(const std::string& path) {
  std::error_code ec;
  // A directory opens as a stream that reads nothing, which would pass for
  // an empty file: only a regular file (or a link to one) is a configuration.
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec)) {
    return Error{Errc::kInvalidArgument, "configuration file '" + path + "' is not a regular file"};
  }
  std::ifstream in(path);
  if (!in) {
    return Error{Errc::kNotFound, "cannot read configuration file '" + path + "'"};
  }
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return Error{Errc::kSystem, "cannot read configuration file '" + path + "'"};
  }
  return parse_config_text(text.str(), path);
}

}  // namespace ipcbus

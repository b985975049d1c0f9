// admin.cpp: `ipcbus create` (a bus from the embedded defaults, a TOML file
// and flags, refused if the bus exists) and `ipcbus destroy` (refused while
// live processes use the bus, unless forced).
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>

#include "cli.hpp"
#include "ipcbus/config_file.hpp"
#include "output.hpp"
#include "records.hpp"
#include "text.hpp"

namespace ipcbus::cli {

namespace {

using Count = std::optional<std::int64_t>;  // signed: CLI11 reads "-1" into an unsigned

struct CreateOptions {
  std::string bus;
  std::string config_file;
  std::vector<std::string> pools;  // BYTES:COUNT
  Count max_listeners, ring_capacity, trie_nodes, subscriptions, max_topic_bytes, max_level_bytes,
      max_processes, max_publishers;
  std::optional<std::string> mode;
  std::optional<std::string> group;
};

struct DestroyOptions {
  std::string bus;
  bool force = false;
};

std::uint32_t parse_u32(const std::string& text, const std::string& what) {
  std::size_t used = 0;
  unsigned long long v = 0;
  try {
    v = std::stoull(text, &used, 10);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || v > 0xFFFFFFFFULL || text.front() == '-') {
    throw CliError(kExitUsage, what + ": '" + text + "' is not a number from 0 to 4294967295");
  }
  return static_cast<std::uint32_t>(v);
}

PoolClass parse_pool(const std::string& text) {
  const std::size_t colon = text.find(':');
  if (colon == std::string::npos) {
    throw CliError(kExitUsage, "--pool '" + text + "': expected BYTES:COUNT, e.g. 256:8192");
  }
  return {parse_u32(text.substr(0, colon), "--pool payload bytes"),
          parse_u32(text.substr(colon + 1), "--pool count")};
}

std::uint32_t parse_mode(const std::string& text) {
  if (text.empty() || text.size() > 5 || text.find_first_not_of("01234567") != std::string::npos) {
    throw CliError(kExitUsage, "--mode '" + text + "': expected octal permission bits, e.g. 0660");
  }
  return static_cast<std::uint32_t>(std::stoul(text, nullptr, 8));
}

// effective_config: the embedded defaults, then the file's [bus] table, then
// each flag given.
Config effective_config(const CreateOptions& o) {
  Config c;
  if (!o.config_file.empty()) {
    auto loaded = load_config_file(o.config_file);
    if (!loaded) {
      // Missing or unreadable: the command failed; not a configuration: bad usage.
      const Errc why = loaded.error().code;
      const int code = why == Errc::kNotFound || why == Errc::kSystem ? kExitRuntime : kExitUsage;
      throw CliError(code, "cannot use " + o.config_file + ": " + loaded.error().message);
    }
    c = loaded.value().bus;
  }
  auto take = [](const Count& flag, std::uint32_t& field) {
    if (flag) {
      field = static_cast<std::uint32_t>(*flag);  // checked: 0..2^32-1
    }
  };
  take(o.max_listeners, c.max_listeners);
  take(o.ring_capacity, c.ring_capacity);
  take(o.trie_nodes, c.trie_nodes);
  take(o.subscriptions, c.subscriptions);
  take(o.max_topic_bytes, c.max_topic_bytes);
  take(o.max_level_bytes, c.max_level_bytes);
  take(o.max_processes, c.max_processes);
  take(o.max_publishers, c.max_publishers);
  if (!o.pools.empty()) {
    c.pools.clear();
    for (const std::string& p : o.pools) {
      c.pools.push_back(parse_pool(p));
    }
  }
  if (o.mode) {
    c.mode = parse_mode(*o.mode);
  }
  if (o.group) {
    c.group = *o.group;
  }
  if (auto ok = c.validate(); !ok) {
    throw CliError(kExitUsage, "invalid configuration: " + ok.error().message);
  }
  return c;
}

int run_create(const CreateOptions& o) {
  const Config config = effective_config(o);
  OpenOptions options;
  options.name = resolve_bus_name(o.bus);
  options.create = true;
  options.exclusive = true;  // an existing bus is an error, decided atomically by O_EXCL
  options.config = config;
  auto made = try_open_bus(options);
  if (!made) {
    const Error& e = made.error();
    if (e.code == Errc::kAlreadyExists) {
      throw CliError(kExitRuntime,
                     "bus '" + options.name + "' already exists; 'ipcbus destroy' removes it");
    }
    throw CliError(
        e.code == Errc::kInvalidArgument ? kExitUsage : kExitRuntime,
        "cannot create bus '" + options.name + "': " + errc_name(e.code) + ": " + e.message);
  }
  const BusInfo info = made.value().inspect();
  std::cout << "created bus '" << info.name << "': " << info.segment_bytes << " bytes ("
            << byte_size(static_cast<double>(info.segment_bytes)) << ") in /dev/shm/ipcbus."
            << info.name << ", mode " << mode_text(info.config.mode) << '\n';
  return kExitOk;
}

std::string command_of(std::int32_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  std::getline(f, name);
  return name.empty() ? "?" : name;
}

int run_destroy(const DestroyOptions& o) {
  const std::string name = resolve_bus_name(o.bus);
  OpenOptions options;
  options.name = name;
  options.create = false;
  auto bus = try_open_bus(options);
  if (!bus && bus.error().code == Errc::kNotFound) {
    throw CliError(kExitRuntime, "no bus named '" + name + "'");
  }
  if (!bus && bus.error().code == Errc::kInvalidArgument) {
    throw CliError(kExitUsage, "invalid bus name '" + name + "': " + bus.error().message);
  }
  if (!bus && !o.force) {
    throw CliError(kExitRuntime, "cannot inspect bus '" + name + "' (" +
                                     errc_name(bus.error().code) + ": " + bus.error().message +
                                     "), so cannot tell who uses it; --force removes it anyway");
  }
  std::vector<std::string> users;
  if (bus) {
    const std::int32_t self = getpid();
    for (const ProcessInfo& p : bus.value().inspect().processes) {
      if (p.alive && p.pid != self) {
        users.push_back(std::to_string(p.pid) + " (" + command_of(p.pid) + ")");
      }
    }
  }
  if (!users.empty() && !o.force) {
    throw CliError(kExitRuntime, "bus '" + name + "' is in use by " + std::to_string(users.size()) +
                                     " live process" + (users.size() == 1 ? "" : "es") + ": pid " +
                                     join(users, ", pid ") +
                                     "; stop them first, or --force removes it anyway");
  }
  if (auto done = Bus::destroy(name); !done) {
    // Bus::destroy reports any failed unlink as "no bus"; a segment still
    // there was refused by the sticky /dev/shm: another user's.
    struct stat st {};
    const std::string path = "/dev/shm/ipcbus." + name;
    if (done.error().code == Errc::kNotFound && stat(path.c_str(), &st) == 0) {
      throw CliError(kExitRuntime, "cannot destroy bus '" + name + "': " + path +
                                       " belongs to uid " + std::to_string(st.st_uid) + " (mode " +
                                       mode_text(st.st_mode) +
                                       "), and only its owner or root may remove it");
    }
    throw CliError(kExitRuntime, "cannot destroy bus '" + name + "': " +
                                     errc_name(done.error().code) + ": " + done.error().message);
  }
  if (!users.empty()) {
    std::cerr << "ipcbus destroy: " << users.size()
              << (users.size() == 1 ? " live process keeps its mapping until it detaches"
                                    : " live processes keep their mapping until they detach")
              << ": pid " << join(users, ", pid ") << '\n';
  }
  std::cout << "destroyed bus '" << name << "'\n";
  return kExitOk;
}

void add_count(CLI::App& cmd, const char* flag, Count& value, const char* help) {
  cmd.add_option(flag, value, help)
      ->type_name("N")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{0xFFFFFFFF}).description(""));
}

}  // namespace

Command add_create_command(CLI::App& app) {
  auto o = std::make_shared<CreateOptions>();
  CLI::App* cmd = app.add_subcommand("create", "Create a bus from defaults, a file and flags");
  cmd->footer(
      "Create the bus with the embedded defaults, overridden by the [bus] table of\n"
      "--config FILE (TOML; etc/ipcbus.toml shows every key), overridden by the flags.\n"
      "Prints the segment's size. Exits 1 if the bus already exists, 2 for a bad\n"
      "configuration (the message names the value).\n"
      "\n"
      "Examples:\n"
      "  ipcbus create --bus robot --ring-capacity 4096 --pool 256:16384 --pool 65536:256\n"
      "  ipcbus create --bus shared --config /etc/ipcbus.toml --mode 0660 --group robots");
  add_bus_option(*cmd, o->bus);
  cmd->add_option("--config", o->config_file, "TOML file whose [bus] table to use")
      ->type_name("FILE");
  cmd->add_option("--pool", o->pools,
                  "A chunk size class, BYTES:COUNT; repeat for each class (replaces them all)")
      ->type_name("BYTES:COUNT");
  add_count(*cmd, "--max-listeners", o->max_listeners, "Listener slots");
  add_count(*cmd, "--ring-capacity", o->ring_capacity,
            "Ring entries allocated per listener (a power of two)");
  add_count(*cmd, "--trie-nodes", o->trie_nodes, "Topic trie nodes (one per filter level)");
  add_count(*cmd, "--subscriptions", o->subscriptions, "Subscription records (listener x filter)");
  add_count(*cmd, "--max-topic-bytes", o->max_topic_bytes, "Longest topic name or filter");
  add_count(*cmd, "--max-level-bytes", o->max_level_bytes, "Longest level of a filter");
  add_count(*cmd, "--max-processes", o->max_processes, "Process entries");
  add_count(*cmd, "--max-publishers", o->max_publishers, "Publisher counter slots");
  cmd->add_option("--mode", o->mode, "Permission bits of the segment, octal (default 0600)")
      ->type_name("OCTAL");
  cmd->add_option("--group", o->group, "Group that owns the segment (use with --mode 0660)")
      ->type_name("GROUP");
  return {cmd, [o] { return run_create(*o); }};
}

Command add_destroy_command(CLI::App& app) {
  auto o = std::make_shared<DestroyOptions>();
  CLI::App* cmd = app.add_subcommand("destroy", "Remove a bus that no live process uses");
  cmd->footer(
      "Remove the bus's name from /dev/shm. Refuses (exit 1, listing their pids) while\n"
      "live processes other than this one are attached, the agent among them, unless\n"
      "--force; processes still attached keep their mapping until they detach, and\n"
      "whoever opens the name next gets a new bus.");
  add_bus_option(*cmd, o->bus);
  cmd->add_flag("-f,--force", o->force, "Remove it even while live processes use it");
  return {cmd, [o] { return run_destroy(*o); }};
}

}  // namespace ipcbus::cli

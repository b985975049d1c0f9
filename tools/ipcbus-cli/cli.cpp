// cli.cpp: the --bus option, opening a bus with messages for people, the
// tool's logger and its stop flag.
#include "cli.hpp"

#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <string_view>

namespace ipcbus::cli {

namespace {

// Raised by the signal handler, read by the command loops.
std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free,
              "a signal handler may only touch lock-free atomics");

// Set once by main() before any command runs.
bool g_allow_other_owner = false;
std::chrono::milliseconds g_ready_timeout = OpenOptions{}.ready_timeout;

void on_stop_signal(int /*signal*/) {
  // relaxed: a lone flag; nothing else is published with it.
  g_stop.store(true, std::memory_order_relaxed);
}

// QuietLibraryLog silences the library's logger while the tool is about to
// report the same failure itself, unless the user asked for a log level.
class QuietLibraryLog {
 public:
  QuietLibraryLog() : logger_(spdlog::get("ipcbus")) {
    if (logger_ && std::getenv("IPCBUS_LOG_LEVEL") == nullptr) {
      saved_ = logger_->level();
      logger_->set_level(spdlog::level::off);
    } else {
      logger_.reset();
    }
  }
  ~QuietLibraryLog() {
    if (logger_) {
      logger_->set_level(saved_);
    }
  }
  QuietLibraryLog(const QuietLibraryLog&) = delete;
  QuietLibraryLog& operator=(const QuietLibraryLog&) = delete;

 private:
  std::shared_ptr<spdlog::logger> logger_;
  spdlog::level::level_enum saved_ = spdlog::level::warn;
};

}  // namespace

void add_bus_option(CLI::App& command, std::string& name) {
  command.add_option("--bus", name, "Bus name (default: $IPCBUS_BUS, else \"default\")")
      ->type_name("NAME")
      ->check([](const std::string& v) { return v.empty() ? "a bus name cannot be empty" : ""; });
}

Bus open_bus(const std::string& name, bool create) {
  OpenOptions options;
  options.name = resolve_bus_name(name);
  options.create = create;
  // Looking needs no process entry: a full table must not lock tools out.
  options.observe_only = !create;
  Result<Bus> bus = try_open_bus(options);
  if (bus) {
    return std::move(bus).value();
  }
  const Error& e = bus.error();
  const std::string what = "bus '" + options.name + "'";
  switch (e.code) {
    case Errc::kNotFound:
      throw CliError(kExitRuntime, "no bus named '" + options.name + "' (" + e.message +
                                       "); start a publisher or subscriber first");
    case Errc::kInvalidArgument:
      throw CliError(kExitUsage, "invalid bus name '" + options.name + "': " + e.message);
    case Errc::kPermissionDenied:
      // The library names the owner and mode; say how this tool allows
      // another user's bus when that is what stopped it.
      throw CliError(kExitRuntime, "cannot open " + what + ": " + e.message +
                                       (e.message.find("allow_other_owner") != std::string::npos
                                            ? "; ipcbus --allow-other-owner allows it"
                                            : ""));
    case Errc::kLayoutMismatch:
      throw CliError(kExitRuntime,
                     what + " was made by an incompatible build (this one reads layout " +
                         std::to_string(layout_version()) + "): " + e.message);
    default:
      throw CliError(kExitRuntime,
                     "cannot open " + what + ": " + errc_name(e.code) + ": " + e.message);
  }
}

Result<Bus> try_open_bus(const OpenOptions& options) {
  QuietLibraryLog quiet;
  OpenOptions o = options;
  o.allow_other_owner = o.allow_other_owner || g_allow_other_owner;
  o.ready_timeout = g_ready_timeout;
  return Bus::open(o);
}

void set_allow_other_owner(bool allow) {
  g_allow_other_owner = allow;
}

void set_ready_timeout(std::chrono::milliseconds timeout) {
  g_ready_timeout = timeout;
}

void install_logger() {
  if (spdlog::get("ipcbus")) {
    return;
  }
  auto logger = spdlog::stderr_color_mt("ipcbus");
  logger->set_pattern("%n: %^%l%$: %v");
  const char* level = std::getenv("IPCBUS_LOG_LEVEL");
  logger->set_level(spdlog::level::warn);
  if (level != nullptr) {
    // spdlog takes any other word for "off", which would hide every error.
    const std::string_view name(level);
    for (const char* known : {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
      if (name == known) {
        logger->set_level(spdlog::level::from_str(level));
        return;
      }
    }
    std::cerr << "ipcbus: IPCBUS_LOG_LEVEL='" << name
              << "' is not one of trace, debug, info, warn, error, critical, off; using warn\n";
  }
}

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART, see the header
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

const std::atomic<bool>* stop_flag() {
  return &g_stop;
}

bool stop_requested() {
  // relaxed: see on_stop_signal().
  return g_stop.load(std::memory_order_relaxed);
}

CLI::Validator number_in(double lo, double hi) {
  const CLI::Validator not_nan(
      [](std::string& text) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        return end != text.c_str() && std::isnan(v) ? "Value " + text + " is not a number"
                                                    : std::string();
      },
      "", "NOT_NAN");
  return not_nan & CLI::Range(lo, hi);
}

}  // namespace ipcbus::cli

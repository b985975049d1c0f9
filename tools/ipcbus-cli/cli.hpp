// cli.hpp: what the subcommands of the `ipcbus` tool share: exit codes, the
// error that main() turns into one line on stderr, the --bus option, opening a
// bus, and the stop flag that SIGINT and SIGTERM raise.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>

#include "ipcbus/bus.hpp"

namespace CLI {
class App;
class Validator;
}  // namespace CLI

namespace ipcbus::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntime = 1;  // the command ran and failed
inline constexpr int kExitUsage = 2;    // bad arguments: fix the command line

// The longest time option accepted (a year), so that conversions stay in range.
inline constexpr double kMaxSeconds = 365.0 * 24 * 3600;

// number_in checks a number option: within [lo, hi] and not NaN, which
// CLI::Range alone lets through (every comparison with NaN is false).
CLI::Validator number_in(double lo, double hi);

// CliError ends a command: main() prints "ipcbus <command>: <message>" on
// stderr and exits with `code`.
class CliError : public std::runtime_error {
 public:
  CliError(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

// A registered subcommand: its CLI11 node and what to run once it parsed.
struct Command {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

// Each subcommand group adds itself to `app`; the options it binds live as
// long as the returned Command.
Command add_pub_command(CLI::App& app);
Command add_sub_command(CLI::App& app);
Command add_match_command(CLI::App& app);
Command add_ls_command(CLI::App& app);
Command add_stat_command(CLI::App& app);
Command add_errors_command(CLI::App& app);
Command add_top_command(CLI::App& app);
Command add_hz_command(CLI::App& app);
Command add_bw_command(CLI::App& app);
Command add_advise_command(CLI::App& app);
Command add_create_command(CLI::App& app);
Command add_destroy_command(CLI::App& app);
Command add_doctor_command(CLI::App& app);
Command add_bench_command(CLI::App& app);

// add_bus_option binds --bus NAME to `name` (left empty: $IPCBUS_BUS, else
// "default", as ipcbus::resolve_bus_name decides).
void add_bus_option(CLI::App& command, std::string& name);

// open_bus maps the bus called `name`, creating it only if `create`. Throws
// CliError: kExitUsage for a bad name, kExitRuntime for everything else (a
// missing bus among them, with a message that says so).
Bus open_bus(const std::string& name, bool create);

// try_open_bus is Bus::open with the library's log quiet (unless
// $IPCBUS_LOG_LEVEL asks for it), for callers that report failures
// themselves. It applies set_allow_other_owner().
Result<Bus> try_open_bus(const OpenOptions& options);

// set_allow_other_owner makes every open of this run accept a bus whose
// segment belongs to another user (when its mode lets us in at all), as the
// global flag --allow-other-owner (or $IPCBUS_ALLOW_OTHER_OWNER) asks.
void set_allow_other_owner(bool allow);

// set_ready_timeout sets how long every open of this run waits for a bus
// whose creator is still initialising it (OpenOptions::ready_timeout), as
// the global --ready-timeout (or $IPCBUS_READY_TIMEOUT) asks.
void set_ready_timeout(std::chrono::milliseconds timeout);

// install_logger registers the "ipcbus" spdlog logger the library writes to:
// stderr, prefixed "ipcbus: <level>:", at $IPCBUS_LOG_LEVEL (default warn).
void install_logger();

// install_stop_handlers makes SIGINT and SIGTERM raise stop_requested()
// instead of killing the process, and ignores SIGPIPE so that a closed
// output shows up as a write error. No SA_RESTART: a blocking read returns
// EINTR, so that callers see the flag promptly.
void install_stop_handlers();
bool stop_requested();
// The flag behind stop_requested(), for Publisher::set_cancel_flag().
const std::atomic<bool>* stop_flag();

}  // namespace ipcbus::cli

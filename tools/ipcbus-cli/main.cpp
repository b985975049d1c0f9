// main.cpp: the `ipcbus` command-line tool. Parses the command line with
// CLI11, runs the one subcommand given, and turns every failure into one line
// on stderr and an exit code: 0 success, 1 the command failed, 2 bad usage.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <exception>
#include <iostream>
#include <vector>

#include "cli.hpp"
#include "ipcbus/bus.hpp"

namespace {

constexpr const char* kDescription =
    "ipcbus: publish, subscribe, inspect and administer an ipcbus shared-memory\n"
    "event bus.\n"
    "Exit status: 0 success, 1 the command failed, 2 bad usage.";

int run(int argc, char** argv) {
  using namespace ipcbus::cli;
  CLI::App app(kDescription, "ipcbus");
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("ipcbus ") + IPCBUS_VERSION + " (segment layout " +
                                        std::to_string(ipcbus::layout_version()) + ")");
  bool allow_other_owner = false;
  app.add_flag("--allow-other-owner", allow_other_owner,
               "Open a bus whose segment belongs to another user, when its mode (e.g. 0660 "
               "with a shared group) lets this user in")
      ->envname("IPCBUS_ALLOW_OTHER_OWNER");
  double ready_timeout_s = 2.0;
  app.add_option("--ready-timeout", ready_timeout_s,
                 "Seconds to wait for a bus whose creator is still initialising it (default 2)")
      ->envname("IPCBUS_READY_TIMEOUT")
      ->type_name("SECONDS")
      ->check(number_in(0, 3600));
  std::vector<Command> commands;
  commands.push_back(add_pub_command(app));
  commands.push_back(add_sub_command(app));
  commands.push_back(add_match_command(app));
  commands.push_back(add_ls_command(app));
  commands.push_back(add_stat_command(app));
  commands.push_back(add_errors_command(app));
  commands.push_back(add_top_command(app));
  commands.push_back(add_hz_command(app));
  commands.push_back(add_bw_command(app));
  commands.push_back(add_advise_command(app));
  commands.push_back(add_create_command(app));
  commands.push_back(add_destroy_command(app));
  commands.push_back(add_doctor_command(app));
  commands.push_back(add_bench_command(app));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      (void)app.exit(e);  // --help or --version
      return kExitOk;
    }
    // One line, as every other diagnostic: "ipcbus <command>: <what>".
    std::string where = "ipcbus";
    for (const Command& command : commands) {
      if (command.app->parsed()) {
        where += " " + command.app->get_name();
      }
    }
    if (where == "ipcbus") {
      // The first word names the command, after the global flags (a word
      // after another option may be that option's value: CLI11 says more).
      for (int i = 1; i < argc; ++i) {
        const std::string word = argv[i];
        if (word == "--allow-other-owner") {
          continue;
        }
        if (word.empty() || word[0] == '-') {
          break;
        }
        std::string names;
        for (const Command& command : commands) {
          names += (names.empty() ? "" : ", ") + command.app->get_name();
        }
        std::cerr << "ipcbus: unknown command '" << word << "'; the commands are " << names << "\n";
        return kExitUsage;
      }
    }
    std::cerr << where << ": " << e.what() << " (see '" << where << " --help')\n";
    return kExitUsage;
  }

  set_allow_other_owner(allow_other_owner);
  set_ready_timeout(std::chrono::milliseconds(std::llround(ready_timeout_s * 1000)));
  for (const Command& command : commands) {
    if (!app.got_subcommand(command.app)) {
      continue;
    }
    try {
      const int code = command.run();
      std::cout.flush();
      if (!std::cout) {
        throw CliError(kExitRuntime, "cannot write to standard output");
      }
      return code;
    } catch (const CliError& e) {
      std::cerr << "ipcbus " << command.app->get_name() << ": " << e.what() << '\n';
      return e.code();
    }
  }
  return kExitUsage;  // unreachable: require_subcommand(1)
}

}  // namespace

int main(int argc, char** argv) {
  try {
    ipcbus::cli::install_logger();
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "ipcbus: " << e.what() << '\n';
  } catch (...) {
    std::cerr << "ipcbus: unexpected error\n";
  }
  return ipcbus::cli::kExitRuntime;
}

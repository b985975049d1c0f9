// bench.cpp: `ipcbus bench ARGS...` runs the multi-process benchmark, the
// program ipcbus-bench, with ARGS passed through unchanged (--help among
// them). The program is looked for next to this one, then in the build tree
// when this is the build tree's ipcbus, then in the configured bindir, then
// in $PATH.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "cli.hpp"

namespace ipcbus::cli {

namespace {

constexpr const char* kBench = "ipcbus-bench";

// The directory this program runs from, or "" when /proc does not say.
std::string own_dir() {
  char path[4096];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) {
    return "";
  }
  std::string p(path, static_cast<std::size_t>(n));
  return p.substr(0, p.rfind('/'));
}

// The places to look in, best first; PATH comes after them.
std::vector<std::string> candidates() {
  std::vector<std::string> out;
  const std::string dir = own_dir();
  if (!dir.empty()) {
    out.push_back(dir + "/" + kBench);
  }
#if defined(IPCBUS_CLI_BUILD_DIR) && defined(IPCBUS_BENCH_BUILD_PATH)
  if (dir == IPCBUS_CLI_BUILD_DIR) {
    out.emplace_back(IPCBUS_BENCH_BUILD_PATH);
  }
#endif
#ifdef IPCBUS_INSTALL_BINDIR
  out.push_back(std::string(IPCBUS_INSTALL_BINDIR) + "/" + kBench);
#endif
  return out;
}

// run_bench replaces this process with ipcbus-bench ARGS; it returns only
// when no ipcbus-bench could be started.
int run_bench(const std::vector<std::string>& args) {
  std::vector<std::string> tried;
  auto exec_with = [&](const std::string& program, bool search_path) {
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(program.c_str()));
    for (const std::string& a : args) {
      argv.push_back(const_cast<char*>(a.c_str()));
    }
    argv.push_back(nullptr);
    std::cout.flush();
    if (search_path) {
      execvp(program.c_str(), argv.data());
    } else {
      execv(program.c_str(), argv.data());
    }
    return errno;
  };
  for (const std::string& path : candidates()) {
    if (access(path.c_str(), X_OK) != 0) {
      tried.push_back(path);
      continue;
    }
    const int err = exec_with(path, false);
    throw CliError(kExitRuntime,
                   "cannot run " + path + ": " + std::generic_category().message(err));
  }
  const int err = exec_with(kBench, true);
  if (err != ENOENT) {
    throw CliError(kExitRuntime, std::string("cannot run ") + kBench +
                                     " from $PATH: " + std::generic_category().message(err));
  }
  tried.emplace_back("$PATH");
  std::string places;
  for (const std::string& t : tried) {
    places += (places.empty() ? "" : ", ") + t;
  }
  throw CliError(kExitRuntime,
                 std::string("the benchmark program ") + kBench + " is not installed (looked in " +
                     places +
                     "); it is built with the benchmark dependencies (cmake "
                     "-DIPCBUS_BUILD_BENCH=ON, the default) and installed by cmake --install");
}

}  // namespace

Command add_bench_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "bench",
      "Run the multi-process benchmark (ipcbus-bench); 'ipcbus bench --help' for its options");
  // Every argument, --help too, belongs to ipcbus-bench.
  cmd->set_help_flag();
  cmd->prefix_command();
  cmd->allow_extras();
  return {cmd, [cmd] { return run_bench(cmd->remaining()); }};
}

}  // namespace ipcbus::cli

// cli_bench_test.cpp: `ipcbus bench` runs ipcbus-bench with its arguments
// passed through (from the build tree, where the two programs live in
// different directories), and says so clearly when there is no ipcbus-bench.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "multiproc.hpp"

namespace ipcbus::test {
namespace {

using CliBench = MultiProc;

TEST_F(CliBench, BenchHelpFromTheBuildTreeIsTheBenchmarksUsage) {
#ifndef IPCBUS_BENCH_BUILT
  GTEST_SKIP() << "the benchmark is not built here (IPCBUS_BUILD_BENCH=OFF)";
#endif
  SpawnOptions o;
  o.stdout_path = temp_file("out");
  o.stderr_path = temp_file("err");

  const Exit e = finish(start({kCli, "bench", "--help"}, o));

  const std::string err = read_file(o.stderr_path);
  EXPECT_TRUE(ended_ok(e)) << "exit " << e.code << " signal " << e.signal << "\n" << err;
  EXPECT_NE(err.find("usage: ipcbus-bench"), std::string::npos) << err;
  EXPECT_NE(err.find("--quick"), std::string::npos) << err;
}

TEST_F(CliBench, BenchWithoutAnIpcbusBenchExitsOneSayingWhereItLooked) {
  const std::string installed = std::string(IPCBUS_INSTALL_BINDIR) + "/ipcbus-bench";
  if (access(installed.c_str(), X_OK) == 0) {
    GTEST_SKIP() << installed << " is installed on this machine, so it would be found";
  }
  // A copy of ipcbus in a directory of its own: nothing next to it, not the
  // build tree's, and an empty $PATH.
  const std::string dir = temp_file("dir");
  std::filesystem::create_directory(dir);
  const std::string copy = dir + "/ipcbus";
  std::filesystem::copy_file(kCli, copy);
  SpawnOptions o;
  o.stdout_path = temp_file("out");
  o.stderr_path = temp_file("err");

  const Exit e = finish(start({"/usr/bin/env", "PATH=/nonexistent", copy, "bench", "--quick"}, o));
  std::filesystem::remove_all(dir);

  const std::string err = read_file(o.stderr_path);
  EXPECT_TRUE(e.exited) << err;
  EXPECT_EQ(e.code, 1) << err;
  EXPECT_NE(err.find("ipcbus bench: the benchmark program ipcbus-bench is not installed"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find(dir + "/ipcbus-bench"), std::string::npos) << err;
  EXPECT_NE(err.find("$PATH"), std::string::npos) << err;
}

}  // namespace
}  // namespace ipcbus::test

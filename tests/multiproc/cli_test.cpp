// cli_test.cpp: the `ipcbus` command line as a shell uses it: a text file
// piped through `ipcbus pub` comes out of `ipcbus sub` byte for byte, and
// `ipcbus match` answers with its exit status.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "multiproc.hpp"

namespace ipcbus::test {
namespace {

using Cli = MultiProc;

// A real text file of the machine, ending in a newline and with no line
// longer than small_config()'s largest payload; a generated one if none fits.
std::string text_file(const std::string& scratch) {
  const std::size_t longest = small_config().pools.back().payload_bytes;
  for (const char* candidate : {"/etc/services", "/var/log/dpkg.log"}) {
    const std::string text = read_file(candidate);
    std::size_t line_start = 0;
    bool fits = !text.empty() && text.back() == '\n';
    for (std::size_t i = 0; fits && i < text.size(); ++i) {
      if (text[i] == '\n') {
        fits = i - line_start <= longest;
        line_start = i + 1;
      }
    }
    if (fits) {
      return candidate;
    }
  }
  std::ofstream out(scratch, std::ios::binary);
  for (int i = 0; i < 3000; ++i) {
    out << "line " << i << "\tof a generated file, with\ttabs and  spaces ";
    out << std::string(static_cast<std::size_t>(i % 97), static_cast<char>('a' + i % 26)) << "\n";
    if (i % 50 == 0) {
      out << "\n";  // an empty line is an event with an empty payload
    }
  }
  return scratch;
}

TEST_F(Cli, FilePipedThroughPubComesOutOfSubByteForByte) {
  ASSERT_EQ(access(kCli, X_OK), 0) << "no ipcbus CLI at " << kCli;
  create_bus();
  const std::string input = text_file(temp_file("generated.txt"));
  const std::string expected = read_file(input);
  const auto lines = std::count(expected.begin(), expected.end(), '\n');
  ASSERT_GT(lines, 0) << input;
  SpawnOptions sub_options;
  sub_options.stdout_path = temp_file("sub.out");
  sub_options.stderr_path = temp_file("sub.err");
  SpawnOptions pub_options;
  pub_options.stdin_path = input;
  pub_options.stdout_path = temp_file("pub.out");
  pub_options.stderr_to_stdout = true;
  const pid_t sub =
      start({kCli, "sub", "--bus", bus_, "-C", std::to_string(lines), "logs/#"}, sub_options);

  const pid_t pub =
      start({kCli, "pub", "--bus", bus_, "--wait-listeners", "1", "--timeout", "30", "logs/x"},
            pub_options);
  const Exit pub_exit = finish(pub);
  const Exit sub_exit = finish(sub);

  EXPECT_TRUE(ended_ok(pub_exit)) << describe("pub", pub_options.stdout_path);
  EXPECT_TRUE(ended_ok(sub_exit)) << describe("sub (stderr)", sub_options.stderr_path);
  const std::string got = read_file(sub_options.stdout_path);
  EXPECT_EQ(got.size(), expected.size()) << input;
  EXPECT_TRUE(got == expected) << "sub's output differs from " << input;
}

TEST_F(Cli, MatchExitsZeroOnMatchOneOnNoMatchTwoOnInvalidInput) {
  ASSERT_EQ(access(kCli, X_OK), 0) << "no ipcbus CLI at " << kCli;
  struct Case {
    std::string filter;
    std::string topic;
    int code;
  };
  const std::vector<Case> cases = {
      {"sensors/+/temp", "sensors/kitchen/temp", 0},
      {"sensors/#", "sensors", 0},
      {"#", "$SYS/uptime", 1},
      {"sensors/+", "sensors/kitchen/temp", 1},
      {"sensors/#/temp", "sensors/a/temp", 2},  // '#' not last
      {"sensors/te+", "sensors/temp", 2},       // '+' not a whole level
      {"sensors/+", "sensors/+", 2},            // a wildcard in a topic name
      {"", "a", 2},
  };
  for (const Case& c : cases) {
    SpawnOptions o;
    o.stdout_path = temp_file("match");
    o.stderr_to_stdout = true;

    const Exit e = finish(start({kCli, "match", c.filter, c.topic}, o));

    EXPECT_TRUE(e.exited) << c.filter << " " << c.topic;
    EXPECT_EQ(e.code, c.code) << "ipcbus match '" << c.filter << "' '" << c.topic << "' printed "
                              << read_file(o.stdout_path);
  }
}

}  // namespace
}  // namespace ipcbus::test

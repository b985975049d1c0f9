// config_file_test.cpp: the TOML configuration file. The shipped
// etc/ipcbus.toml says exactly what the embedded defaults say, each key
// overrides its default, and every bad file is refused with a message that
// names the key and where it is.
#include "ipcbus/config_file.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <regex>
#include <string>

#include "ipcbus/config.hpp"

namespace ipcbus {
namespace {

constexpr const char* kSource = "test.toml";

// The repository's etc/ipcbus.toml, found from this file's place in the tree.
std::string shipped_config_path() {
  const std::filesystem::path here(__FILE__);
  return (here.parent_path().parent_path().parent_path() / "etc" / "ipcbus.toml").string();
}

void expect_same_config(const Config& got, const Config& want) {
  ASSERT_EQ(got.pools.size(), want.pools.size());
  for (std::size_t k = 0; k < want.pools.size(); ++k) {
    EXPECT_EQ(got.pools[k].payload_bytes, want.pools[k].payload_bytes) << "pool " << k;
    EXPECT_EQ(got.pools[k].count, want.pools[k].count) << "pool " << k;
  }
  EXPECT_EQ(got.max_listeners, want.max_listeners);
  EXPECT_EQ(got.ring_capacity, want.ring_capacity);
  EXPECT_EQ(got.trie_nodes, want.trie_nodes);
  EXPECT_EQ(got.subscriptions, want.subscriptions);
  EXPECT_EQ(got.max_topic_bytes, want.max_topic_bytes);
  EXPECT_EQ(got.max_level_bytes, want.max_level_bytes);
  EXPECT_EQ(got.max_processes, want.max_processes);
  EXPECT_EQ(got.max_publishers, want.max_publishers);
  EXPECT_EQ(got.mode, want.mode);
  EXPECT_EQ(got.group, want.group);
}

// parse_ok parses `text`, failing the test with the message if it is refused.
ConfigFile parse_ok(const std::string& text) {
  auto parsed = parse_config_text(text, kSource);
  EXPECT_TRUE(parsed) << parsed.error().message << "\nfor:\n" << text;
  return parsed ? parsed.value() : ConfigFile{};
}

// expect_refused checks that `text` is refused as an invalid argument whose
// message names `key` and points at `line` as "test.toml:LINE:COLUMN: ".
void expect_refused(const std::string& text, const std::string& key, int line) {
  auto parsed = parse_config_text(text, kSource);
  ASSERT_FALSE(parsed) << "accepted:\n" << text;
  const std::string& message = parsed.error().message;
  EXPECT_EQ(parsed.error().code, Errc::kInvalidArgument) << message;
  EXPECT_NE(message.find(key), std::string::npos) << "no '" << key << "' in: " << message;
  std::smatch where;
  ASSERT_TRUE(std::regex_search(message, where, std::regex(R"(test\.toml:(\d+):(\d+): )")))
      << "no line:column in: " << message;
  EXPECT_EQ(std::stoi(where[1].str()), line) << message;
  EXPECT_GE(std::stoi(where[2].str()), 1) << message;
}

TEST(ConfigFile, ShippedFileParsesToTheEmbeddedDefaults) {
  const std::string path = shipped_config_path();
  ASSERT_EQ(access(path.c_str(), R_OK), 0) << "cannot read " << path;

  auto loaded = load_config_file(path);

  ASSERT_TRUE(loaded) << loaded.error().message;
  expect_same_config(loaded.value().bus, Config{});
  EXPECT_EQ(loaded.value().agent.log_level, AgentSettings{}.log_level);
  EXPECT_EQ(loaded.value().agent.interval_ms, AgentSettings{}.interval_ms);
}

TEST(ConfigFile, EmptyTextGivesTheDefaults) {
  const ConfigFile parsed = parse_ok("");

  expect_same_config(parsed.bus, Config{});
  EXPECT_EQ(parsed.agent.log_level, AgentSettings{}.log_level);
  EXPECT_EQ(parsed.agent.interval_ms, AgentSettings{}.interval_ms);
}

TEST(ConfigFile, RingCapacityOverridesOnlyItself) {
  const ConfigFile parsed = parse_ok("[bus]\nring_capacity = 64\n");

  Config want;
  want.ring_capacity = 64;
  expect_same_config(parsed.bus, want);
}

TEST(ConfigFile, PoolsArrayReplacesEveryDefaultClass) {
  const ConfigFile parsed = parse_ok(
      "[[bus.pools]]\npayload_bytes = 128\ncount = 32\n"
      "[[bus.pools]]\npayload_bytes = 8192\ncount = 4\n");

  Config want;
  want.pools = {{128, 32}, {8192, 4}};
  expect_same_config(parsed.bus, want);
}

TEST(ConfigFile, PoolsInlineArrayOfTablesIsAccepted) {
  const ConfigFile parsed = parse_ok("[bus]\npools = [{ payload_bytes = 512, count = 64 }]\n");

  ASSERT_EQ(parsed.bus.pools.size(), 1U);
  EXPECT_EQ(parsed.bus.pools[0].payload_bytes, 512U);
  EXPECT_EQ(parsed.bus.pools[0].count, 64U);
}

TEST(ConfigFile, ModeAsOctalStringAndAsIntegerAgree) {
  const ConfigFile as_string = parse_ok("[bus]\nmode = \"0660\"\n");
  const ConfigFile as_integer = parse_ok("[bus]\nmode = 0o660\n");

  EXPECT_EQ(as_string.bus.mode, 0660U);
  EXPECT_EQ(as_integer.bus.mode, 0660U);
}

TEST(ConfigFile, GroupOverridesTheCreatorsGroup) {
  const ConfigFile parsed = parse_ok("[bus]\ngroup = \"robots\"\n");

  EXPECT_EQ(parsed.bus.group, "robots");
}

TEST(ConfigFile, AgentLogLevelAndIntervalOverride) {
  const ConfigFile parsed = parse_ok("[agent]\nlog_level = \"debug\"\ninterval_ms = 250\n");

  EXPECT_EQ(parsed.agent.log_level, "debug");
  EXPECT_EQ(parsed.agent.interval_ms, 250U);
  expect_same_config(parsed.bus, Config{});
}

TEST(ConfigFile, UnknownKeyInBusIsRefusedWithItsPlace) {
  expect_refused("[bus]\nring_capacity = 64\nring_capasity = 64\n", "ring_capasity", 3);
}

TEST(ConfigFile, UnknownTopLevelTableIsRefusedWithItsPlace) {
  expect_refused("# a comment\n[buss]\nring_capacity = 64\n", "buss", 2);
}

TEST(ConfigFile, StringForRingCapacityIsRefused) {
  expect_refused("[bus]\nring_capacity = \"64\"\n", "ring_capacity", 2);
}

TEST(ConfigFile, NegativeNumberIsRefused) {
  expect_refused("[bus]\n\nmax_listeners = -1\n", "max_listeners", 3);
}

TEST(ConfigFile, ModeWithANonOctalDigitIsRefused) {
  expect_refused("[bus]\nmode = \"09\"\n", "mode", 2);
}

TEST(ConfigFile, UnknownLogLevelIsRefused) {
  expect_refused("[agent]\nlog_level = \"loud\"\n", "log_level", 2);
}

TEST(ConfigFile, RingCapacityNotAPowerOfTwoIsRefusedByValidate) {
  auto parsed = parse_config_text("[bus]\nring_capacity = 1000\n", kSource);

  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().code, Errc::kInvalidArgument);
  const std::string& message = parsed.error().message;
  EXPECT_NE(message.find(kSource), std::string::npos) << message;
  EXPECT_NE(message.find("ring_capacity"), std::string::npos) << message;
  EXPECT_NE(message.find("power of two"), std::string::npos) << message;
  EXPECT_NE(message.find("1000"), std::string::npos) << message;
}

TEST(ConfigFile, MissingFileIsNotFound) {
  const std::string path = "/nonexistent-dir-" + std::to_string(getpid()) + "/ipcbus.toml";

  auto loaded = load_config_file(path);

  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code, Errc::kNotFound);
  EXPECT_NE(loaded.error().message.find(path), std::string::npos) << loaded.error().message;
}

TEST(ConfigFile, ADirectoryIsNotAnEmptyConfiguration) {
  auto loaded = load_config_file("/tmp");

  ASSERT_FALSE(loaded) << "a directory read as an empty file gives the defaults";
  EXPECT_EQ(loaded.error().code, Errc::kInvalidArgument);
  EXPECT_NE(loaded.error().message.find("not a regular file"), std::string::npos)
      << loaded.error().message;
}

}  // namespace
}  // namespace ipcbus

// match.cpp: `ipcbus match FILTER TOPIC`, the MQTT matching rules on the
// command line. Needs no bus.
#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

#include "cli.hpp"
#include "ipcbus/topic.hpp"
#include "text.hpp"

namespace ipcbus::cli {

namespace {

struct MatchOptions {
  std::string filter;
  std::string topic;
};

int run_match(const MatchOptions& o) {
  if (auto ok = check_topic_filter(o.filter); !ok) {
    throw CliError(kExitUsage, "invalid filter " + quote_arg(o.filter) + ": " + ok.error().message);
  }
  if (auto ok = check_topic_name(o.topic); !ok) {
    throw CliError(kExitUsage, "invalid topic " + quote_arg(o.topic) + ": " + ok.error().message);
  }
  if (filter_matches(o.filter, o.topic)) {
    std::cout << "match\n";
    return kExitOk;
  }
  std::cout << "no match\n";
  return kExitRuntime;
}

}  // namespace

Command add_match_command(CLI::App& app) {
  auto options = std::make_shared<MatchOptions>();
  CLI::App* cmd = app.add_subcommand("match", "Tell whether a topic filter matches a topic");
  cmd->footer(
      "Tell whether a topic filter matches a topic name, by the MQTT rules.\n"
      "Prints 'match' (exit 0) or 'no match' (exit 1); an invalid filter or topic\n"
      "exits 2 with the reason on stderr. Needs no bus.");
  cmd->add_option("FILTER", options->filter, "Topic filter, e.g. 'sensors/+/temp'")->required();
  cmd->add_option("TOPIC", options->topic, "Topic name, e.g. 'sensors/kitchen/temp'")->required();
  return {cmd, [options] { return run_match(*options); }};
}

}  // namespace ipcbus::cli

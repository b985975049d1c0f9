// report.hpp: from case outcomes to the results JSON, and from the JSON to
// the human table, the ratios and bars, the markdown for BENCHMARKS.md and
// the gnuplot plots. The JSON is the one source: a report can be remade from
// a saved file without rerunning anything.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runner.hpp"

namespace ipcbus::bench {

// The JSON of one case outcome (kind: latency, throughput, fanout, first_event).
nlohmann::json case_json(const CaseOut& c, const std::string& kind);

// Ratios to floors and peers, and the bars of issue 4, computed from the
// "latency", "throughput", "fanout_cost", "first_event" and "inproc" sections;
// added to `results` as "ratios", "fanout_slope" and "bars".
void add_analysis(nlohmann::json& results);

// Sanity of the numbers: every case present and ok, nonzero throughput,
// ordered percentiles. Returns the problems (empty: sane).
std::vector<std::string> sanity_problems(const nlohmann::json& results);

std::string human_table(const nlohmann::json& results);
// `notes`, when not empty, is markdown placed after the bars (the analysis
// of a run, written by hand).
std::string markdown_report(const nlohmann::json& results, const nlohmann::json& micro,
                            const std::string& notes);

// Write PNG plots into `dir` with gnuplot. Returns false (and why) on failure.
bool write_plots(const nlohmann::json& results, const std::string& dir, std::string* why);

}  // namespace ipcbus::bench

// fuzz_topic: topic and filter validation must never crash, and matching of
// two valid inputs must agree with the reference matcher. Input: FILTER '\n' TOPIC.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ipcbus/topic.hpp"
#include "reference.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::size_t nl = in.find('\n');
  const std::string_view filter = in.substr(0, nl);
  const std::string_view topic = nl == std::string_view::npos ? in : in.substr(nl + 1);
  const bool filter_ok = ipcbus::check_topic_filter(filter, 1024).has_value();
  const bool topic_ok = ipcbus::check_topic_name(topic, 1024).has_value();
  if (topic_ok && !ipcbus::check_topic_filter(topic, 1024)) {
    std::abort();  // every valid name is a valid filter
  }
  if (filter_ok && topic_ok &&
      ipcbus::filter_matches(filter, topic) != fuzz::reference_matches(filter, topic)) {
    std::abort();
  }
  return 0;
}

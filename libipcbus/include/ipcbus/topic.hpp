// ipcbus/topic.hpp: topic names and topic filters, exactly as MQTT 3.1.1 and
// 5.0 define them (levels split by '/', '+' is one whole level, '#' is the
// last whole level, empty levels are levels, '$' topics are not matched by a
// filter that starts with a wildcard).
//
// These are pure functions with no state; every thread may call them.
#pragma once

#include <cstddef>
#include <string_view>

#include "ipcbus/result.hpp"

namespace ipcbus {

// The MQTT limit on the encoded length of a topic name or filter.
inline constexpr std::size_t kMqttMaxTopicBytes = 65535;

// check_topic_name returns success when `name` is a valid MQTT topic name of at
// most `max_bytes` bytes, else kInvalidTopic with a message that says why
// (empty, too long, contains '+' or '#', contains NUL, is not UTF-8, ...).
Result<void> check_topic_name(std::string_view name, std::size_t max_bytes = kMqttMaxTopicBytes);

// check_topic_filter is check_topic_name's twin for subscriptions: wildcards
// are allowed where MQTT allows them, and kInvalidFilter says why otherwise.
Result<void> check_topic_filter(std::string_view filter,
                                std::size_t max_bytes = kMqttMaxTopicBytes);

// filter_matches tells whether the valid topic filter `filter` matches the
// valid topic name `topic`. Both must have passed the checks above; for
// invalid input the answer is unspecified but the call is still safe.
bool filter_matches(std::string_view filter, std::string_view topic);

}  // namespace ipcbus

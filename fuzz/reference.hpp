// reference.hpp: a deliberately simple MQTT filter matcher (split into
// levels, compare level by level) that the fuzzers hold the library to.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace fuzz {

inline std::vector<std::string_view> levels(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == '/') {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

inline bool reference_matches(std::string_view filter, std::string_view topic) {
  const auto f = levels(filter);
  const auto t = levels(topic);
  if (!topic.empty() && topic[0] == '$' && (f[0] == "+" || f[0] == "#")) {
    return false;
  }
  for (std::size_t i = 0; i < f.size(); ++i) {
    if (f[i] == "#") {
      return true;  // matches the rest, and the parent level itself
    }
    if (i >= t.size()) {
      return false;
    }
    if (f[i] != "+" && f[i] != t[i]) {
      return false;
    }
  }
  return f.size() == t.size();
}

}  // namespace fuzz

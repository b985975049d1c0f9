// ipcbus/result.hpp: the error model of the library.
//
// No exception crosses the library API. Fallible control-path calls return
// Result<T>, shaped like std::expected<T, Error> (C++23), so that a later move
// to std::expected is a rename. Hot-path calls return a status enum instead
// and never allocate; see PublishStatus in bus.hpp.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace ipcbus {

// Errc names what went wrong and, by its group, what the caller does next.
enum class Errc : std::uint8_t {
  // Fix the input, then retry.
  kInvalidTopic = 1,  // a topic name that breaks the MQTT rules
  kInvalidFilter,     // a topic filter that breaks the MQTT rules
  kPayloadTooLarge,   // larger than the largest chunk size class of the bus
  kInvalidArgument,   // a bad option or configuration value
  kNotFound,          // no such bus, listener or subscription
  kAlreadyExists,     // an exclusive create found the bus there already
  // Resources of the bus are used up: back off and retry, or size the bus larger.
  kPoolExhausted,      // no free chunk in the size class
  kListenerTableFull,  // every listener slot is taken
  kTrieFull,           // no free trie node or subscription record
  kProcessTableFull,   // every process entry is taken
  kNoSpace,            // /dev/shm has no room for a new segment of this size
  // The bus cannot be used as it is: do not retry until the state is fixed.
  kForeignSegment,    // the segment's magic is not ipcbus's
  kLayoutMismatch,    // the segment was made by a build with another layout
  kSegmentNotReady,   // the creator never finished initialising the segment
  kPermissionDenied,  // the segment belongs to another user or mode forbids it
  kClosed,            // the listener was closed
  kSystem,            // a system call failed; the message carries errno's text
};

// Error is a code plus a message that says why, for people.
struct Error {
  Errc code;
  std::string message;
};

// Result<T> holds either a T or an Error.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor): as expected<>
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& value() const& { return std::get<0>(v_); }
  T& operator*() & { return value(); }
  T* operator->() { return &std::get<0>(v_); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Result<void> carries only success or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error)
      : ok_(false), error_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool has_value() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  bool ok_ = true;
  Error error_{};
};

// Name of an error code, such as "pool exhausted", for messages.
const char* errc_name(Errc code);

}  // namespace ipcbus

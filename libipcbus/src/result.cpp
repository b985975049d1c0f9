// result.cpp: readable names of the library's error codes (Errc), for messages and logs.

#include "ipcbus/result.hpp"

namespace ipcbus {

const char* errc_name(Errc code) {
  switch (code) {
    case Errc::kInvalidTopic:
      return "invalid topic";
    case Errc::kInvalidFilter:
      return "invalid filter";
    case Errc::kPayloadTooLarge:
      return "payload too large";
    case Errc::kInvalidArgument:
      return "invalid argument";
    case Errc::kNotFound:
      return "not found";
    case Errc::kPoolExhausted:
      return "pool exhausted";
    case Errc::kListenerTableFull:
      return "listener table full";
    case Errc::kTrieFull:
      return "trie full";
    case Errc::kProcessTableFull:
      return "process table full";
    case Errc::kForeignSegment:
      return "foreign segment";
    case Errc::kLayoutMismatch:
      return "layout mismatch";
    case Errc::kSegmentNotReady:
      return "segment not ready";
    case Errc::kPermissionDenied:
      return "permission denied";
    case Errc::kClosed:
      return "closed";
    case Errc::kAlreadyExists:
      return "already exists";
    case Errc::kNoSpace:
      return "no space";
    case Errc::kSystem:
      return "system error";
  }
  return "unknown error";  // a value outside the enum, e.g. cast from a corrupt segment
}

}  // namespace ipcbus

#pragma once
// The one error type that leaves lib/. Library exceptions are caught at module boundaries
// and rethrown as `Error` with context; `cli/main.cpp` maps kinds to exit codes.

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mlctl {

enum class ErrorKind { invalid_input, not_found, conflict, unavailable, io, corrupt, internal, interrupted };

// Returns the stable snake_case name of `kind` (`invalid_input`, ...), used on the wire.
std::string_view to_string(ErrorKind kind);
// Parses a name produced by `to_string`; unknown names give `internal`.
ErrorKind error_kind_from_string(std::string_view name);

class Error : public std::runtime_error {
public:
  // `message` is one lowercase line without a final period, e.g.
  // `t10k-images-idx3-ubyte.gz: truncated at byte 4096`.
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), m_kind(kind) {}
  ErrorKind kind() const noexcept { return m_kind; }

  // Returns a copy whose message is `<subject>: <this message>`.
  Error with_context(std::string_view subject) const;

private:
  ErrorKind m_kind;
};

// Runs `fn`; an `Error` escaping it is rethrown with `subject` prepended, and any other
// `std::exception` becomes an `Error` of `fallback` kind with the same prefix.
template <class Fn>
decltype(auto) with_context(std::string_view subject, Fn&& fn, ErrorKind fallback = ErrorKind::internal) {
  try {
    return fn();
  } catch (const Error& e) {
    throw e.with_context(subject);
  } catch (const std::exception& e) {
    throw Error(fallback, std::string(subject) + ": " + e.what());
  }
}

// The problems found in one input, gathered so that one message names them all (a manifest
// with two bad fields says both, as kubectl does): `check` runs one independent part of the
// validation and keeps the message of an `Error{invalid_input}` it throws (other errors pass
// through); `raise` throws them joined by "; ".
class Problems {
public:
  // Runs `fn`; returns false when it threw `Error{invalid_input}`, whose message is kept.
  template <class Fn> bool check(Fn&& fn) {
    try {
      fn();
      return true;
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::invalid_input) {
        throw;
      }
      add(e.what());
      return false;
    }
  }
  void add(std::string message) { m_messages.push_back(std::move(message)); }
  bool empty() const { return m_messages.empty(); }
  // Throws `Error{invalid_input}` with the messages joined by "; ", if there are any.
  void raise() const;

private:
  std::vector<std::string> m_messages;
};

} // namespace mlctl

#pragma once
// The one error type that leaves lib/. Library exceptions are caught at module boundaries
// and rethrown as `Error` with context; `cli/main.cpp` maps kinds to exit codes.

#include <stdexcept>
#include <string>
#include <string_view>

namespace mlctl {

// `no_space`: a disk (or quota) is full: an `io` error that waiting or freeing space mends,
// which retrying at once does not.
enum class ErrorKind {
  invalid_input,
  not_found,
  conflict,
  unavailable,
  io,
  no_space,
  corrupt,
  internal,
  interrupted
};

// Returns the stable snake_case name of `kind` (`invalid_input`, ...), used on the wire.
std::string_view to_string(ErrorKind kind);
// Parses a name produced by `to_string`; unknown names give `internal`.
ErrorKind error_kind_from_string(std::string_view name);

// The kind of a failed system call's `errno`: `no_space` for ENOSPC and EDQUOT, else `io`.
ErrorKind io_error_kind(int error) noexcept;

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

} // namespace mlctl

#pragma once
// Helpers shared by the artifact and data unit tests.

#include "util/error.hpp"

#include <filesystem>
#include <functional>
#include <string>

namespace mlctl::test {

// Returns the kind of the `Error` that `fn` throws (`internal` when it throws nothing).
inline ErrorKind kind_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.kind();
  }
  return ErrorKind::internal;
}

// Returns the message of the `Error` that `fn` throws ("no error" when it throws nothing) and
// stores its kind in `kind` when given.
inline std::string error_of(const std::function<void()>& fn, ErrorKind* kind = nullptr) {
  try {
    fn();
  } catch (const Error& e) {
    if (kind != nullptr) {
      *kind = e.kind();
    }
    return e.what();
  }
  return "no error";
}

// Returns the path of a committed fixture (files numpy wrote, see tests/unit/data/fixtures).
inline std::filesystem::path fixture(const std::string& name) {
  return std::filesystem::path(MLCTL_SOURCE_DIR) / "tests/unit/data/fixtures" / name;
}

} // namespace mlctl::test

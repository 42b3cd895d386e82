#pragma once
// Helpers shared by the artifact and data unit tests.

#include "util/error.hpp"

#include <doctest/doctest.h>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <zlib.h>

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

// Returns `raw` compressed by zlib at `level`, in the format of `window` (zlib's window bits:
// 16 + MAX_WBITS one gzip member, RFC 1952; MAX_WBITS a zlib stream; -MAX_WBITS raw deflate).
// The test's target links zlib.
inline std::string deflated(std::string_view raw, int window, int level = 6) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, level, Z_DEFLATED, window, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&zs, raw.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  zs.avail_in = static_cast<uInt>(raw.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// Returns `raw` as one gzip member written by zlib at `level`.
inline std::string gzip(std::string_view raw, int level = 6) {
  return deflated(raw, 16 + MAX_WBITS, level);
}

} // namespace mlctl::test

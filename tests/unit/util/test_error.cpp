#include "util/error.hpp"
#include "util/problems.hpp"

#include <cerrno>
#include <doctest/doctest.h>

using mlctl::Error;
using mlctl::ErrorKind;

TEST_CASE("error kinds round-trip through their wire names") {
  for (auto kind : {ErrorKind::invalid_input, ErrorKind::not_found, ErrorKind::conflict,
                    ErrorKind::unavailable, ErrorKind::io, ErrorKind::no_space, ErrorKind::corrupt,
                    ErrorKind::internal, ErrorKind::interrupted}) {
    CHECK(mlctl::error_kind_from_string(mlctl::to_string(kind)) == kind);
  }
  CHECK(mlctl::error_kind_from_string("nonsense") == ErrorKind::internal);
}

TEST_CASE("a full disk or quota is no_space, any other failed call io") {
  CHECK(mlctl::io_error_kind(ENOSPC) == ErrorKind::no_space);
  CHECK(mlctl::io_error_kind(EDQUOT) == ErrorKind::no_space);
  CHECK(mlctl::io_error_kind(EIO) == ErrorKind::io);
  CHECK(mlctl::io_error_kind(EACCES) == ErrorKind::io);
}

TEST_CASE("with_context prefixes the subject and keeps the kind") {
  const auto throws = [] {
    mlctl::with_context("train.npz", [] { throw Error(ErrorKind::corrupt, "bad magic at byte 0"); });
  };
  CHECK_THROWS_WITH_AS(throws(), "train.npz: bad magic at byte 0", Error);
  try {
    throws();
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::corrupt);
  }
  const auto foreign = [] {
    mlctl::with_context("x.yaml", [] { throw std::runtime_error("boom"); }, ErrorKind::invalid_input);
  };
  CHECK_THROWS_WITH_AS(foreign(), "x.yaml: boom", Error);
}

TEST_CASE("Problems keeps every invalid_input message and raises them joined; other errors pass") {
  mlctl::Problems problems;
  CHECK_NOTHROW(problems.raise());
  CHECK(problems.check([] {}));
  CHECK_FALSE(problems.check([] { throw Error(ErrorKind::invalid_input, "a: must be 1"); }));
  CHECK_FALSE(problems.check([] { throw Error(ErrorKind::invalid_input, "b: is required"); }));
  CHECK_THROWS_AS(problems.check([] { throw Error(ErrorKind::io, "disk full"); }), Error);
  CHECK_THROWS_WITH_AS(problems.raise(), "a: must be 1; b: is required", Error);
}

#include "util/text.hpp"

#include <doctest/doctest.h>

using mlctl::util::trim_blanks;

TEST_CASE("trim_blanks drops spaces and tabs at both ends only") {
  CHECK(trim_blanks(" \tapplication/json \t") == "application/json");
  CHECK(trim_blanks("a b") == "a b");
  CHECK(trim_blanks("x\r\n") == "x\r\n"); // line ends are not blanks
  CHECK(trim_blanks(" \t ").empty());
  CHECK(trim_blanks("").empty());
}

TEST_CASE("iequals compares HTTP tokens without regard to case") {
  using mlctl::util::iequals;
  CHECK(iequals("GZip", "gzip"));
  CHECK(iequals("Content-Length", "content-length"));
  CHECK_FALSE(iequals("gzip ", "gzip"));
  CHECK_FALSE(iequals("gzi", "gzip"));
  // Letters only: the bytes 32 apart that are not (@ and `, [ and {, Latin-1's É and é).
  CHECK_FALSE(iequals("@", "`"));
  CHECK_FALSE(iequals("[", "{"));
  CHECK_FALSE(iequals("\xc9", "\xe9"));
}

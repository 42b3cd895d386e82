#include "util/text.hpp"

#include <doctest/doctest.h>
#include <string>
#include <vector>

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

TEST_CASE("nearest_name finds the name a word misspells, and only a near one") {
  using mlctl::util::nearest_name;
  const std::vector<std::string> commands{"train", "test", "predict", "apply", "get", "describe"};
  CHECK(nearest_name("trian", commands) == "train");      // two neighbours swapped: 1 edit
  CHECK(nearest_name("predcit", commands) == "predict");  // 1
  CHECK(nearest_name("descibe", commands) == "describe"); // a letter left out
  CHECK(nearest_name("tset", commands) == "test");
  CHECK(nearest_name("applly", commands) == "apply");
  CHECK(nearest_name("serve", commands).empty()); // 3 or more edits from every name
  CHECK(nearest_name("gt", commands).empty());    // 1 edit, but half of a 2-letter word
  CHECK(nearest_name("", commands).empty());
  CHECK(nearest_name("train", {}).empty());
  // Of names equally near, the first: "traix" is 1 edit from both "train" and "trail".
  CHECK(nearest_name("traix", std::vector<std::string>{"train", "trail"}) == "train");
  CHECK(nearest_name("traix", std::vector<std::string>{"trail", "train"}) == "trail");
  const std::vector<std::string> options{"--listen", "--port", "--threads"};
  CHECK(nearest_name("--prot", options) == "--port");
  CHECK(nearest_name("--thread", options) == "--threads");
}

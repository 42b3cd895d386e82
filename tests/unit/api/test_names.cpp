#include "api/names.hpp"
#include "util/error.hpp"

#include <doctest/doctest.h>
#include <string>

namespace api = mlctl::api;
using mlctl::Error;

TEST_CASE("names follow [a-z0-9][a-z0-9._-]{0,62}") {
  for (const char* ok : {"mnist", "a", "0", "mnist-v2.1_b", "x1"}) {
    CHECK_MESSAGE(api::is_valid_name(ok), ok);
  }
  CHECK(api::is_valid_name(std::string(63, 'a')));
  CHECK_FALSE(api::is_valid_name(std::string(64, 'a')));
  for (const char* bad : {"", "Mnist", "-x", ".x", "_x", "a/b", "..", "a b", "a:b", "a@b", "é"}) {
    CHECK_FALSE_MESSAGE(api::is_valid_name(bad), bad);
  }
  CHECK_THROWS_WITH_AS(api::validate_name("../etc"), "model name '../etc': must match [a-z0-9][a-z0-9._-]{0,62}",
                       Error);
  CHECK_THROWS_WITH_AS(api::validate_name("A\nB", "application name"),
                       "application name 'A?B': must match [a-z0-9][a-z0-9._-]{0,62}", Error);
}

TEST_CASE("aliases are names that are not numbers and not latest") {
  CHECK_NOTHROW(api::validate_alias("production"));
  CHECK_NOTHROW(api::validate_alias("v2"));
  CHECK_THROWS_WITH_AS(api::validate_alias("42"), "alias '42': must not be a number", Error);
  CHECK_THROWS_AS(api::validate_alias("latest"), Error);
  CHECK_THROWS_AS(api::validate_alias("Prod"), Error);
}

TEST_CASE("tag keys and values are checked") {
  CHECK_NOTHROW(api::validate_tag_key("stage"));
  CHECK_NOTHROW(api::validate_tag_key("mlctl.io/owner:team-a"));
  CHECK_THROWS_AS(api::validate_tag_key(""), Error);
  CHECK_THROWS_AS(api::validate_tag_key("a b"), Error);
  CHECK_THROWS_AS(api::validate_tag_key("-x"), Error);
  CHECK_NOTHROW(api::validate_tag_value("k", "any text, even = and spaces"));
  CHECK_THROWS_WITH_AS(api::validate_tag_value("k", "line\nbreak"), "tag k: value holds control characters", Error);
  CHECK_THROWS_AS(api::validate_tag_value("k", std::string(1025, 'x')), Error);
}

TEST_CASE("version numbers are positive decimals without leading zeros") {
  CHECK(api::parse_version_number("1") == 1);
  CHECK(api::parse_version_number("9007199254740992") == 9007199254740992LL);
  CHECK_FALSE(api::parse_version_number("0").has_value());
  CHECK_FALSE(api::parse_version_number("01").has_value());
  CHECK_FALSE(api::parse_version_number("-1").has_value());
  CHECK_FALSE(api::parse_version_number("1.5").has_value());
  CHECK_FALSE(api::parse_version_number("9007199254740993").has_value());
  CHECK_FALSE(api::parse_version_number("").has_value());
}

TEST_CASE("model references: name:version, name@alias, bare name where allowed") {
  auto r = api::parse_model_ref("mnist:3");
  CHECK(r.name == "mnist");
  CHECK(r.version == 3);
  CHECK(r.to_string() == "mnist:3");
  CHECK(r.selector() == "3");
  r = api::parse_model_ref("mnist@production");
  CHECK(r.alias == "production");
  CHECK_FALSE(r.version.has_value());
  CHECK(r.selector() == "production");
  CHECK(r.to_string() == "mnist@production");
  r = api::parse_model_ref("mnist@latest");
  CHECK(r.selector() == "latest");
  r = api::parse_model_ref("mnist", api::RefVersion::optional);
  CHECK(r.selector() == "latest");
  CHECK(r.to_string() == "mnist");
  CHECK_THROWS_WITH_AS(api::parse_model_ref("mnist"), "'mnist': expected NAME:VERSION or NAME@ALIAS", Error);
  CHECK_THROWS_WITH_AS(
      api::parse_model_ref("mnist:production"),
      "'mnist:production': version must be a positive integer (an alias goes after @: "
      "mnist@production)",
      Error);
  CHECK_THROWS_WITH_AS(api::parse_model_ref("mnist:0"),
                       "'mnist:0': version must be a positive integer", Error);
  CHECK_THROWS_AS(api::parse_model_ref("mnist:"), Error);
  CHECK_THROWS_AS(api::parse_model_ref(":3"), Error);
  CHECK_THROWS_AS(api::parse_model_ref("MNIST:3"), Error);
  CHECK_THROWS_AS(api::parse_model_ref("mnist@12"), Error);
}

TEST_CASE("version selectors of REST paths") {
  CHECK(api::parse_version_selector("7").version == 7);
  CHECK(api::parse_version_selector("production").alias == "production");
  CHECK(api::parse_version_selector("latest").alias == "latest");
  CHECK_THROWS_AS(api::parse_version_selector("0"), Error);
  CHECK_THROWS_AS(api::parse_version_selector("../x"), Error);
}

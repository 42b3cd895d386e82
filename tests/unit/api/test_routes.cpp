#include "api/routes.hpp"

#include <doctest/doctest.h>
#include <regex>

namespace routes = mlctl::api::routes;

TEST_CASE("client paths match the server's patterns") {
  const auto full = [](const char* pattern, const std::string& path) {
    return std::regex_match(path, std::regex(pattern));
  };
  CHECK(routes::models() == "/api/v1/models");
  CHECK(routes::version("mnist", "3") == "/api/v1/models/mnist/versions/3");
  CHECK(routes::artifact("mnist", "production") == "/api/v1/models/mnist/versions/production/artifact");
  CHECK(full(routes::pattern::k_models, routes::models()));
  CHECK(full(routes::pattern::k_model, routes::model("mnist")));
  CHECK(full(routes::pattern::k_versions, routes::versions("mnist")));
  CHECK(full(routes::pattern::k_version, routes::version("mnist", "3")));
  CHECK(full(routes::pattern::k_artifact, routes::artifact("mnist", "3")));
  CHECK(full(routes::pattern::k_tags, routes::tags("mnist", "3")));
  CHECK(full(routes::pattern::k_aliases, routes::aliases("mnist")));
  CHECK(full(routes::pattern::k_alias, routes::alias("mnist", "production")));
  CHECK(full(routes::pattern::k_events, routes::events()));
  CHECK(full(routes::pattern::k_gc, routes::gc()));
  // A version pattern never swallows the artifact route.
  CHECK_FALSE(full(routes::pattern::k_version, routes::artifact("mnist", "3")));
}

TEST_CASE("query strings are encoded and skip empty values") {
  CHECK(routes::query({}) == "");
  CHECK(routes::query({{"prefix", ""}}) == "");
  CHECK(routes::query({{"tag", "stage=prod"}, {"limit", "10"}}) == "?tag=stage%3Dprod&limit=10");
  CHECK(routes::url_encode("a b/c~d") == "a%20b%2Fc~d");
}

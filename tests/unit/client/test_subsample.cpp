#include "client/subsample.hpp"

#include <doctest/doctest.h>

namespace client = mlctl::client;

TEST_CASE("a production subsample's dataset.json source gives back the request that took it") {
  const nlohmann::json source = {
      {"name", "production-subsample"},  {"application", "mnist-app"},
      {"strategy", "stratified"},        {"labeled", "any"},
      {"pseudo_label", true},            {"seed", 7},
      {"requested", 300},                {"test_fraction", 0.2},
      {"window", {{"since", nullptr}, {"until", "2026-11-29T03:12:49.198Z"}}}};
  const auto r = client::subsample_request_from_source(source);
  REQUIRE(r.has_value());
  CHECK(r->application == "mnist-app");
  CHECK(r->strategy == "stratified");
  CHECK(r->labeled == "any");
  CHECK(r->pseudo_label);
  CHECK(r->seed == 7);
  CHECK(r->n == 300);
  CHECK(r->test_fraction == 0.2);
  CHECK(r->since.empty());
  CHECK(r->until == "2026-11-29T03:12:49.198Z");

  // Not a subsample, or one written before the window was recorded: nothing to take again.
  CHECK_FALSE(client::subsample_request_from_source({{"kind", "npm"}}).has_value());
  auto old = source;
  old.erase("window");
  CHECK_FALSE(client::subsample_request_from_source(old).has_value());
  old = source;
  old["window"]["until"] = nullptr;
  CHECK_FALSE(client::subsample_request_from_source(old).has_value());
}

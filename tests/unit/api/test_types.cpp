#include "api/types.hpp"

#include <doctest/doctest.h>

namespace api = mlctl::api;
using mlctl::Error;
using nlohmann::json;

TEST_CASE("a detailed version round-trips through JSON; a summary has no details") {
  api::VersionInfo v;
  v.name = "mnist";
  v.version = 3;
  v.sha256 = std::string(64, 'a');
  v.size = 1234;
  v.created_at = "2026-11-28T12:00:00.000Z";
  v.uploader = "alice";
  v.aliases = {"production"};
  v.tags = {{"stage", "prod"}};
  json summary = v;
  CHECK(summary["ref"] == "mnist:3");
  CHECK_FALSE(summary.contains("contract"));
  v.detailed = true;
  v.contract = {{"inputs", json::array()}};
  v.files = {"model.onnx", "model.yaml"};
  v.used_by = {"application/app"};
  const json full = v;
  CHECK(full["metrics"].is_null());
  const auto back = full.get<api::VersionInfo>();
  CHECK(back.detailed);
  CHECK(back.ref() == "mnist:3");
  CHECK(back.tags.at("stage") == "prod");
  CHECK(back.files == v.files);
  CHECK(back.used_by == v.used_by);
  CHECK(json(back) == full);
}

TEST_CASE("events keep a null version and their detail") {
  api::Event e;
  e.id = 7;
  e.time = "t";
  e.actor = "bob";
  e.action = "gc";
  e.detail = {{"bytes_freed", 10}};
  const json j = e;
  CHECK(j["version"].is_null());
  const auto back = j.get<api::Event>();
  CHECK_FALSE(back.version.has_value());
  CHECK(back.detail["bytes_freed"] == 10);
  e.version = 2;
  CHECK(json(e).get<api::Event>().version == 2);
}

TEST_CASE("parse_json names what is wrong") {
  CHECK_THROWS_WITH_AS(api::parse_json<api::AliasUpdate>("{}", "request body"),
                       doctest::Contains("request body: "), Error);
  CHECK_THROWS_AS(api::parse_json<api::AliasUpdate>("not json", "request body"), Error);
  CHECK(api::parse_json<api::AliasUpdate>(R"({"version": 4})", "request body").version == 4);
  const auto t = api::parse_json<api::TagUpdate>(R"({"set": {"a": "1"}})", "body");
  CHECK(t.set.at("a") == "1");
  CHECK(t.remove.empty());
  CHECK_THROWS_AS(api::parse_json<api::TagUpdate>("[1]", "body"), Error);
  try {
    (void)api::parse_json<api::UploadResult>("{}", "http://x/y: unexpected response", mlctl::ErrorKind::internal);
    FAIL("no throw");
  } catch (const Error& e) {
    CHECK(e.kind() == mlctl::ErrorKind::internal);
  }
}

TEST_CASE("the direct writer of version lists equals nlohmann's dump") {
  api::VersionList list;
  list.name = "mnist";
  list.next_page_token = "2";
  for (int i = 1; i <= 3; ++i) {
    api::VersionInfo v;
    v.name = "mnist";
    v.version = i;
    v.sha256 = std::string(64, 'f');
    v.size = 100u * static_cast<unsigned>(i);
    v.created_at = "2026-11-28T12:00:00.000Z";
    v.uploader = "alice";
    list.versions.push_back(v);
  }
  list.versions[1].aliases = {"champion", "production"};
  list.versions[1].tags = {{"note", "say \"hi\" \\ caf\xc3\xa9"}, {"stage", "prod"}, {"z", "bad \xff utf8"}};
  CHECK(api::to_json_text(list) == json(list).dump(-1, ' ', false, json::error_handler_t::replace));
  list.versions.clear();
  CHECK(api::to_json_text(list) == json(list).dump());
  CHECK(json::parse(api::to_json_text(list))["versions"].empty());
}

// The registry over a real SQLite database in a temporary directory, with an injected clock.
#include "api/time.hpp"
#include "server/registry.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <doctest/doctest.h>
#include <functional>
#include <algorithm>
#include <filesystem>
#include <thread>

namespace fs = std::filesystem;
namespace api = mlctl::api;
namespace server = mlctl::server;
using mlctl::Error;
using mlctl::ErrorKind;

namespace {

struct Fixture {
  mlctl::util::TempDir dir;
  std::int64_t tick = 0;
  server::Registry registry{dir.path(), [this] {
                              return std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000 + tick++));
                            }};
  server::Actor alice{"alice", "127.0.0.1"};

  api::UploadResult add(const std::string& name, const std::string& bytes, bool force_new = false) {
    auto up = registry.artifacts().begin_upload();
    up->write(bytes.data(), bytes.size());
    up->finish();
    server::CheckedArtifact checked;
    checked.files = {"model.onnx", "model.yaml"};
    checked.card = {{"apiVersion", "mlctl/v1"},
                    {"kind", "Model"},
                    {"metadata", {{"name", name}}},
                    {"spec", {{"contract", {{"inputs", nlohmann::json::array()}}}, {"lineage", {{"seed", 7}}}}}};
    return registry.add_version(name, *up, checked, force_new, alice);
  }
};

api::VersionSelector v(std::int64_t n) {
  api::VersionSelector s;
  s.version = n;
  return s;
}
api::VersionSelector alias(const std::string& a) {
  api::VersionSelector s;
  s.alias = a;
  return s;
}

ErrorKind kind_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.kind();
  }
  FAIL("no error");
  return ErrorKind::internal;
}

} // namespace

TEST_CASE("versions are numbered per name; identical bytes are idempotent unless forced") {
  Fixture f;
  const auto a1 = f.add("mnist", "bytes-1");
  CHECK(a1.created);
  CHECK(a1.version.ref() == "mnist:1");
  CHECK(a1.version.uploader == "alice");
  CHECK(a1.version.created_at == api::format_time(std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000))));
  CHECK(a1.version.lineage["seed"] == 7);
  CHECK(a1.version.files == std::vector<std::string>{"model.onnx", "model.yaml"});
  CHECK(f.add("mnist", "bytes-2").version.version == 2);
  CHECK(f.add("other", "bytes-1").version.version == 1);
  const auto again = f.add("mnist", "bytes-1");
  CHECK_FALSE(again.created);
  CHECK(again.version.version == 1);
  const auto forced = f.add("mnist", "bytes-1", true);
  CHECK(forced.created);
  CHECK(forced.version.version == 3);
  CHECK(forced.version.sha256 == a1.version.sha256);
  // Temporaries of finished uploads are gone; two distinct artifacts are stored.
  CHECK(f.registry.artifacts().stale_temporaries().empty());
  CHECK(f.registry.artifacts().scan().size() == 2);
}

TEST_CASE("listing, paging and filters") {
  Fixture f;
  for (int i = 1; i <= 5; ++i) {
    f.add("mnist", "b" + std::to_string(i));
  }
  f.add("fashion", "f");
  server::VersionQuery q;
  q.limit = 2;
  auto page = f.registry.list_versions("mnist", q);
  CHECK(page.versions.size() == 2);
  CHECK(page.next_page_token == "2");
  q.page_token = 4;
  page = f.registry.list_versions("mnist", q);
  REQUIRE(page.versions.size() == 1);
  CHECK(page.versions[0].version == 5);
  CHECK(page.next_page_token.empty());
  q = {};
  q.descending = true;
  q.limit = 10;
  page = f.registry.list_versions("mnist", q);
  CHECK(page.versions.front().version == 5);
  CHECK_FALSE(page.versions.front().detailed);

  api::TagUpdate tags;
  tags.set = {{"stage", "prod"}};
  f.registry.update_tags("mnist", v(3), tags, f.alice);
  q = {};
  q.tags = {{"stage", "prod"}};
  page = f.registry.list_versions("mnist", q);
  REQUIRE(page.versions.size() == 1);
  CHECK(page.versions[0].version == 3);
  CHECK(page.versions[0].tags.at("stage") == "prod");

  server::ModelQuery mq;
  auto models = f.registry.list_models(mq);
  REQUIRE(models.models.size() == 2);
  CHECK(models.models[0].name == "fashion");
  CHECK(models.models[1].latest_version == 5);
  CHECK(models.models[1].version_count == 5);
  mq.prefix = "mn";
  CHECK(f.registry.list_models(mq).models.size() == 1);
  mq = {};
  mq.tags = {{"stage", "prod"}};
  CHECK(f.registry.list_models(mq).models.at(0).name == "mnist");
  mq = {};
  mq.limit = 1;
  CHECK(f.registry.list_models(mq).next_page_token == "fashion");

  CHECK(kind_of([&] { f.registry.list_versions("ghost", {}); }) == ErrorKind::not_found);
  CHECK(kind_of([&] { f.registry.list_versions("Bad", {}); }) == ErrorKind::invalid_input);
  server::VersionQuery too_many;
  too_many.limit = 10001;
  CHECK(kind_of([&] { f.registry.list_versions("mnist", too_many); }) == ErrorKind::invalid_input);
}

TEST_CASE("aliases move atomically, resolve anywhere a version is accepted, and go with their version") {
  Fixture f;
  f.add("mnist", "one");
  f.add("mnist", "two");
  CHECK(f.registry.set_alias("mnist", "production", 1, f.alice).version == 1);
  CHECK(f.registry.resolve("mnist", alias("production")) == 1);
  f.registry.set_alias("mnist", "production", 2, f.alice);
  CHECK(f.registry.get_version("mnist", alias("production")).version == 2);
  CHECK(f.registry.get_version("mnist", alias("latest")).version == 2);
  CHECK(f.registry.get_version("mnist", v(2)).aliases == std::vector<std::string>{"production"});
  CHECK_THROWS_WITH_AS(f.registry.set_alias("mnist", "staging", 9, f.alice), "model mnist:9 not found", Error);
  CHECK_THROWS_WITH_AS(f.registry.resolve("mnist", alias("staging")), "model mnist@staging not found (no such alias)",
                       Error);
  CHECK(f.registry.list_aliases("mnist").aliases.size() == 1);
  // Deleting the version takes its alias with it (and logs that).
  const auto del = f.registry.delete_version("mnist", alias("production"), f.alice);
  CHECK(del.version == 2);
  CHECK(del.artifact_removed);
  CHECK(del.bytes_freed == 3);
  CHECK(f.registry.list_aliases("mnist").aliases.empty());
  CHECK(f.registry.get_version("mnist", alias("latest")).version == 1);
  f.registry.set_alias("mnist", "champion", 1, f.alice);
  f.registry.delete_alias("mnist", "champion", f.alice);
  CHECK(kind_of([&] { f.registry.delete_alias("mnist", "champion", f.alice); }) == ErrorKind::not_found);
  // Numbers are never reused.
  CHECK(f.add("mnist", "three").version.version == 3);
}

TEST_CASE("a version in use cannot be deleted; shared bytes stay until the last reference goes") {
  Fixture f;
  f.add("mnist", "same");
  f.add("mnist", "same", true);
  {
    auto db = f.registry.pool().acquire();
    mlctl::server::sql::Transaction tx(*db, mlctl::server::sql::TransactionMode::immediate);
    server::set_version_usage(*db, "application/app", {{"mnist", 1}});
    tx.commit();
  }
  CHECK(f.registry.get_version("mnist", v(1)).used_by == std::vector<std::string>{"application/app"});
  CHECK_THROWS_WITH_AS(f.registry.delete_version("mnist", v(1), f.alice),
                       "model mnist:1 is in use by application/app; point those at another version (or delete "
                       "them) first",
                       Error);
  {
    auto db = f.registry.pool().acquire();
    server::set_version_usage(*db, "application/app", {});
  }
  auto d1 = f.registry.delete_version("mnist", v(1), f.alice);
  CHECK_FALSE(d1.artifact_removed);
  CHECK(f.registry.artifacts().scan().size() == 1);
  auto d2 = f.registry.delete_version("mnist", v(2), f.alice);
  CHECK(d2.artifact_removed);
  CHECK(f.registry.artifacts().scan().empty());
}

TEST_CASE("every change is in the audit log, with time and actor, queryable by id, time and name") {
  Fixture f;
  f.add("mnist", "one");
  f.registry.set_alias("mnist", "production", 1, f.alice);
  f.registry.set_alias("mnist", "production", 1, f.alice); // unchanged: not logged
  f.add("other", "x");
  api::TagUpdate t;
  t.set = {{"a", "b"}};
  f.registry.update_tags("mnist", v(1), t, f.alice);
  f.registry.delete_version("mnist", v(1), f.alice);
  auto all = f.registry.events({});
  std::vector<std::string> actions;
  for (const auto& e : all.events) {
    actions.push_back(e.action + (e.name.empty() ? "" : " " + e.name));
  }
  CHECK(actions == std::vector<std::string>{"version.created mnist", "alias.set mnist", "version.created other",
                                            "tags.updated mnist", "alias.deleted mnist", "version.deleted mnist"});
  CHECK(all.events[1].detail["previous"].is_null());
  CHECK(all.events[1].detail["remote"] == "127.0.0.1");
  CHECK(all.events[0].actor == "alice");
  CHECK(all.next_since == all.events.back().id);

  auto q = server::parse_event_query(std::to_string(all.events[2].id), "", "mnist", "");
  auto later = f.registry.events(q);
  REQUIRE(later.events.size() == 3);
  CHECK(later.events[0].action == "tags.updated");
  q = server::parse_event_query(all.events[1].time, all.events[3].time, "", "");
  auto window = f.registry.events(q);
  REQUIRE(window.events.size() == 2);
  CHECK(window.events[0].action == "alias.set");
  q = server::parse_event_query("", "", "", "1");
  CHECK(f.registry.events(q).events.size() == 1);
  CHECK_THROWS_AS(server::parse_event_query("yesterday", "", "", ""), Error);
  CHECK_THROWS_AS(server::parse_event_query("", "", "", "0"), Error);
  CHECK_THROWS_AS(server::parse_event_query("", "", "../x", ""), Error);
}

TEST_CASE("recover and gc remove what no version references, never what one does") {
  Fixture f;
  const auto kept = f.add("mnist", "kept-bytes");
  const auto root = f.dir.path();
  mlctl::util::write_file_atomic(root / "artifacts" / "sha256" / "ab" / std::string(64, 'a'), "orphan");
  mlctl::util::write_file_atomic(root / "tmp" / "upload-crashed", "partial");
  auto dry = f.registry.gc(true, f.alice);
  CHECK(dry.dry_run);
  CHECK(dry.files_removed == 2);
  CHECK(fs::exists(root / "tmp" / "upload-crashed"));
  auto report = f.registry.gc(false, f.alice);
  CHECK(report.files_removed == 2);
  CHECK(report.bytes_freed == 6 + 7);
  CHECK(f.registry.artifacts().contains(kept.version.sha256));
  CHECK(f.registry.events({}).events.back().action == "gc");

  mlctl::util::write_file_atomic(root / "artifacts" / "sha256" / "cd" / std::string(64, 'c'), "orphan2");
  mlctl::util::write_file_atomic(root / "tmp" / "scratch-x" / "model.onnx", "s");
  fs::remove(f.registry.artifacts().path_for(kept.version.sha256));
  const auto rec = f.registry.recover();
  CHECK(rec.orphans_removed == 1);
  CHECK(rec.temporaries_removed == 1);
  CHECK(rec.missing_artifacts == std::vector<std::string>{"mnist:1"});
}

TEST_CASE("concurrent adds get distinct, gap-free versions") {
  Fixture f;
  std::vector<std::thread> threads;
  std::vector<std::int64_t> got(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] { got[static_cast<std::size_t>(i)] = f.add("busy", "payload-" + std::to_string(i)).version.version; });
  }
  for (auto& t : threads) {
    t.join();
  }
  std::sort(got.begin(), got.end());
  CHECK(got == std::vector<std::int64_t>{1, 2, 3, 4, 5, 6, 7, 8});
}

TEST_CASE("the registry reopens with its data (a restart)") {
  mlctl::util::TempDir dir;
  std::string sha;
  {
    server::Registry r(dir.path());
    auto up = r.artifacts().begin_upload();
    up->write("abc", 3);
    up->finish();
    server::CheckedArtifact c;
    c.card = nlohmann::json::object();
    sha = r.add_version("m", *up, c, false, {}).version.sha256;
  }
  server::Registry again(dir.path());
  CHECK(again.recover().orphans_removed == 0);
  CHECK(again.get_version("m", v(1)).sha256 == sha);
}

#include "api/base64.hpp"
#include "server/health.hpp"
#include "server/migrations.hpp"
#include "server/request_store.hpp"
#include "server/subsample.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <cstdio>
#include <doctest/doctest.h>
#include <map>
#include <set>
#include <tuple>

using namespace mlctl;
using namespace std::chrono_literals;

namespace {

// Stores `n` one-image requests of application "app": image k is filled with k % 256, its
// predicted class is k % 10 for k < n/2 and 0 afterwards (so class 0 is over-represented), and
// every third request gets the label of its prediction.
// Request k of application "app" (model m:1): one image filled with k % 256, class `cls`.
std::shared_ptr<server::InferenceRecord> one_image(int k, std::string time, int cls) {
  auto r = std::make_shared<server::InferenceRecord>();
  char trace[33];
  std::snprintf(trace, sizeof trace, "%016x%016x", k + 1, k + 1);
  r->trace_id = trace;
  r->application = "app";
  r->model = "m";
  r->version = 1;
  r->variant = "primary";
  r->time = std::move(time);
  r->batch = 1;
  r->input.assign(784, static_cast<float>(k % 256) / 255.0f);
  r->classes = {cls};
  r->probabilities.assign(10, 0.1f);
  return r;
}

void fill(server::RequestStore& store, int n) {
  std::vector<api::FeedbackItem> labels;
  for (int k = 0; k < n; ++k) {
    const auto r = one_image(k,
                             "2026-11-28T12:00:" + std::string(k % 60 < 10 ? "0" : "") +
                                 std::to_string(k % 60) + ".000Z",
                             k < n / 2 ? k % 10 : 0);
    store.on_inference(r);
    if (k % 3 == 0) {
      labels.push_back({r->trace_id, r->classes[0], std::nullopt});
    }
  }
  REQUIRE(store.flush(10s));
  store.add_feedback(labels, "app", "2026-11-28T13:00:00.000Z");
}

} // namespace

TEST_CASE("subsample: reservoir and stratified samples of stored requests") {
  util::TempDir dir;
  server::RequestStoreOptions options;
  options.path = dir.path() / "requests.db";
  server::RequestStore store(options, {});
  fill(store, 600);

  server::SubsampleQuery q;
  q.application = "app";
  q.n = 50;
  q.labelled_only = false;
  const auto a = server::subsample(store, q);
  CHECK(a.scanned == 600);
  REQUIRE(a.rows.size() == 50);
  std::set<std::string> traces;
  for (const auto& r : a.rows) {
    traces.insert(r.trace_id);
    REQUIRE(r.input.size() == 784);
  }
  CHECK(traces.size() == 50);
  CHECK(server::subsample(store, q).rows.front().trace_id == a.rows.front().trace_id); // seeded
  q.seed = 43;
  CHECK(server::subsample(store, q).rows.front().trace_id != a.rows.front().trace_id);

  // Stratified keeps the production proportions: class 0 is 300 + 30 of 600 rows = 55%.
  q.strategy = "stratified";
  q.n = 100;
  const auto s = server::subsample(store, q);
  REQUIRE(s.rows.size() == 100);
  int zeros = 0;
  for (const auto& r : s.rows) {
    zeros += r.predicted == 0 ? 1 : 0;
  }
  CHECK(zeros == 55);
  CHECK(s.class_counts.at(0) == 330);

  // Labelled only: every third request.
  q.labelled_only = true;
  q.strategy = "reservoir";
  q.n = 1000;
  const auto l = server::subsample(store, q);
  CHECK(l.scanned == 200);
  CHECK(l.rows.size() == 200);
  for (const auto& r : l.rows) {
    CHECK(r.label == r.predicted);
  }
  const auto j = server::to_json(q, l);
  CHECK(j["count"] == 200);
  CHECK(api::base64_decode(j["rows"][0]["input"].get<std::string>(), "input") == l.rows[0].input);

  q.n = 0;
  CHECK_THROWS_WITH_AS(server::subsample(store, q), "n: must be 1..100000, got 0", Error);
  q.n = 5;
  q.strategy = "newest";
  CHECK_THROWS_WITH_AS(server::validate(q),
                       "strategy: must be reservoir or stratified, got 'newest'", Error);
}

TEST_CASE("subsample: base64 round trip") {
  for (std::size_t n = 0; n < 8; ++n) {
    std::vector<std::uint8_t> bytes(n);
    for (std::size_t i = 0; i < n; ++i) {
      bytes[i] = static_cast<std::uint8_t>(250 + i);
    }
    CHECK(api::base64_decode(api::base64_encode(bytes.data(), n), "x") == bytes);
  }
  const std::uint8_t man[] = {'M', 'a', 'n'};
  CHECK(api::base64_encode(man, 3) == "TWFu");
  CHECK_THROWS_WITH_AS(api::base64_decode("a$b", "rows[].input"), "rows[].input: not base64",
                       Error);
}

TEST_CASE("health: events are stored and listed per application, oldest first") {
  util::TempDir dir;
  auto db = server::sql::Database::open(dir.path() / "registry.db");
  server::apply_migrations(*db);
  server::HealthEvent e;
  e.time = "2026-11-28T12:00:00.000Z";
  e.application = "a";
  e.model = "m";
  e.version = 2;
  e.from = "healthy";
  e.to = "unhealthy";
  e.monitor = "reconstruction";
  e.value = 0.5;
  e.threshold = 0.1;
  const auto first = server::store_health_event(*db, e);
  e.to = "healthy";
  e.from = "unhealthy";
  server::store_health_event(*db, e);
  e.application = "b";
  server::store_health_event(*db, e);
  const auto events = server::list_health_events(*db, "a", 10);
  REQUIRE(events.size() == 2);
  CHECK(events[0].id == first);
  CHECK(events[0].to == "unhealthy");
  CHECK(events[1].to == "healthy");
  CHECK(server::to_json(events[0])["ref"] == "m:2");
  CHECK(server::list_health_events(*db, "a", 1).at(0).to == "healthy");
}

namespace {

// Stores `n` one-image requests of application "app" with predicted class `cls(k)`.
template <class Cls> void fill_classes(server::RequestStore& store, int n, Cls cls) {
  for (int k = 0; k < n; ++k) {
    store.on_inference(one_image(k, "2026-11-28T12:00:00.000Z", cls(k)));
  }
  REQUIRE(store.flush(10s));
}

} // namespace

TEST_CASE("subsample: reservoir sampling is uniform over the stored rows") {
  util::TempDir dir;
  server::RequestStoreOptions options;
  options.path = dir.path() / "requests.db";
  server::RequestStore store(options, {});
  constexpr int rows = 100;
  constexpr int n = 10;
  constexpr int draws = 400;
  fill_classes(store, rows, [](int k) { return k % 10; });
  std::map<std::string, int> hits;
  server::SubsampleQuery q;
  q.application = "app";
  q.n = n;
  q.labelled_only = false;
  for (int seed = 0; seed < draws; ++seed) {
    q.seed = static_cast<std::uint64_t>(seed);
    const auto s = server::subsample(store, q);
    REQUIRE(s.rows.size() == n);
    for (const auto& r : s.rows) {
      ++hits[r.trace_id];
    }
  }
  // Each row is expected draws * n / rows = 40 times. Pearson's chi-square over the 100 rows
  // has 99 degrees of freedom (mean 99, sd 14): under 170 is a 5-sigma bound for a uniform
  // sampler, while one that favours the first or last rows, or repeats a sample, is far above.
  CHECK(hits.size() == rows);
  const double expected = static_cast<double>(draws) * n / rows;
  double chi2 = 0;
  int first_half = 0;
  for (int k = 0; k < rows; ++k) {
    char trace[33];
    std::snprintf(trace, sizeof trace, "%016x%016x", k + 1, k + 1);
    const double h = hits[trace];
    chi2 += (h - expected) * (h - expected) / expected;
    first_half += k < rows / 2 ? static_cast<int>(h) : 0;
  }
  CHECK(chi2 < 170);
  // Half of the 4000 picks from the older half: sd ~ 32 (less without replacement).
  CHECK(first_half > 2000 - 160);
  CHECK(first_half < 2000 + 160);
}

TEST_CASE("subsample: stratified samples keep the class proportions exactly") {
  util::TempDir dir;
  server::RequestStoreOptions options;
  options.path = dir.path() / "requests.db";
  server::RequestStore store(options, {});
  // 50% class 3, 30% class 1, 20% class 7, interleaved.
  fill_classes(store, 1000, [](int k) { return k % 10 < 5 ? 3 : k % 10 < 8 ? 1 : 7; });
  server::SubsampleQuery q;
  q.application = "app";
  q.labelled_only = false;
  q.strategy = "stratified";
  for (const auto& [n, want3, want1, want7] :
       {std::tuple{100, 50, 30, 20}, std::tuple{7, 4, 2, 1}, std::tuple{1000, 500, 300, 200}}) {
    q.n = static_cast<std::size_t>(n);
    const auto s = server::subsample(store, q);
    std::map<std::int64_t, int> by_class;
    std::set<std::string> traces;
    for (const auto& r : s.rows) {
      ++by_class[r.predicted];
      traces.insert(r.trace_id);
      CHECK(r.input.size() == 784);
    }
    CHECK(s.scanned == 1000);
    CHECK(traces.size() == s.rows.size());
    CHECK(by_class[3] == want3);
    CHECK(by_class[1] == want1);
    CHECK(by_class[7] == want7);
  }
}

#include "api/requests.hpp"
#include "server/request_store.hpp"
#include "server/sqlite.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <cstdio>
#include <doctest/doctest.h>
#include <filesystem>
#include <set>

using mlctl::Error;
using mlctl::ErrorKind;
using mlctl::server::InferenceRecord;
using mlctl::server::RequestStore;
using mlctl::server::RequestStoreOptions;
namespace api = mlctl::api;
namespace server = mlctl::server;

namespace {

std::string trace_id(int n) {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%032x", n + 1);
  return buf;
}

// A record of `batch` images whose pixels are `value` and whose predicted class is `n % 10`.
std::shared_ptr<InferenceRecord> record(int n, std::size_t batch = 1, float value = 0.5F,
                                        const std::string& app = "app",
                                        const std::string& time = {}) {
  auto r = std::make_shared<InferenceRecord>();
  r->trace_id = trace_id(n);
  r->application = app;
  r->model = "mnist";
  r->version = 3;
  r->variant = "primary";
  char t[40];
  std::snprintf(t, sizeof t, "2026-11-28T12:%02d:%02d.%03dZ", (n / 60000) % 60, (n / 1000) % 60,
                n % 1000);
  r->time = time.empty() ? std::string(t) : time;
  r->latency_seconds = 0.001;
  r->batch = batch;
  r->input.assign(batch * 784, value);
  for (std::size_t i = 0; i < batch; ++i) {
    r->classes.push_back((n + static_cast<int>(i)) % 10);
    for (int c = 0; c < 10; ++c) {
      r->probabilities.push_back(c == r->classes.back() ? 0.91F : 0.01F);
    }
  }
  return r;
}

RequestStoreOptions options(const mlctl::util::TempDir& dir) {
  RequestStoreOptions o;
  o.path = dir.path() / "requests.db";
  return o;
}

} // namespace

TEST_CASE("capture sampling is a deterministic hash of the trace id") {
  CHECK(server::capture_keeps("0af7651916cd43dd8448eb211c80319c", 1.0));
  CHECK_FALSE(server::capture_keeps("0af7651916cd43dd8448eb211c80319c", 0.0));
  // FNV-1a 64 of this id, top 53 bits as a fraction: 0.85488... (pinned: the rule is documented).
  CHECK(server::capture_keeps("0af7651916cd43dd8448eb211c80319c", 0.855));
  CHECK_FALSE(server::capture_keeps("0af7651916cd43dd8448eb211c80319c", 0.854));
  int kept = 0;
  for (int i = 0; i < 20000; ++i) {
    const bool k = server::capture_keeps(trace_id(i * 7919), 0.1);
    CHECK(k == server::capture_keeps(trace_id(i * 7919), 0.1));
    kept += k ? 1 : 0;
  }
  CHECK(kept > 1700);
  CHECK(kept < 2300);
}

TEST_CASE("the request store keeps one row per image with pixels, class and probabilities") {
  mlctl::util::TempDir dir;
  RequestStore store(options(dir), {});
  auto r = record(7, 2, 0.5F);
  r->input[784 + 3] = 1.0F; // second image, pixel 3
  store.on_inference(r);
  auto refused = std::make_shared<InferenceRecord>();
  refused->trace_id = trace_id(8);
  refused->application = "app";
  refused->model = "mnist";
  refused->version = 3;
  refused->variant = "primary";
  refused->time = "2026-11-28T13:00:00.000Z";
  refused->status = 400;
  refused->error = "images[0]: expected 784 values, got 783";
  store.on_inference(refused);
  REQUIRE(store.flush(std::chrono::seconds(10)));

  const auto t = store.trace(trace_id(7), true);
  REQUIRE(t.requests.size() == 2);
  CHECK(t.requests[0].index == 0);
  CHECK(t.requests[1].index == 1);
  CHECK(t.requests[0].input.size() == 784);
  CHECK(t.requests[0].input[0] == 128); // round(0.5 * 255)
  CHECK(t.requests[1].input[3] == 255);
  CHECK(t.requests[0].predicted == 7);
  CHECK(t.requests[1].predicted == 8);
  REQUIRE(t.requests[1].probabilities.size() == 10);
  CHECK(t.requests[1].probabilities[8] == doctest::Approx(0.91));
  CHECK(t.requests[0].model_ref() == "mnist:3");
  CHECK_FALSE(t.requests[0].label.has_value());
  CHECK(store.trace(trace_id(7), false).requests[0].input.empty());

  const auto e = store.trace(trace_id(8), true);
  REQUIRE(e.requests.size() == 1);
  CHECK(e.requests[0].status == 400);
  CHECK(e.requests[0].error == "images[0]: expected 784 values, got 783");
  CHECK_FALSE(e.requests[0].predicted.has_value());
  CHECK(e.requests[0].input.empty());

  const auto s = store.stats();
  CHECK(s.records_stored == 2);
  CHECK(s.rows_stored == 3);
  CHECK(s.records_dropped == 0);
  CHECK(s.queue_records == 0);
}

TEST_CASE("a full queue drops and counts instead of blocking") {
  mlctl::util::TempDir dir;
  auto o = options(dir);
  o.queue_capacity = 4;
  o.batch_size = 1000;
  o.flush_interval = std::chrono::seconds(30); // the writer waits: the queue stays full
  RequestStore store(o, {});
  for (int i = 0; i < 10; ++i) {
    store.on_inference(record(i));
  }
  auto s = store.stats();
  CHECK(s.records_received == 10);
  CHECK(s.records_dropped == 6);
  CHECK(s.queue_records == 4);
  CHECK(s.queue_images == 4);
  REQUIRE(store.flush(std::chrono::seconds(10)));
  s = store.stats();
  CHECK(s.records_stored == 4);
  CHECK(s.queue_records == 0);
  CHECK(store.trace(trace_id(3), false).requests.size() == 1);
  CHECK(store.trace(trace_id(4), false).requests.empty());
}

TEST_CASE("the writer drains the queue in batches, one transaction each") {
  mlctl::util::TempDir dir;
  auto o = options(dir);
  o.queue_capacity = 100000;
  o.batch_size = 1000;
  o.flush_interval = std::chrono::seconds(30); // only a full batch or a flush wakes the writer
  RequestStore store(o, {});
  for (int i = 0; i < 2500; ++i) {
    store.on_inference(record(i));
  }
  REQUIRE(store.flush(std::chrono::seconds(30)));
  const auto s = store.stats();
  CHECK(s.records_stored == 2500);
  CHECK(s.batches >= 1);
  CHECK(s.batches <= 3);
  server::RowQuery q;
  q.application = "app";
  CHECK(store.count_rows(q) == 2500);
}

TEST_CASE("sampled capture stores the records whose trace id hashes under the share") {
  mlctl::util::TempDir dir;
  RequestStore store(options(dir), {});
  int expected = 0;
  for (int i = 0; i < 1000; ++i) {
    auto r = record(i);
    r->capture_sample = 0.25;
    expected += server::capture_keeps(r->trace_id, 0.25) ? 1 : 0;
    store.on_inference(r);
  }
  REQUIRE(store.flush(std::chrono::seconds(10)));
  const auto s = store.stats();
  CHECK(s.records_stored == static_cast<std::uint64_t>(expected));
  CHECK(s.records_sampled_out == static_cast<std::uint64_t>(1000 - expected));
  server::RowQuery q;
  q.application = "app";
  CHECK(store.count_rows(q) == expected);
}

TEST_CASE("retention keeps the newest rows") {
  mlctl::util::TempDir dir;
  auto o = options(dir);
  o.max_rows = 100;
  o.batch_size = 64;
  {
    RequestStore store(o, {});
    for (int i = 0; i < 250; ++i) {
      store.on_inference(record(i));
    }
    REQUIRE(store.flush(std::chrono::seconds(10)));
    server::RowQuery q;
    q.application = "app";
    CHECK(store.count_rows(q) == 100);
    CHECK(store.stats().rows_deleted == 150);
    CHECK(store.trace(trace_id(149), false).requests.empty());
    CHECK(store.trace(trace_id(150), false).requests.size() == 1);
    CHECK(store.trace(trace_id(249), false).requests.size() == 1);
  }
  // Reopened: the rows persisted, retention still counts them.
  RequestStore store(o, {});
  store.on_inference(record(250));
  REQUIRE(store.flush(std::chrono::seconds(10)));
  server::RowQuery q;
  q.application = "app";
  CHECK(store.count_rows(q) == 100);
  CHECK(store.trace(trace_id(150), false).requests.empty());
}

TEST_CASE("feedback joins labels by trace id and index; accuracy counts labelled rows") {
  mlctl::util::TempDir dir;
  RequestStore store(options(dir), {});
  store.on_inference(record(1));    // predicts 1
  store.on_inference(record(2, 2)); // predicts 2, 3
  auto shadow = record(1);          // the same trace answered by a shadow variant
  shadow->version = 4;
  shadow->variant = "shadow";
  shadow->classes = {5};
  store.on_inference(shadow);
  store.on_inference(record(9)); // never labelled
  // No flush: add_feedback waits for the queued records itself.
  const auto result = store.add_feedback({{trace_id(1), 1, std::nullopt},
                                          {trace_id(2), 2, 0},
                                          {trace_id(2), 9, 1},
                                          {trace_id(2), 0, 5},
                                          {trace_id(77), 3, std::nullopt}},
                                         "app", "2026-11-28T14:00:00.000Z");
  CHECK(result.received == 5);
  CHECK(result.matched == 3);
  CHECK(result.rows_labelled == 4); // trace 1 has a primary and a shadow row
  CHECK(result.unknown == 2);
  CHECK(result.unknown_trace_ids == std::vector<std::string>{trace_id(2), trace_id(77)});

  const auto other_app =
      store.add_feedback({{trace_id(1), 1, std::nullopt}}, "other", "2026-11-28T14:00:00.000Z");
  CHECK(other_app.matched == 0);

  const auto acc = store.accuracy("app");
  REQUIRE(acc.size() == 2);
  CHECK(acc[0].version == 3);
  CHECK(acc[0].labelled == 3);
  CHECK(acc[0].correct == 2); // 1 right, 2 right, 3 wrong (label 9)
  CHECK(acc[0].accuracy == doctest::Approx(2.0 / 3));
  CHECK(acc[1].version == 4);
  CHECK(acc[1].labelled == 1);
  CHECK(acc[1].correct == 0);

  server::RowQuery q;
  q.application = "app";
  q.labelled_only = true;
  std::set<std::string> seen;
  const auto n = store.for_each_row(q, [&](const api::StoredRequest& row) {
    CHECK(row.label.has_value());
    CHECK(row.input.size() == 784);
    CHECK(row.labelled_at == "2026-11-28T14:00:00.000Z");
    seen.insert(row.trace_id + "/" + std::to_string(row.index) + "/" + row.variant);
    return true;
  });
  CHECK(n == 4);
  CHECK(seen.size() == 4);
  q.labelled_only = false;
  int visited = 0;
  store.for_each_row(q, [&](const api::StoredRequest&) { return ++visited < 2; });
  CHECK(visited == 2);
}

TEST_CASE("listing pages through an application's rows newest first within a time range") {
  mlctl::util::TempDir dir;
  RequestStore store(options(dir), {});
  for (int i = 0; i < 25; ++i) {
    store.on_inference(record(i * 1000)); // one second apart
  }
  store.on_inference(record(99, 1, 0.5F, "other"));
  REQUIRE(store.flush(std::chrono::seconds(10)));
  server::RequestListQuery q;
  q.application = "app";
  q.limit = 10;
  std::vector<std::string> times;
  int pages = 0;
  do {
    const auto page = store.list(q);
    ++pages;
    for (const auto& r : page.requests) {
      times.push_back(r.time);
      CHECK(r.input.empty());
    }
    q.page_token = page.next_page_token;
  } while (!q.page_token.empty());
  CHECK(pages == 3);
  REQUIRE(times.size() == 25);
  CHECK(times.front() == "2026-11-28T12:00:24.000Z");
  CHECK(times.back() == "2026-11-28T12:00:00.000Z");
  CHECK(std::is_sorted(times.rbegin(), times.rend()));

  server::RequestListQuery range;
  range.application = "app";
  range.since = "2026-11-28T12:00:10Z";
  range.until = "2026-11-28T12:00:15Z";
  range.ascending = true;
  range.include_input = true;
  const auto page = store.list(range);
  REQUIRE(page.requests.size() == 5);
  CHECK(page.requests[0].time == "2026-11-28T12:00:10.000Z");
  CHECK(page.requests[0].input.size() == 784);
  CHECK(page.next_page_token.empty());

  range.page_token = "garbage";
  CHECK_THROWS_WITH_AS(store.list(range), "page_token 'garbage': not a token of this listing",
                       Error);
  range.page_token.clear();
  range.since = "yesterday";
  CHECK_THROWS_WITH_AS(store.list(range),
                       "since 'yesterday': expected an RFC 3339 time or an age like 10m", Error);
}

TEST_CASE("feedback bodies are validated with the item's path") {
  using nlohmann::json;
  const auto items = api::parse_feedback(json::parse(
      R"([{"trace_id": "0af7651916cd43dd8448eb211c80319c", "label": 7}, {"trace_id": "0af7651916cd43dd8448eb211c80319d", "label": 3, "index": 2}])"));
  REQUIRE(items.size() == 2);
  CHECK(items[0].label == 7);
  CHECK_FALSE(items[0].index.has_value());
  CHECK(items[1].index == 2);
  CHECK_THROWS_WITH_AS(api::parse_feedback(json::parse(R"([{"trace_id": "xyz", "label": 1}])")),
                       "feedback[0].trace_id: must be 32 lowercase hex digits", Error);
  CHECK_THROWS_WITH_AS(api::parse_feedback(json::parse(
                           R"([{"trace_id": "0af7651916cd43dd8448eb211c80319c", "label": -1}])")),
                       "feedback[0].label: must be an integer >= 0", Error);
  CHECK_THROWS_WITH_AS(api::parse_feedback(json::parse(
                           R"([{"trace_id": "0af7651916cd43dd8448eb211c80319c", "labl": 1}])")),
                       "feedback[0].labl: unknown field", Error);
  CHECK(
      api::parse_time_or_age("10m", std::chrono::system_clock::time_point(std::chrono::hours(1))) ==
      std::chrono::system_clock::time_point(std::chrono::minutes(50)));
  CHECK_FALSE(api::parse_time_or_age("10x", std::chrono::system_clock::now()).has_value());
}

TEST_CASE("the request store migrates a requests.db of schema 1 (images inline) and keeps it") {
  mlctl::util::TempDir dir;
  {
    // Schema 1 as released: the image in the `input` column of `requests`.
    auto db = server::sql::Database::open(dir.path() / "requests.db");
    db->exec(R"sql(
CREATE TABLE requests (
  id INTEGER PRIMARY KEY, trace_key INTEGER NOT NULL, trace_id TEXT NOT NULL,
  idx INTEGER NOT NULL, application TEXT NOT NULL, stage INTEGER NOT NULL, model TEXT NOT NULL,
  version INTEGER NOT NULL, variant TEXT NOT NULL, time TEXT NOT NULL, latency REAL NOT NULL,
  status INTEGER NOT NULL, error TEXT, predicted INTEGER, probabilities BLOB, input BLOB,
  label INTEGER, labelled_at TEXT);
CREATE INDEX requests_by_time ON requests(application, time);
CREATE INDEX requests_by_trace ON requests(trace_key);
CREATE INDEX requests_labelled ON requests(application, time) WHERE label IS NOT NULL;
PRAGMA user_version = 1;
)sql");
    auto insert = db->prepare(
        "INSERT INTO requests (trace_key, trace_id, idx, application, stage, model, version, "
        "variant, time, latency, status, error, predicted, input, label) "
        "VALUES (?, ?, 0, 'app', 0, 'mnist', 3, 'primary', ?, 0.001, ?, ?, ?, ?, ?)");
    for (int k = 0; k < 3; ++k) {
      const std::vector<std::uint8_t> pixels(784, static_cast<std::uint8_t>(10 + k));
      insert.reset();
      insert.bind(1, std::int64_t{0}).bind(2, trace_id(k)); // trace_key: first 16 hex digits
      insert.bind(3, "2026-11-28T12:00:0" + std::to_string(k) + ".000Z");
      insert.bind(4, 200).bind(5, nullptr).bind(6, k);
      insert.bind_blob(7, pixels);
      insert.bind(8, k == 1 ? std::optional<std::int64_t>(1) : std::nullopt);
      insert.run();
    }
    // A request refused before decoding: no image, no class.
    insert.reset();
    insert.bind(1, std::int64_t{0}).bind(2, trace_id(3)).bind(3, "2026-11-28T12:00:03.000Z");
    insert.bind(4, 400).bind(5, "bad shape").bind(6, nullptr).bind(7, nullptr).bind(8, nullptr);
    insert.run();
  }
  {
    RequestStore store(options(dir), {});
    const auto t = store.trace(trace_id(2), true);
    REQUIRE(t.requests.size() == 1);
    CHECK(t.requests[0].input == std::vector<std::uint8_t>(784, 12));
    CHECK(t.requests[0].predicted == 2);
    const auto refused = store.trace(trace_id(3), true);
    REQUIRE(refused.requests.size() == 1);
    CHECK(refused.requests[0].input.empty());
    CHECK(refused.requests[0].error == "bad shape");

    mlctl::server::RequestListQuery lq;
    lq.application = "app";
    lq.include_input = true;
    const auto list = store.list(lq);
    REQUIRE(list.requests.size() == 4);
    CHECK(list.requests[3].input == std::vector<std::uint8_t>(784, 10)); // newest first

    // The labelled row is found by the sampler's index, the refused one is not a candidate.
    mlctl::server::RowQuery rq;
    rq.application = "app";
    rq.labelled_only = true;
    std::vector<std::int64_t> labelled;
    store.for_each_class(rq, [&](std::int64_t id, std::int64_t, std::int64_t label) {
      labelled.push_back(id);
      CHECK(label == 1);
    });
    CHECK(labelled == std::vector<std::int64_t>{2});
    rq.labelled_only = false;
    CHECK(store.for_each_class(rq, [](std::int64_t, std::int64_t, std::int64_t) {}) == 3);

    // New rows are written in schema 3 next to the migrated ones: their images in files.
    store.on_inference(record(50, 1, 1.0F));
    REQUIRE(store.flush(std::chrono::seconds(10)));
    const auto fresh = store.trace(trace_id(50), true);
    REQUIRE(fresh.requests.size() == 1);
    CHECK(fresh.requests[0].input == std::vector<std::uint8_t>(784, 255));
  }
  auto db = server::sql::Database::open(dir.path() / "requests.db");
  auto version = db->prepare("PRAGMA user_version");
  REQUIRE(version.step());
  CHECK(version.int64(0) == 3);
  auto inputs = db->prepare("SELECT COUNT(*) FROM request_inputs");
  REQUIRE(inputs.step());
  CHECK(inputs.int64(0) == 3); // the migrated images; the new one is in requests-images/
  auto place = db->prepare("SELECT input_segment, input_offset, input_size FROM requests "
                           "WHERE input_segment IS NOT NULL");
  REQUIRE(place.step());
  CHECK(place.int64(0) == 1);
  CHECK(place.int64(1) == 0);
  CHECK(place.int64(2) == 784);
  CHECK_FALSE(place.step());
  CHECK(std::filesystem::file_size(dir.path() / "requests-images" / "00000001.u8") == 784);
  auto columns =
      db->prepare("SELECT COUNT(*) FROM pragma_table_info('requests') WHERE name = 'input'");
  REQUIRE(columns.step());
  CHECK(columns.int64(0) == 0);
}

TEST_CASE("a writer that never pauses still gets its WAL started over: the WAL stays bounded") {
  mlctl::util::TempDir dir;
  auto o = options(dir);
  o.queue_capacity = 100000;
  o.batch_size = 500;
  RequestStore store(o, {});
  // ~60 MB of rows and indexes in back-to-back batches (refused requests with long messages:
  // images would go to their own files).
  for (int i = 0; i < 60000; ++i) {
    auto r = record(i);
    r->input.clear();
    r->classes.clear();
    r->probabilities.clear();
    r->status = 400;
    r->error = std::string(800, 'e');
    store.on_inference(r);
    if (i % 5000 == 4999) {
      REQUIRE(store.flush(std::chrono::seconds(60)));
    }
  }
  REQUIRE(store.flush(std::chrono::seconds(60)));
  CHECK(store.stats().records_stored == 60000);
  const auto wal = dir.path() / "requests.db-wal";
  REQUIRE(std::filesystem::exists(wal));
  // The WAL starts over past 16 MB (its file keeps its largest size, 22 MB here; 61 MB when
  // nothing starts it over).
  CHECK(std::filesystem::file_size(wal) < (40u << 20));
  CHECK(std::filesystem::file_size(dir.path() / "requests.db") > (40u << 20));
}

namespace {

std::set<std::string> files_in(const std::filesystem::path& dir) {
  std::set<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.insert(e.path().filename().string());
  }
  return names;
}

} // namespace

TEST_CASE("images go to append-only files beside the database; retention unlinks whole files") {
  mlctl::util::TempDir dir;
  auto o = options(dir);
  o.max_rows = 50;
  o.batch_size = 16;
  o.image_segment_bytes = 10 * 784; // ten images a file
  const auto images = dir.path() / "requests-images";
  // What a crash between a retention and its unlinks leaves: a file no row names.
  std::filesystem::create_directories(images);
  mlctl::util::write_file_atomic(images / "00000001.u8", std::string(784, 'x'));
  {
    RequestStore store(o, {});
    for (int i = 0; i < 200; ++i) {
      store.on_inference(record(i, 1, static_cast<float>(i % 256) / 255.0F));
    }
    REQUIRE(store.flush(std::chrono::seconds(10)));
    // New files start after the last one there: rows 150..199 are kept, files 17..21 hold
    // them; 2..16 and the stray 1 are gone.
    CHECK(files_in(images) == std::set<std::string>{"00000017.u8", "00000018.u8", "00000019.u8",
                                                    "00000020.u8", "00000021.u8"});
    CHECK(std::filesystem::file_size(images / "00000021.u8") == 10 * 784);
    mlctl::server::RowQuery q;
    q.application = "app";
    int n = 0;
    store.for_each_row(q, [&](const api::StoredRequest& r) {
      const auto i = 150 + n++;
      CHECK(r.trace_id == trace_id(i));
      CHECK(r.input == std::vector<std::uint8_t>(784, static_cast<std::uint8_t>(i % 256)));
      return true;
    });
    CHECK(n == 50);
  }
  // Reopened: new images start a new file (the tail of the last one may hold an uncommitted
  // batch), the old ones still read.
  RequestStore store(o, {});
  store.on_inference(record(500, 2, 1.0F));
  REQUIRE(store.flush(std::chrono::seconds(10)));
  CHECK(std::filesystem::file_size(images / "00000022.u8") == 2 * 784);
  CHECK(store.trace(trace_id(500), true).requests.at(1).input ==
        std::vector<std::uint8_t>(784, 255));
  CHECK(store.trace(trace_id(199), true).requests.at(0).input ==
        std::vector<std::uint8_t>(784, 199));
}

TEST_CASE("a row whose image file is gone or cut short reads without an image") {
  mlctl::util::TempDir dir;
  auto o = options(dir);
  o.image_segment_bytes = 784;
  RequestStore store(o, {});
  for (int i = 0; i < 3; ++i) {
    store.on_inference(record(i));
  }
  REQUIRE(store.flush(std::chrono::seconds(10)));
  const auto images = dir.path() / "requests-images";
  std::filesystem::remove(images / "00000001.u8");
  std::filesystem::resize_file(images / "00000002.u8", 700);
  CHECK(store.trace(trace_id(0), true).requests.at(0).input.empty());
  CHECK(store.trace(trace_id(1), true).requests.at(0).input.empty());
  CHECK(store.trace(trace_id(2), true).requests.at(0).input.size() == 784);
  CHECK(store.trace(trace_id(0), true).requests.at(0).predicted == 0); // the row itself is whole
}

TEST_CASE("retention by bytes keeps the database's pages in use plus the image files under the "
          "limit") {
  mlctl::util::TempDir dir;
  auto o = options(dir);
  o.batch_size = 100;
  o.image_segment_bytes = 64 * 784; // 50 KB files
  o.max_bytes = 1U << 20U;
  {
    auto small = o;
    small.max_bytes = 4 * o.image_segment_bytes - 1;
    CHECK_THROWS_AS(RequestStore(small, {}), Error);
  }
  RequestStore store(o, {});
  for (int i = 0; i < 5000; ++i) { // 3.9 MB of images alone
    store.on_inference(record(i));
    if (i % 100 == 99) {
      REQUIRE(store.flush(std::chrono::seconds(10)));
    }
  }
  REQUIRE(store.flush(std::chrono::seconds(10)));
  std::uint64_t image_bytes = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path() / "requests-images")) {
    image_bytes += e.file_size();
  }
  auto db = server::sql::Database::open(dir.path() / "requests.db");
  auto pages = db->prepare("SELECT (SELECT page_count FROM pragma_page_count) - "
                           "(SELECT freelist_count FROM pragma_freelist_count)");
  REQUIRE(pages.step());
  const auto used = static_cast<std::uint64_t>(pages.int64(0)) * 4096 + image_bytes;
  // Under the limit but for one image file and one batch; the oldest rows went first.
  CHECK(used <= o.max_bytes + o.image_segment_bytes + 100 * 784);
  CHECK(used > o.max_bytes / 2);
  CHECK(store.stats().rows_deleted > 3000);
  CHECK(store.trace(trace_id(0), false).requests.empty());
  CHECK(store.trace(trace_id(4999), true).requests.at(0).input.size() == 784);
}

#include "server/request_store.hpp"

#include "api/time.hpp"
#include "server/image_log.hpp"
#include "server/migrations.hpp"
#include "server/sqlite.hpp"
#include "util/error.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <sched.h>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>

namespace mlctl::server {

namespace {

static_assert(std::endian::native == std::endian::little,
              "probabilities are stored as little-endian float32");

// Times are RFC 3339 UTC text with milliseconds, so text order is time order; `id` is the
// store order, which retention follows (oldest first).
constexpr std::string_view k_requests_schema = R"sql(
CREATE TABLE requests (
  id            INTEGER PRIMARY KEY,
  trace_key     INTEGER NOT NULL,  -- the trace id's first 16 hex digits as an integer: a small index key
  trace_id      TEXT NOT NULL,
  idx           INTEGER NOT NULL,  -- the image's position in the request's batch
  application   TEXT NOT NULL,
  stage         INTEGER NOT NULL,
  model         TEXT NOT NULL,
  version       INTEGER NOT NULL,
  variant       TEXT NOT NULL,     -- primary | canary | shadow
  time          TEXT NOT NULL,     -- when the request arrived
  latency       REAL NOT NULL,     -- seconds, the whole request
  status        INTEGER NOT NULL,
  error         TEXT,              -- NULL when status = 200
  predicted     INTEGER,           -- class index; NULL on error
  probabilities BLOB,              -- float32 little-endian, one per class
  input         BLOB,              -- the image as uint8 round(x*255); NULL when refused before decoding
  label         INTEGER,           -- ground truth (feedback)
  labelled_at   TEXT
);
CREATE INDEX requests_by_time ON requests(application, time);
CREATE INDEX requests_by_trace ON requests(trace_key);
CREATE INDEX requests_labelled ON requests(application, time) WHERE label IS NOT NULL;
)sql";

// Version 2: the images move to their own table, so that scans of the metadata (sampling,
// listings, monitors) read ~100 bytes a row instead of ~900; the time indexes become covering
// for the sampler (application, time, id, then what it selects), so choosing a sample reads no
// row at all. Existing rows keep their images.
constexpr std::string_view k_request_inputs = R"sql(
CREATE TABLE request_inputs (
  id    INTEGER PRIMARY KEY,  -- requests.id
  input BLOB NOT NULL         -- the image as uint8 round(x*255)
);
INSERT INTO request_inputs (id, input) SELECT id, input FROM requests WHERE input IS NOT NULL;
ALTER TABLE requests DROP COLUMN input;
DROP INDEX requests_by_time;
DROP INDEX requests_labelled;
CREATE INDEX requests_scan ON requests(application, time, id, status, predicted, label);
CREATE INDEX requests_labelled_scan ON requests(application, time, id, status, predicted, label)
  WHERE label IS NOT NULL;
)sql";

// Version 3: new images go to append-only segment files beside the database (image_log.hpp);
// a row names its image's place. Rows stored before keep theirs in `request_inputs`.
constexpr std::string_view k_request_image_files = R"sql(
ALTER TABLE requests ADD COLUMN input_segment INTEGER; -- <name>-images/<8 digits>.u8; NULL: no image there
ALTER TABLE requests ADD COLUMN input_offset INTEGER;  -- bytes into that file
ALTER TABLE requests ADD COLUMN input_size INTEGER;    -- bytes of the image
)sql";

constexpr std::array k_request_migrations{
    Migration{1, "requests", k_requests_schema},
    Migration{2, "request_inputs", k_request_inputs},
    Migration{3, "request_image_files", k_request_image_files},
};

constexpr std::string_view k_time_max = "~"; // sorts after every RFC 3339 time

std::string row_columns(bool include_input) {
  return std::string("id, trace_id, idx, application, stage, model, version, variant, time, "
                     "latency, status, error, "
                     "predicted, probabilities, label, labelled_at, ") +
         (include_input ? "(SELECT input FROM request_inputs i WHERE i.id = requests.id), "
                          "input_segment, input_offset, input_size"
                        : "NULL, NULL, NULL, NULL");
}

// Reads the row at `s` (columns of `row_columns`); its image from `images` when the row names
// one there (no reader: the query did not ask for images).
api::StoredRequest read_row(const sql::Statement& s, ImageReader* images) {
  api::StoredRequest r;
  r.id = s.int64(0);
  r.trace_id = s.text(1);
  r.index = s.int64(2);
  r.application = s.text(3);
  r.stage = s.int64(4);
  r.model = s.text(5);
  r.version = s.int64(6);
  r.variant = s.text(7);
  r.time = s.text(8);
  r.latency_seconds = s.real(9);
  r.status = static_cast<int>(s.int64(10));
  r.error = s.text(11);
  if (!s.is_null(12)) {
    r.predicted = s.int64(12);
  }
  const auto probabilities = s.blob(13);
  r.probabilities.resize(probabilities.size() / sizeof(float));
  if (!r.probabilities.empty()) {
    std::memcpy(r.probabilities.data(), probabilities.data(),
                r.probabilities.size() * sizeof(float));
  }
  if (!s.is_null(14)) {
    r.label = s.int64(14);
  }
  r.labelled_at = s.text(15);
  const auto input = s.blob(16);
  r.input.assign(input.begin(), input.end());
  if (r.input.empty() && images != nullptr && !s.is_null(17)) {
    r.input = images->read({s.int64(17), s.int64(18), s.int64(19)});
  }
  return r;
}

// Returns `text` as a canonical stored time, or `fallback` when empty.
std::string time_bound(std::string_view text, std::string_view what, std::string_view fallback) {
  if (text.empty()) {
    return std::string(fallback);
  }
  const auto tp = api::parse_time_or_age(text, std::chrono::system_clock::now());
  if (!tp) {
    throw Error(ErrorKind::invalid_input, std::string(what) + " '" +
                                              std::string(text.substr(0, 40)) +
                                              "': expected an RFC 3339 time or an age like 10m");
  }
  return api::format_time(*tp);
}

// The stored times `since` and `until` stand for (each optional); refused when `since` comes
// after `until`, which would list nothing without saying why.
std::pair<std::string, std::string> time_range(std::string_view since, std::string_view until) {
  auto from = time_bound(since, "since", "");
  auto to = time_bound(until, "until", k_time_max);
  if (from > to) {
    throw Error(ErrorKind::invalid_input, "since " + from + " is after until " + to +
                                              ": the range holds no time (--since is the start)");
  }
  return {std::move(from), std::move(to)};
}

// round(x * 255) clamped to 0..255 (NaN gives 0); branch-free so the loop vectorises.
void to_pixels(const float* x, std::size_t n, std::uint8_t* out) {
  for (std::size_t i = 0; i < n; ++i) {
    const float v = std::min(std::max(x[i] * 255.0F + 0.5F, 0.0F), 255.0F);
    out[i] = static_cast<std::uint8_t>(static_cast<int>(v));
  }
}

// The index key of a trace id: its first 16 hex digits as a (wrapping) signed integer.
std::int64_t trace_key(std::string_view trace_id) {
  std::uint64_t k = 0;
  for (std::size_t i = 0; i < 16 && i < trace_id.size(); ++i) {
    const char c = trace_id[i];
    const unsigned d = c >= '0' && c <= '9'   ? static_cast<unsigned>(c - '0')
                       : c >= 'a' && c <= 'f' ? static_cast<unsigned>(c - 'a' + 10)
                       : c >= 'A' && c <= 'F' ? static_cast<unsigned>(c - 'A' + 10)
                                              : static_cast<unsigned char>(c) & 15U;
    k = (k << 4) | d;
  }
  return static_cast<std::int64_t>(k);
}

// Rows a record becomes: one per image, or one for a request refused before decoding.
std::size_t images_of(const InferenceRecord& r) {
  if (r.input.empty()) {
    return 1;
  }
  return std::max<std::size_t>(1, r.batch);
}

} // namespace

bool capture_keeps(std::string_view trace_id, double sample) noexcept {
  if (sample >= 1.0) {
    return true;
  }
  if (!(sample > 0.0)) {
    return false;
  }
  // FNV-1a, 64 bits (offset basis 14695981039346656037, prime 1099511628211).
  std::uint64_t h = 14695981039346656037ULL;
  for (const char c : trace_id) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  const double u = static_cast<double>(h >> 11) * 0x1.0p-53;
  return u < sample;
}

// WAL frames (pages) past which the writer starts the WAL over itself: 16 MB of 4 KB pages.
constexpr std::int64_t k_wal_restart_frames = 4096;

// The writer's nice value (see `run_writer`).
constexpr int k_writer_nice = 5;

struct RequestStore::Impl {
  RequestStoreOptions options;
  util::LogFn log;
  std::unique_ptr<sql::Database> writer_db; // the writer thread's own connection
  std::unique_ptr<sql::ConnectionPool> readers;

  std::mutex mutex;
  std::condition_variable work_cv;
  std::condition_variable done_cv;
  std::vector<std::shared_ptr<const InferenceRecord>> queue;
  std::size_t queue_images = 0;
  std::uint64_t enqueued = 0;  // sequence of records queued
  std::uint64_t processed = 0; // sequence of records written or lost
  bool flush_requested = false;
  bool stopping = false;
  bool closed = false;

  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> sampled_out{0};
  std::atomic<std::uint64_t> dropped{0};
  std::atomic<std::uint64_t> records_stored{0};
  std::atomic<std::uint64_t> rows_stored{0};
  std::atomic<std::uint64_t> rows_deleted{0};
  std::atomic<std::uint64_t> write_errors{0};
  std::atomic<std::uint64_t> records_lost{0};
  std::atomic<std::uint64_t> batches{0};

  std::int64_t row_count = 0; // writer thread only
  std::chrono::steady_clock::time_point last_error_log{};
  std::vector<std::uint8_t> pixels;  // writer thread scratch
  std::optional<ImageLog> image_log; // writer thread
  std::int64_t oldest_named_id = 0;  // writer thread: see `remove_unnamed_segments`
  std::filesystem::path images_dir;  // set once, before the threads start
  // Writer thread; finalised before `writer_db` closes (declared after it).
  std::optional<sql::Statement> insert_row;
  std::thread writer;
  // WAL checkpoints (copying committed pages into the database file, then an fsync) run on
  // their own thread and connection, after each batch: the writer only appends to the WAL.
  std::mutex checkpoint_mutex;                 // held by whichever thread checkpoints
  std::atomic<bool> wal_restart_wanted{false}; // the checkpointer saw a long WAL
  std::condition_variable checkpoint_cv;
  bool checkpoint_wanted = false; // under `mutex`
  std::thread checkpointer;

  void run_writer() {
    // Inference comes first when the cores are contended: the writer runs at nice 5 (a third
    // of a worker's share of a busy core). On a machine with idle CPU this changes nothing; a
    // saturated one stores fewer records and drops (and counts) more. Measured on 2 cores
    // saturated by wrk (bench_store --rounds 5): the store's cost 14.4% -> 9.3% of throughput,
    // p99 2.15 -> 1.59 ms, requests kept 44% -> 19% (nice 10, 3 rounds: 2.2%, 11% kept); and
    // 5 µs less server CPU per request in bench_gateway.
    ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), k_writer_nice);
    std::vector<std::shared_ptr<const InferenceRecord>> batch;
    std::unique_lock lock(mutex);
    while (true) {
      // Sleep while idle; once something is queued, let a batch gather for `flush_interval`
      // unless it fills up, a flush is asked for or the store closes.
      work_cv.wait(lock, [&] { return stopping || flush_requested || !queue.empty(); });
      if (!stopping && !flush_requested) {
        work_cv.wait_for(lock, options.flush_interval, [&] {
          return stopping || flush_requested || queue.size() >= options.batch_size;
        });
      }
      if (queue.empty()) {
        flush_requested = false;
        done_cv.notify_all();
        if (stopping) {
          return;
        }
        continue;
      }
      batch.swap(queue);
      queue_images = 0;
      flush_requested = false;
      lock.unlock();
      write_batch(batch);
      const auto n = batch.size();
      batch.clear();
      lock.lock();
      processed += n;
      done_cv.notify_all();
    }
  }

  void write_batch(const std::vector<std::shared_ptr<const InferenceRecord>>& batch) {
    try {
      auto& db = *writer_db;
      sql::Transaction tx(db, sql::TransactionMode::immediate);
      // Prepared once, reused by every batch (writer thread only).
      if (!insert_row) {
        insert_row = db.prepare(
            "INSERT INTO requests (trace_id, idx, application, stage, model, version, variant, "
            "time, latency, status, error, predicted, probabilities, trace_key, input_segment, "
            "input_offset, input_size) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
      }
      auto& insert = *insert_row;
      std::uint64_t rows = 0;
      for (const auto& record : batch) {
        const auto& r = *record;
        const auto images = images_of(r);
        const auto per_image = r.input.empty() ? 0 : r.input.size() / images;
        const auto classes = r.classes.size() == images ? r.probabilities.size() / images : 0;
        const auto key = trace_key(r.trace_id);
        for (std::size_t i = 0; i < images; ++i) {
          insert.reset();
          insert.bind_all(r.trace_id, static_cast<std::int64_t>(i), r.application, r.stage, r.model,
                          r.version, r.variant, r.time, r.latency_seconds, r.status);
          insert.bind(11, r.error.empty() ? std::optional<std::string>()
                                          : std::optional<std::string>(r.error));
          if (r.classes.size() == images) {
            insert.bind(12, r.classes[i]);
          } else {
            insert.bind(12, nullptr);
          }
          if (classes > 0) {
            const auto* p =
                reinterpret_cast<const std::uint8_t*>(r.probabilities.data() + i * classes);
            insert.bind_blob(13, {p, classes * sizeof(float)});
          } else {
            insert.bind(13, nullptr);
          }
          insert.bind(14, key);
          if (per_image > 0) {
            pixels.resize(per_image);
            to_pixels(r.input.data() + i * per_image, per_image, pixels.data());
            const auto where = image_log->add(pixels);
            insert.bind(15, where.segment).bind(16, where.offset).bind(17, where.size);
          } else {
            insert.bind(15, nullptr).bind(16, nullptr).bind(17, nullptr);
          }
          insert.run();
          // A batch is milliseconds of CPU: give the core up every 32 rows (~0.2 ms, derived
          // from the writer's CPU share at saturation), so that requests waiting for a core are
          // not held up behind it (saturated, on 2 cores: p99 3.3-4.4 -> 1.7-3.4 ms measured;
          // the writer may then take fewer records: inference comes first).
          if (++rows % 32 == 0) {
            sched_yield();
          }
        }
      }
      image_log->write(); // before the rows that name the images are committed
      row_count += static_cast<std::int64_t>(rows);
      std::int64_t deleted = 0;
      std::int64_t first_kept = 0;
      if (const auto excess = excess_rows(db); excess > 0) {
        // Oldest first: the `excess` smallest ids go.
        auto find = db.prepare("SELECT id FROM requests ORDER BY id LIMIT 1 OFFSET ?");
        find.bind(1, excess);
        if (find.step()) {
          first_kept = find.int64(0);
          deleted = db.prepare("DELETE FROM requests WHERE id < ?").bind(1, first_kept).run();
          db.prepare("DELETE FROM request_inputs WHERE id < ?").bind(1, first_kept).run();
        }
      }
      tx.commit();
      {
        const std::lock_guard lock(mutex);
        checkpoint_wanted = true;
      }
      checkpoint_cv.notify_one();
      row_count -= deleted;
      rows_deleted += static_cast<std::uint64_t>(deleted);
      if (deleted > 0) {
        remove_unnamed_segments(first_kept);
      }
      records_stored += batch.size();
      rows_stored += rows;
      ++batches;
      // The WAL starts over only when a transaction begins with every frame copied, which a
      // writer that never pauses does not leave the checkpointer time for: past 16 MB the
      // writer copies the few frames left itself, and its next batch starts the WAL over.
      if (wal_restart_wanted.exchange(false)) {
        checkpoint(db, "PRAGMA wal_checkpoint(RESTART)");
      }
    } catch (const std::exception& e) {
      write_errors += 1;
      records_lost += batch.size();
      recount();
      const auto now = std::chrono::steady_clock::now();
      if (log && now - last_error_log > std::chrono::seconds(1)) {
        last_error_log = now;
        log("request store: lost " + std::to_string(batch.size()) + " record(s): " + e.what());
      }
    }
  }

  void run_checkpointer(sql::Database& db) {
    std::unique_lock lock(mutex);
    while (true) {
      checkpoint_cv.wait(lock, [&] { return stopping || checkpoint_wanted; });
      if (stopping) {
        return; // closing the last connection checkpoints what is left
      }
      checkpoint_wanted = false;
      lock.unlock();
      // PASSIVE never waits for (nor blocks) the writer or readers; what it cannot copy now,
      // the next one will.
      if (checkpoint(db, "PRAGMA wal_checkpoint(PASSIVE)") > k_wal_restart_frames) {
        wal_restart_wanted = true;
      }
      lock.lock();
    }
  }

  // Runs one checkpoint `pragma` and returns the WAL's length in frames (0 when unknown);
  // errors are logged (what is committed stays committed, and the next batch tries again).
  std::int64_t checkpoint(sql::Database& db, std::string_view pragma) {
    try {
      // One checkpoint at a time: SQLite refuses a second one at once (no busy wait).
      const std::lock_guard checkpointing(checkpoint_mutex);
      auto run = db.prepare(pragma); // one row: busy, WAL frames, frames copied
      return run.step() ? run.int64(1) : 0;
    } catch (const std::exception& e) {
      if (log) {
        log(std::string("request store: checkpoint failed (retried after the next batch): ") +
            e.what());
      }
    }
    return 0;
  }

  // Returns how many of the oldest rows retention deletes now: those over `max_rows`, and
  // enough to bring the bytes in use under `max_bytes` at the average bytes of a row (the
  // image bytes go with whole files, a few batches later).
  std::int64_t excess_rows(sql::Database& db) const {
    std::int64_t excess = options.max_rows > 0 ? row_count - options.max_rows : 0;
    if (options.max_bytes > 0 && row_count > 0) {
      auto pages = db.prepare("SELECT (SELECT page_count FROM pragma_page_count) - "
                              "(SELECT freelist_count FROM pragma_freelist_count), "
                              "(SELECT page_size FROM pragma_page_size)");
      pages.step();
      const auto used =
          static_cast<std::uint64_t>(pages.int64(0) * pages.int64(1)) + image_log->bytes();
      if (used > options.max_bytes) {
        const auto per_row =
            std::max<std::uint64_t>(1, used / static_cast<std::uint64_t>(row_count));
        excess = std::max(
            excess, static_cast<std::int64_t>((used - options.max_bytes + per_row - 1) / per_row));
      }
    }
    return std::min(excess, row_count - 1); // the newest row stays
  }

  // After retention deleted the rows before `first_kept`: unlinks the image segments older
  // than the one the oldest remaining row with an image names (a reader still going through the
  // deleted rows finds no image for them). Segments also left by a crash between a retention
  // and its unlinks go at the first retention. The lookup passes over rows without an image in
  // file (refused requests, rows from before schema 3) once each, not at every batch: it is
  // needed again only when retention has deleted the row it found.
  void remove_unnamed_segments(std::int64_t first_kept) {
    if (oldest_named_id >= first_kept) {
      return;
    }
    try {
      auto oldest = writer_db->prepare("SELECT id, input_segment FROM requests WHERE id >= ? AND "
                                       "input_segment IS NOT NULL ORDER BY id LIMIT 1");
      oldest.bind(1, first_kept);
      const bool found = oldest.step();
      oldest_named_id = found ? oldest.int64(0) : 0;
      image_log->remove_before(found ? oldest.int64(1) : image_log->current());
    } catch (const std::exception& e) {
      if (log) {
        log(std::string("request store: cannot remove old image files (retried after the next "
                        "retention): ") +
            e.what());
      }
    }
  }

  // A reader of images for a query that asked for them (nullptr otherwise).
  std::unique_ptr<ImageReader> image_reader(bool include_input) const {
    return include_input ? std::make_unique<ImageReader>(images_dir) : nullptr;
  }

  void recount() {
    try {
      auto count = writer_db->prepare("SELECT COUNT(*) FROM requests");
      count.step();
      row_count = count.int64(0);
    } catch (const std::exception&) { // NOLINT(bugprone-empty-catch): keeps the last count
    }
  }
};

RequestStore::RequestStore(RequestStoreOptions options, util::LogFn log)
    : m_impl(std::make_unique<Impl>()) {
  auto& impl = *m_impl;
  if (options.queue_capacity < 1 || options.batch_size < 1) {
    throw Error(ErrorKind::invalid_input,
                "request store: queue capacity and batch size must be at least 1");
  }
  if (options.max_rows < 0) {
    throw Error(ErrorKind::invalid_input,
                "--store-max-rows " + std::to_string(options.max_rows) + ": must be >= 0");
  }
  if (options.max_bytes > 0 && options.max_bytes < 4 * options.image_segment_bytes) {
    throw Error(ErrorKind::invalid_input,
                "--store-max-mb " + std::to_string(options.max_bytes >> 20U) +
                    ": must be 0 (no limit) or at least " +
                    std::to_string((4 * options.image_segment_bytes) >> 20U) +
                    " (four image files)");
  }
  impl.options = std::move(options);
  impl.log = std::move(log);
  impl.writer_db = sql::Database::open(impl.options.path);
  // Telemetry: a process crash loses nothing committed (WAL); a power loss may lose the last
  // batches, which is worth not waiting for an fsync per batch. The writer's page cache holds
  // the edges of the table and of its indexes where rows are appended and retention deletes
  // (with 2 MB it re-read and rewrote pages: measured 14-18% of gateway throughput, 3-11% with 16
  // MB).
  // Debian builds SQLite with SECURE_DELETE, which zeroes what retention deletes: every freed
  // page written once more (571 instead of 676 pages per batch of 1,024 rows at the retention
  // limit without it); the pages are reused by the next batches anyway.
  impl.writer_db->exec("PRAGMA synchronous=NORMAL; PRAGMA cache_size=-16384; "
                       "PRAGMA wal_autocheckpoint=0; PRAGMA secure_delete=OFF");
  apply_migrations(*impl.writer_db, k_request_migrations);
  impl.recount();
  impl.images_dir = impl.options.path;
  impl.images_dir.replace_filename(impl.options.path.stem().string() + "-images");
  impl.image_log.emplace(impl.images_dir, impl.options.image_segment_bytes);
  impl.readers = std::make_unique<sql::ConnectionPool>(impl.options.path, 4);
  std::shared_ptr<sql::Database> checkpoint_db = sql::Database::open(impl.options.path);
  checkpoint_db->exec("PRAGMA synchronous=NORMAL");
  impl.queue.reserve(impl.options.batch_size);
  impl.writer = std::thread([&impl] { impl.run_writer(); });
  impl.checkpointer =
      std::thread([&impl, checkpoint_db] { impl.run_checkpointer(*checkpoint_db); });
}

RequestStore::~RequestStore() {
  close();
}

void RequestStore::close() {
  auto& impl = *m_impl;
  {
    const std::lock_guard lock(impl.mutex);
    if (impl.closed) {
      return;
    }
    impl.closed = true;
    impl.stopping = true;
  }
  impl.work_cv.notify_all();
  impl.checkpoint_cv.notify_all();
  if (impl.checkpointer.joinable()) {
    impl.checkpointer.join();
  }
  if (impl.writer.joinable()) {
    impl.writer.join();
  }
}

void RequestStore::on_inference(const std::shared_ptr<const InferenceRecord>& record) noexcept {
  auto& impl = *m_impl;
  impl.received.fetch_add(1, std::memory_order_relaxed);
  if (!record) {
    return;
  }
  if (!capture_keeps(record->trace_id, record->capture_sample)) {
    impl.sampled_out.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const auto images = images_of(*record);
  bool wake = false;
  try {
    const std::lock_guard lock(impl.mutex);
    if (impl.closed ||
        (!impl.queue.empty() && impl.queue_images + images > impl.options.queue_capacity)) {
      impl.dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    impl.queue.push_back(record);
    impl.queue_images += images;
    ++impl.enqueued;
    // Wake the writer when it sleeps on an empty queue, and when a batch is full.
    wake = impl.queue.size() == 1 || impl.queue.size() == impl.options.batch_size;
  } catch (...) { // bad_alloc: drop rather than fail the request
    impl.dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (wake) {
    impl.work_cv.notify_one();
  }
}

bool RequestStore::flush(std::chrono::milliseconds timeout) {
  auto& impl = *m_impl;
  std::unique_lock lock(impl.mutex);
  const auto target = impl.enqueued;
  if (impl.processed >= target) {
    return true;
  }
  impl.flush_requested = true;
  impl.work_cv.notify_one();
  return impl.done_cv.wait_for(lock, timeout, [&] { return impl.processed >= target; });
}

RequestStoreStats RequestStore::stats() const {
  auto& impl = *m_impl;
  RequestStoreStats s;
  s.records_received = impl.received.load();
  s.records_sampled_out = impl.sampled_out.load();
  s.records_dropped = impl.dropped.load();
  s.records_stored = impl.records_stored.load();
  s.rows_stored = impl.rows_stored.load();
  s.rows_deleted = impl.rows_deleted.load();
  s.write_errors = impl.write_errors.load();
  s.records_lost = impl.records_lost.load();
  s.batches = impl.batches.load();
  {
    const std::lock_guard lock(impl.mutex);
    s.queue_records = impl.queue.size();
    s.queue_images = impl.queue_images;
  }
  return s;
}

api::RequestList RequestStore::list(const RequestListQuery& q) {
  if (q.limit < 1 || q.limit > 10000) {
    throw Error(ErrorKind::invalid_input,
                "limit " + std::to_string(q.limit) + ": must be 1..10000");
  }
  const auto [since, until] = time_range(q.since, q.until);
  std::string token_time;
  std::int64_t token_id = 0;
  if (!q.page_token.empty()) {
    const auto slash = q.page_token.rfind('/');
    const auto id_text = slash == std::string::npos
                             ? std::string_view()
                             : std::string_view(q.page_token).substr(slash + 1);
    const auto [p, ec] = std::from_chars(id_text.data(), id_text.data() + id_text.size(), token_id);
    const auto tp =
        slash == std::string::npos ? std::nullopt : api::parse_time(q.page_token.substr(0, slash));
    if (id_text.empty() || ec != std::errc() || p != id_text.data() + id_text.size() || !tp) {
      throw Error(ErrorKind::invalid_input,
                  "page_token '" + q.page_token.substr(0, 60) + "': not a token of this listing");
    }
    token_time = api::format_time(*tp);
  }
  const char* cmp = q.ascending ? ">" : "<";
  const char* dir = q.ascending ? "ASC" : "DESC";
  std::string sql = "SELECT " + row_columns(q.include_input) +
                    " FROM requests WHERE application = ?1 AND time >= ?2 AND time < ?3";
  if (!q.page_token.empty()) {
    sql += std::string(" AND (time, id) ") + cmp + " (?4, ?5)";
  }
  sql += std::string(" ORDER BY time ") + dir + ", id " + dir + " LIMIT ?6";
  auto db = m_impl->readers->acquire();
  auto stmt = db->prepare(sql);
  auto images = m_impl->image_reader(q.include_input);
  stmt.bind_all(q.application, since, until);
  if (!q.page_token.empty()) {
    stmt.bind(4, token_time).bind(5, token_id);
  }
  stmt.bind(6, q.limit + 1);
  api::RequestList out;
  out.application = q.application;
  while (stmt.step()) {
    if (static_cast<std::int64_t>(out.requests.size()) == q.limit) {
      const auto& last = out.requests.back();
      out.next_page_token = last.time + "/" + std::to_string(last.id);
      break;
    }
    out.requests.push_back(read_row(stmt, images.get()));
  }
  return out;
}

api::TraceRequests RequestStore::trace(std::string_view trace_id, bool include_input) {
  auto db = m_impl->readers->acquire();
  auto stmt = db->prepare("SELECT " + row_columns(include_input) +
                          " FROM requests WHERE trace_key = ? AND trace_id = ? ORDER BY id");
  stmt.bind(1, trace_key(trace_id)).bind(2, trace_id);
  auto images = m_impl->image_reader(include_input);
  api::TraceRequests out;
  out.trace_id = std::string(trace_id);
  while (stmt.step()) {
    out.requests.push_back(read_row(stmt, images.get()));
  }
  return out;
}

namespace {

// The WHERE clause of a `RowQuery` (parameters ?1..?5) and its bound times.
std::string row_filter(const RowQuery& q) {
  std::string sql = " FROM requests WHERE application = ?1 AND time >= ?2 AND time < ?3";
  if (q.labelled_only) {
    sql += " AND label IS NOT NULL";
  }
  if (!q.include_errors) {
    sql += " AND status = 200";
  }
  if (!q.model.empty()) {
    sql += " AND model = ?4";
  }
  if (q.version != 0) {
    sql += " AND version = ?5";
  }
  return sql;
}

void bind_row_filter(sql::Statement& stmt, const RowQuery& q) {
  const auto [since, until] = time_range(q.since, q.until);
  stmt.bind_all(q.application, since, until);
  if (!q.model.empty()) {
    stmt.bind(4, q.model);
  }
  if (q.version != 0) {
    stmt.bind(5, q.version);
  }
}

} // namespace

std::int64_t RequestStore::for_each_row(const RowQuery& q,
                                        const std::function<bool(const api::StoredRequest&)>& fn) {
  auto db = m_impl->readers->acquire();
  auto stmt =
      db->prepare("SELECT " + row_columns(q.include_input) + row_filter(q) + " ORDER BY time, id");
  bind_row_filter(stmt, q);
  auto images = m_impl->image_reader(q.include_input);
  std::int64_t n = 0;
  while (stmt.step()) {
    ++n;
    if (!fn(read_row(stmt, images.get()))) {
      break;
    }
  }
  return n;
}

std::int64_t RequestStore::for_each_class(
    const RowQuery& q, const std::function<void(std::int64_t, std::int64_t, std::int64_t)>& fn) {
  // INDEXED BY pins the plan to a covering index ordered by (time, id): no sort is needed,
  // whatever statistics the planner has, and no row is read unless a model or version filters.
  std::string sql = std::string("SELECT id, predicted, label FROM requests INDEXED BY ") +
                    (q.labelled_only ? "requests_labelled_scan" : "requests_scan") +
                    " WHERE application = ?1 AND time >= ?2 AND time < ?3 AND status = 200 AND "
                    "predicted IS NOT NULL";
  if (q.labelled_only) {
    sql += " AND label IS NOT NULL";
  }
  if (!q.model.empty()) {
    sql += " AND model = ?4";
  }
  if (q.version != 0) {
    sql += " AND version = ?5";
  }
  sql += " ORDER BY time, id";
  auto db = m_impl->readers->acquire();
  auto stmt = db->prepare(sql);
  bind_row_filter(stmt, q);
  std::int64_t n = 0;
  while (stmt.step()) {
    ++n;
    fn(stmt.int64(0), stmt.int64(1), stmt.is_null(2) ? -1 : stmt.int64(2));
  }
  return n;
}

std::vector<api::StoredRequest> RequestStore::rows_by_id(const std::vector<std::int64_t>& ids,
                                                         bool include_input) {
  auto db = m_impl->readers->acquire();
  auto stmt = db->prepare("SELECT " + row_columns(include_input) + " FROM requests WHERE id = ?");
  auto images = m_impl->image_reader(include_input);
  std::vector<api::StoredRequest> out;
  out.reserve(ids.size());
  for (const auto id : ids) {
    stmt.reset();
    stmt.bind(1, id);
    if (stmt.step()) {
      out.push_back(read_row(stmt, images.get()));
    }
  }
  return out;
}

std::int64_t RequestStore::count_rows(const RowQuery& q) {
  auto db = m_impl->readers->acquire();
  auto stmt = db->prepare("SELECT COUNT(*)" + row_filter(q));
  bind_row_filter(stmt, q);
  stmt.step();
  return stmt.int64(0);
}

std::vector<VersionAccuracy> RequestStore::accuracy(std::string_view application,
                                                    std::string_view since,
                                                    std::string_view until) {
  auto db = m_impl->readers->acquire();
  auto stmt = db->prepare(
      "SELECT model, version, COUNT(*), SUM(predicted = label) FROM requests "
      "WHERE application = ? AND time >= ? AND time < ? AND label IS NOT NULL AND status = 200 "
      "GROUP BY model, version ORDER BY model, version");
  const auto [from, to] = time_range(since, until);
  stmt.bind_all(application, from, to);
  std::vector<VersionAccuracy> out;
  while (stmt.step()) {
    VersionAccuracy a;
    a.model = stmt.text(0);
    a.version = stmt.int64(1);
    a.labelled = stmt.int64(2);
    a.correct = stmt.int64(3);
    a.accuracy =
        a.labelled > 0 ? static_cast<double>(a.correct) / static_cast<double>(a.labelled) : 0.0;
    out.push_back(std::move(a));
  }
  return out;
}

api::FeedbackResult RequestStore::add_feedback(const std::vector<api::FeedbackItem>& items,
                                               std::string_view application,
                                               std::string_view labelled_at) {
  flush(std::chrono::seconds(1));
  api::FeedbackResult out;
  out.received = static_cast<std::int64_t>(items.size());
  auto db = m_impl->readers->acquire();
  sql::Transaction tx(*db, sql::TransactionMode::immediate);
  auto update =
      db->prepare(application.empty()
                      ? "UPDATE requests SET label = ?1, labelled_at = ?2 WHERE trace_key = ?6 AND "
                        "trace_id = ?3 AND idx = ?4"
                      : "UPDATE requests SET label = ?1, labelled_at = ?2 WHERE trace_key = ?6 AND "
                        "trace_id = ?3 AND idx = ?4 AND application = ?5");
  // A row's answer has one probability (4 bytes) per class; rows refused before the model ran
  // have none, and take any label.
  auto out_of_range = db->prepare(
      std::string("SELECT model, version, length(probabilities) / 4 FROM requests WHERE "
                  "trace_key = ?1 AND trace_id = ?2 AND idx = ?3 AND ?4 >= length(probabilities) "
                  "/ 4") +
      (application.empty() ? "" : " AND application = ?5") + " LIMIT 1");
  for (std::size_t i = 0; i < items.size(); ++i) {
    const auto& item = items[i];
    out_of_range.reset();
    out_of_range.bind_all(trace_key(item.trace_id), item.trace_id, item.index.value_or(0),
                          item.label);
    if (!application.empty()) {
      out_of_range.bind(5, application);
    }
    if (out_of_range.step()) {
      const auto classes = out_of_range.int64(2);
      throw Error(ErrorKind::invalid_input,
                  "feedback[" + std::to_string(i) + "].label: " + std::to_string(item.label) +
                      " is not a class of " + out_of_range.text(0) + ":" +
                      std::to_string(out_of_range.int64(1)) + ", which answered trace " +
                      item.trace_id + " with " + std::to_string(classes) + " classes (0-" +
                      std::to_string(classes - 1) + "); nothing was labelled");
    }
  }
  for (const auto& item : items) {
    update.reset();
    update.bind_all(item.label, labelled_at, item.trace_id, item.index.value_or(0));
    if (!application.empty()) {
      update.bind(5, application);
    }
    update.bind(6, trace_key(item.trace_id));
    const int changed = update.run();
    if (changed > 0) {
      ++out.matched;
      out.rows_labelled += changed;
    } else {
      ++out.unknown;
      if (out.unknown_trace_ids.size() < 100) {
        out.unknown_trace_ids.push_back(item.trace_id);
      }
    }
  }
  tx.commit();
  return out;
}

} // namespace mlctl::server

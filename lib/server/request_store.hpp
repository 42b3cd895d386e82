#pragma once
// The request store: every inference the gateway reports (`InferenceSink`) is kept, one row
// per image, in its own SQLite database `requests.db` in the data directory (the images in
// append-only files beside it, `requests-images/`: image_log.hpp) — apart from
// `registry.db`, so that request traffic never waits for (nor delays) registry writes: SQLite
// has one writer lock per database file, and telemetry does not need the registry's
// synchronous=FULL commits (the store commits with synchronous=NORMAL: a process crash loses
// nothing committed, a power loss may lose the last batches).
//
// Off the hot path: `on_inference` only samples and queues (bounded; when full the record is
// dropped and counted, inference never blocks on logging); one writer thread drains the queue
// in batches, one transaction per batch, and applies the retention limit (oldest rows first);
// a second thread checkpoints the WAL after each batch, so that the writer mostly only appends.
// Ground-truth labels join stored rows by trace id (`add_feedback`). The read API serves the
// routes, the monitors (accuracy) and the subsampler (streaming rows).

#include "api/requests.hpp"
#include "server/inference.hpp"
#include "util/progress.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mlctl::server {

struct RequestStoreOptions {
  std::filesystem::path path;                   // the database file, e.g. <data dir>/requests.db
  std::size_t queue_capacity = 4096;            // images waiting to be written; more are dropped
  std::size_t batch_size = 1024;                // the writer wakes up early at this many records
  std::chrono::milliseconds flush_interval{50}; // otherwise it writes at least this often
  std::int64_t max_rows = 0; // retention: keep at most this many rows (0: no limit)
  // Retention: keep the database's pages in use plus the image files under this many bytes,
  // deleting the oldest rows first (0: no limit; else at least four image files, 64 MiB). The
  // images go in whole files, so the disk holds up to one file (16 MB) more; the WAL beside
  // the database (started over past 16 MB) is not counted.
  std::uint64_t max_bytes = 0;
  // Images go to append-only files in `<path's stem>-images/` beside the database (see
  // image_log.hpp), a new one past this many bytes; retention unlinks whole files.
  std::uint64_t image_segment_bytes = 16U << 20U;
};

// What the metrics exporter reads; all counts since the store opened.
struct RequestStoreStats {
  std::uint64_t records_received = 0;    // records handed to the sink
  std::uint64_t records_sampled_out = 0; // not kept by `capture_sample`
  std::uint64_t records_dropped = 0;     // the queue was full (or out of memory)
  std::uint64_t records_stored = 0;      // written to the database
  std::uint64_t rows_stored = 0;         // one per image (one for a record without images)
  std::uint64_t rows_deleted = 0;        // by the retention limit
  std::uint64_t write_errors = 0;        // batches lost to a database error (logged)
  std::uint64_t records_lost = 0;        // the records of those batches (a full disk: logged)
  std::uint64_t batches = 0;             // transactions committed
  std::size_t queue_records = 0;         // queue depth now
  std::size_t queue_images = 0;
};

// Returns whether a record with `trace_id` is kept at capture share `sample` (0..1): the
// FNV-1a 64-bit hash of the trace id's bytes, its top 53 bits taken as a fraction u in [0, 1),
// is kept iff u < sample. Deterministic across processes and machines, so a client-supplied
// trace id is sampled the same way everywhere (and every variant call of one request alike).
bool capture_keeps(std::string_view trace_id, double sample) noexcept;

// Rows of one application for the monitors and the subsampler.
struct RowQuery {
  std::string application;
  std::string since; // RFC 3339 (inclusive); empty: from the first row
  std::string until; // RFC 3339 (exclusive); empty: to the last row
  bool labelled_only = false;
  bool include_input = true;
  bool include_errors = false; // rows with status != 200 (no prediction)
  std::string model;           // only this model (empty: any)
  std::int64_t version = 0;    // only this version (0: any)
};

// Accuracy over the labelled rows of one model version.
struct VersionAccuracy {
  std::string model;
  std::int64_t version = 0;
  std::int64_t labelled = 0;
  std::int64_t correct = 0;
  double accuracy = 0; // correct / labelled (0 when none)
};

struct RequestListQuery {
  std::string application;
  std::string since;        // RFC 3339, inclusive
  std::string until;        // exclusive
  std::int64_t limit = 100; // 1..10000
  std::string page_token;   // from the previous page
  bool ascending = false;   // default newest first
  bool include_input = false;
};

class RequestStore final : public InferenceSink {
public:
  // Opens (creating) the database, applies its migrations and starts the writer thread.
  // Throws `Error{io|corrupt|conflict}` naming the file, `Error{invalid_input}` for options
  // out of range. `log` receives write errors (at most one line per second).
  RequestStore(RequestStoreOptions options, util::LogFn log);
  // Flushes what is queued and stops the writer.
  ~RequestStore() override;
  RequestStore(const RequestStore&) = delete;
  RequestStore& operator=(const RequestStore&) = delete;

  // Samples and queues `record`; never blocks on I/O, never throws.
  void on_inference(const std::shared_ptr<const InferenceRecord>& record) noexcept override;

  // Waits until every record queued before the call is written (or dropped on a write
  // error); returns false when `timeout` passed first.
  bool flush(std::chrono::milliseconds timeout);
  // Writes what is queued and stops the writer; later records are dropped. Idempotent.
  void close();

  RequestStoreStats stats() const;

  // --- Reads (any thread; reads never block the writer: WAL)

  // Returns one page of rows, newest first unless `ascending`. Throws `Error{invalid_input}`
  // for a bad time, limit or page token.
  api::RequestList list(const RequestListQuery& query);
  // Returns every row of `trace_id` (empty `requests` when none), in store order.
  api::TraceRequests trace(std::string_view trace_id, bool include_input);
  // Calls `fn` for each row matching `query`, oldest first, one row in memory at a time,
  // until it returns false; returns how many rows were passed. Throws what `fn` throws and
  // `Error` for the database.
  std::int64_t for_each_row(const RowQuery& query,
                            const std::function<bool(const api::StoredRequest&)>& fn);
  // Calls `fn(id, predicted, label)` (label -1 when none) for each answered row (status 200
  // and a predicted class) matching `query`, in time order, reading only the covering index
  // of the sampler (no row, no image) as long as `query` names no model or version;
  // `include_input` and `include_errors` are ignored. Returns how many rows were passed.
  std::int64_t for_each_class(
      const RowQuery& query,
      const std::function<void(std::int64_t id, std::int64_t predicted, std::int64_t label)>& fn);
  // Returns the rows whose ids are in `ids` (ids not stored are skipped), in the order of
  // `ids`, with their images when `include_input`.
  std::vector<api::StoredRequest> rows_by_id(const std::vector<std::int64_t>& ids,
                                             bool include_input);
  // Returns the number of rows matching `query`.
  std::int64_t count_rows(const RowQuery& query);
  // Returns the accuracy over labelled, answered rows of `application` in [since, until),
  // one entry per model version, sorted by model and version.
  std::vector<VersionAccuracy> accuracy(std::string_view application, std::string_view since = {},
                                        std::string_view until = {});

  // Joins labels to stored rows by trace id and index (0 when absent); with `application`
  // set only that application's rows. Waits (up to 1 s) for queued records first, so a label
  // sent right after the answer finds its row. Returns what matched. Throws
  // `Error{invalid_input}`, labelling nothing, when a label is not a class of a model that
  // answered its row (11 for a 10-class model, or 10 from labels counted from 1).
  api::FeedbackResult add_feedback(const std::vector<api::FeedbackItem>& items,
                                   std::string_view application, std::string_view labelled_at);

private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

} // namespace mlctl::server

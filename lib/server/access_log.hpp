#pragma once
// The structured access log: one JSON object per line and request
// `{"time", "method", "path", "status", "latency_ms", "trace_id", "remote", "bytes_in",
// "bytes_out"}`, to stderr or a file (appended).
//
// Lines are gathered in memory and written by a flusher thread at most `flush_interval` after
// the first of them, or as soon as 64 KB are waiting: a write(2) per request cost about a
// tenth of the gateway's CPU per request. Requests never wait for the file: should it stall,
// lines gather up to 16 MB, and further lines are dropped and counted (`note` says how many
// once the writing resumes). A crash may lose the lines of the last interval; a clean stop
// loses none.

#include "util/progress.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>

namespace mlctl::server {

struct AccessRecord {
  std::string time; // RFC 3339 UTC
  std::string method;
  std::string path;
  int status = 0;
  double latency_ms = 0;
  std::string trace_id;
  std::string remote;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
};

class AccessLog {
public:
  // Appends to `path`, or writes to stderr when it is empty. Throws `Error{io}`.
  explicit AccessLog(const std::filesystem::path& path,
                     std::chrono::milliseconds flush_interval = std::chrono::milliseconds(50),
                     util::LogFn note = {});
  // Writes what is gathered.
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Adds one line (thread-safe; write errors are ignored: the log must not fail a request).
  void write(const AccessRecord& record);
  // Writes the lines gathered so far before returning.
  void flush();
  // For log rotation: writes what is gathered to the file, then opens its path anew (a file
  // renamed away keeps every line written before, the new one gets every line after). Nothing
  // for stderr. Throws `Error{io}` when the path cannot be opened; the old file is then kept.
  void reopen();
  // Returns how many lines were dropped because 16 MB were waiting already.
  std::uint64_t dropped() const;
  // Returns the JSON line (without the newline) `write` would write.
  static std::string format(const AccessRecord& record);

private:
  void run_flusher();
  void write_out(); // takes the gathered lines and writes them; holds `m_write_mutex`

  std::filesystem::path m_path; // empty: stderr
  int m_fd;                     // under `m_write_mutex` once the flusher runs
  bool m_owned;
  std::chrono::milliseconds m_interval;
  util::LogFn m_note;
  mutable std::mutex m_mutex; // guards the members below
  std::condition_variable m_cv;
  std::string m_pending; // gathered lines
  std::uint64_t m_dropped = 0;
  std::uint64_t m_dropped_noted = 0;
  bool m_stopping = false;
  std::mutex m_write_mutex; // keeps the order of the writes
  std::string m_writing;    // the lines being written (under `m_write_mutex`)
  std::thread m_flusher;    // last: started once the rest is ready
};

} // namespace mlctl::server

#pragma once
// The structured access log: one JSON object per line and request
// `{"time", "method", "path", "status", "latency_ms", "trace_id", "remote", "bytes_in", "bytes_out"}`,
// to stderr or a file (appended).

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>

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
  explicit AccessLog(const std::filesystem::path& path);
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Writes one line (thread-safe, unbuffered: one write(2) per line; errors are ignored).
  void write(const AccessRecord& record);
  // Returns the JSON line (without the newline) `write` would write.
  static std::string format(const AccessRecord& record);

private:
  int m_fd;
  bool m_owned;
  std::mutex m_mutex;
};

} // namespace mlctl::server

#include "server/access_log.hpp"

#include "util/error.hpp"
#include "util/json_text.hpp"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

namespace mlctl::server {

namespace {

template <class T> void put_number(std::string& out, T value) {
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, ec == std::errc() ? end : buf);
}

// Appends the JSON object of `r`, keys in the order they always had (sorted).
void append_record(std::string& out, const AccessRecord& r) {
  out += "{\"bytes_in\":";
  put_number(out, r.bytes_in);
  out += ",\"bytes_out\":";
  put_number(out, r.bytes_out);
  out += ",\"latency_ms\":";
  const double latency = std::round(r.latency_ms * 1000.0) / 1000.0;
  if (std::isfinite(latency)) {
    const auto before = out.size();
    put_number(out, latency);
    if (out.find_first_of(".e", before) == std::string::npos) {
      out += ".0"; // a number with a fraction, as it always was
    }
  } else {
    out += "null";
  }
  out += ",\"method\":";
  util::append_json_string(out, r.method);
  out += ",\"path\":";
  util::append_json_string(out, r.path);
  out += ",\"remote\":";
  util::append_json_string(out, r.remote);
  out += ",\"status\":";
  put_number(out, r.status);
  out += ",\"time\":";
  util::append_json_string(out, r.time);
  out += ",\"trace_id\":";
  util::append_json_string(out, r.trace_id);
  out += '}';
}

} // namespace

AccessLog::AccessLog(const std::filesystem::path& path) : m_fd(STDERR_FILENO), m_owned(false) {
  if (!path.empty()) {
    m_fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (m_fd < 0) {
      throw Error(ErrorKind::io,
                  path.string() + ": cannot open the log file: " + std::strerror(errno));
    }
    m_owned = true;
  }
}

AccessLog::~AccessLog() {
  if (m_owned) {
    ::close(m_fd);
  }
}

std::string AccessLog::format(const AccessRecord& r) {
  std::string out;
  append_record(out, r);
  return out;
}

void AccessLog::write(const AccessRecord& record) {
  // Called on every request's thread: the line is built in a buffer the thread keeps, and
  // goes out in one write(2) without a lock. O_APPEND writes to a file, and writes of at most
  // PIPE_BUF bytes to a pipe, are not interleaved with other writers; longer lines (rare: a
  // path of several KB) take the lock so that they cannot interleave with each other.
  thread_local std::string line;
  line.clear();
  append_record(line, record);
  line += '\n';
  std::unique_lock lock(m_mutex, std::defer_lock);
  if (line.size() > PIPE_BUF) {
    lock.lock();
  }
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    const auto n = ::write(m_fd, p, left);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return; // a full disk or a closed stderr must not fail the request
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

} // namespace mlctl::server

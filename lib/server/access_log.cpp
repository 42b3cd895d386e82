#include "server/access_log.hpp"

#include "util/error.hpp"
#include "util/json_text.hpp"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fcntl.h>
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

int open_log(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) {
    throw Error(ErrorKind::io,
                path.string() + ": cannot open the log file: " + std::strerror(errno));
  }
  return fd;
}

} // namespace

constexpr std::size_t k_flush_bytes = 64 * 1024;        // wakes the flusher before its interval
constexpr std::size_t k_max_pending = 16 * 1024 * 1024; // past this, lines are dropped

AccessLog::AccessLog(const std::filesystem::path& path, std::chrono::milliseconds flush_interval,
                     util::LogFn note)
    : m_path(path), m_fd(STDERR_FILENO), m_owned(false), m_interval(flush_interval),
      m_note(std::move(note)) {
  if (!path.empty()) {
    m_fd = open_log(path);
    m_owned = true;
  }
  m_pending.reserve(k_flush_bytes);
  m_flusher = std::thread([this] { run_flusher(); });
}

AccessLog::~AccessLog() {
  {
    const std::lock_guard lock(m_mutex);
    m_stopping = true;
  }
  m_cv.notify_all();
  m_flusher.join();
  write_out();
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
  // The line is built outside the lock, in a buffer the request's thread keeps.
  thread_local std::string line;
  line.clear();
  append_record(line, record);
  line += '\n';
  bool wake = false;
  {
    const std::lock_guard lock(m_mutex);
    if (m_pending.size() + line.size() > k_max_pending) {
      ++m_dropped;
      return;
    }
    // The flusher sleeps until there is something to write, then for its interval unless
    // 64 KB gather first.
    wake = m_pending.empty() ||
           (m_pending.size() < k_flush_bytes && m_pending.size() + line.size() >= k_flush_bytes);
    m_pending += line;
  }
  if (wake) {
    m_cv.notify_one();
  }
}

void AccessLog::flush() {
  write_out();
}

void AccessLog::reopen() {
  if (!m_owned) {
    return;
  }
  const int fd = open_log(m_path);
  write_out(); // the lines gathered before the signal go to the file renamed away
  const std::lock_guard writing(m_write_mutex);
  ::close(m_fd);
  m_fd = fd;
}

std::uint64_t AccessLog::dropped() const {
  const std::lock_guard lock(m_mutex);
  return m_dropped;
}

void AccessLog::run_flusher() {
  std::unique_lock lock(m_mutex);
  while (!m_stopping) {
    m_cv.wait(lock, [&] { return m_stopping || !m_pending.empty(); });
    m_cv.wait_for(lock, m_interval,
                  [&] { return m_stopping || m_pending.size() >= k_flush_bytes; });
    lock.unlock();
    write_out();
    lock.lock();
    if (m_dropped != m_dropped_noted && m_note) {
      const auto n = m_dropped - m_dropped_noted;
      m_dropped_noted = m_dropped;
      lock.unlock();
      m_note("access log: " + std::to_string(n) +
             " line(s) dropped: the log could not be written as fast as requests came");
      lock.lock();
    }
  }
}

void AccessLog::write_out() {
  const std::lock_guard writing(m_write_mutex);
  {
    const std::lock_guard lock(m_mutex);
    m_writing.swap(m_pending);
  }
  const char* p = m_writing.data();
  std::size_t left = m_writing.size();
  while (left > 0) {
    const auto n = ::write(m_fd, p, left);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      break; // a full disk or a closed stderr must not fail the server
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  m_writing.clear();
  if (m_writing.capacity() > 4 * k_flush_bytes) {
    m_writing.shrink_to_fit(); // what a stalled file made grow is given back
  }
}

} // namespace mlctl::server

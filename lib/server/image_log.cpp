#include "server/image_log.hpp"

#include "util/error.hpp"
#include "util/fs.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <unistd.h>

namespace mlctl::server {

namespace {

[[noreturn]] void fail(const std::filesystem::path& path, const char* what) {
  throw Error(ErrorKind::io, path.string() + ": " + what + ": " + std::strerror(errno));
}

void close_fd(int& fd) {
  if (fd >= 0) {
    ::close(fd);
    fd = -1;
  }
}

// The file of `segment` in `dir`: `<dir>/00000042.u8`.
std::filesystem::path segment_path(const std::filesystem::path& dir, std::int64_t segment) {
  char name[32];
  std::snprintf(name, sizeof name, "%08lld.u8", static_cast<long long>(segment));
  return dir / name;
}

} // namespace

ImageLog::ImageLog(std::filesystem::path dir, std::uint64_t segment_bytes)
    : m_dir(std::move(dir)), m_segment_bytes(segment_bytes) {
  util::create_directories(m_dir);
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(m_dir, ec)) {
    const auto name = entry.path().filename().string();
    std::int64_t n = 0;
    const auto [end, err] = std::from_chars(name.data(), name.data() + name.size(), n);
    if (err == std::errc() && n > 0 && std::string_view(end) == ".u8") {
      std::error_code size_error;
      const auto size = entry.file_size(size_error);
      m_segments[n] = size_error ? 0 : size;
      m_bytes += m_segments[n];
    }
  }
  if (ec) {
    throw Error(ErrorKind::io, m_dir.string() + ": cannot list: " + ec.message());
  }
  // Never append to a segment of an earlier run: its tail may hold a batch that was written
  // but not committed.
  m_segment = m_segments.empty() ? 1 : m_segments.rbegin()->first + 1;
}

ImageLog::~ImageLog() {
  close_fd(m_fd);
}

ImageLocation ImageLog::add(std::span<const std::uint8_t> bytes) {
  if (m_size > 0 && m_size + bytes.size() > m_segment_bytes) {
    write();
    next_segment();
  }
  const ImageLocation where{m_segment, static_cast<std::int64_t>(m_size),
                            static_cast<std::int64_t>(bytes.size())};
  m_pending.insert(m_pending.end(), bytes.begin(), bytes.end());
  m_size += bytes.size();
  m_bytes += bytes.size();
  return where;
}

void ImageLog::write() {
  if (m_pending.empty()) {
    return;
  }
  const auto path = segment_path(m_dir, m_segment);
  try {
    if (m_fd < 0) {
      m_fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (m_fd < 0) {
        fail(path, "cannot create");
      }
      m_segments.emplace(m_segment, 0);
    }
    const auto* p = m_pending.data();
    auto left = m_pending.size();
    while (left > 0) {
      const auto n = ::write(m_fd, p, left);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        fail(path, "cannot write");
      }
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    m_segments[m_segment] += m_pending.size();
    m_pending.clear();
  } catch (...) {
    next_segment(); // offsets in this segment are no longer what the file holds
    throw;
  }
}

void ImageLog::next_segment() {
  close_fd(m_fd);
  m_bytes -= m_pending.size(); // what an error left unwritten
  m_pending.clear();
  m_size = 0;
  ++m_segment;
}

void ImageLog::remove_before(std::int64_t segment) {
  while (!m_segments.empty() && m_segments.begin()->first < std::min(segment, m_segment)) {
    std::error_code ec; // a segment already gone is what was wanted
    std::filesystem::remove(segment_path(m_dir, m_segments.begin()->first), ec);
    m_bytes -= m_segments.begin()->second;
    m_segments.erase(m_segments.begin());
  }
}

ImageReader::~ImageReader() {
  close_fd(m_fd);
}

std::vector<std::uint8_t> ImageReader::read(const ImageLocation& where) {
  if (where.size <= 0 || where.offset < 0) {
    return {};
  }
  if (m_fd < 0 || m_segment != where.segment) {
    close_fd(m_fd);
    m_segment = where.segment;
    m_fd = ::open(segment_path(m_dir, where.segment).c_str(), O_RDONLY | O_CLOEXEC);
    if (m_fd < 0) {
      return {};
    }
  }
  std::vector<std::uint8_t> out(static_cast<std::size_t>(where.size));
  std::size_t got = 0;
  while (got < out.size()) {
    const auto n = ::pread(m_fd, out.data() + got, out.size() - got,
                           static_cast<off_t>(where.offset + static_cast<std::int64_t>(got)));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return {};
    }
    got += static_cast<std::size_t>(n);
  }
  return out;
}

} // namespace mlctl::server

#include "util/fs.hpp"

#include "util/error.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <random>
#include <sstream>
#include <unistd.h>

namespace mlctl::util {
namespace fs = std::filesystem;

namespace {

std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char k_alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s(10, 'x');
  for (auto& c : s) {
    c = k_alphabet[rng() % (sizeof(k_alphabet) - 1)];
  }
  return s;
}

void create_parent(const fs::path& path) {
  if (const auto parent = path.parent_path(); !parent.empty()) {
    util::create_directories(parent);
  }
}

} // namespace

void create_directories(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    throw Error(io_error_kind(ec.value()),
                dir.string() + ": cannot create directory: " + ec.message());
  }
}

void throw_errno(const fs::path& path, std::string_view what) {
  throw Error(io_error_kind(errno),
              path.string() + ": " + std::string(what) + ": " + std::strerror(errno));
}

void write_file_atomic(const fs::path& path, std::span<const std::byte> data) {
  AtomicFile file(path);
  file.write(data);
  file.commit();
}

AtomicFile::AtomicFile(fs::path path) : m_path(std::move(path)) {
  create_parent(m_path);
  m_tmp = m_path;
  m_tmp += ".tmp-" + random_suffix();
  m_fd = ::open(m_tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (m_fd < 0) {
    throw_errno(m_path, "cannot create");
  }
}

AtomicFile::~AtomicFile() {
  if (m_fd >= 0) {
    ::close(m_fd);
    ::unlink(m_tmp.c_str());
  }
}

void AtomicFile::write(std::span<const std::byte> data) {
  write_at(m_size, data);
  m_size += data.size();
}

void AtomicFile::write_at(std::uint64_t offset, std::span<const std::byte> data) {
  if (m_fd < 0) {
    throw Error(ErrorKind::internal, m_path.string() + ": write after commit");
  }
  std::size_t done = 0;
  while (done < data.size()) {
    const auto n =
        ::pwrite(m_fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw_errno(m_path, "write failed");
    }
    done += static_cast<std::size_t>(n);
  }
}

void AtomicFile::commit() {
  if (m_fd < 0) {
    throw Error(ErrorKind::internal, m_path.string() + ": committed twice");
  }
  const int fd = m_fd;
  m_fd = -1;
  int error = ::fsync(fd) == 0 ? 0 : errno;
  if (::close(fd) != 0 && error == 0) {
    error = errno;
  }
  if (error != 0) {
    ::unlink(m_tmp.c_str());
    errno = error;
    throw_errno(m_path, "write failed");
  }
  if (::rename(m_tmp.c_str(), m_path.c_str()) != 0) {
    const int saved = errno;
    ::unlink(m_tmp.c_str());
    errno = saved;
    throw_errno(m_path, "cannot rename into place");
  }
}

void write_file_atomic(const fs::path& path, std::string_view text) {
  write_file_atomic(path, std::as_bytes(std::span(text.data(), text.size())));
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      throw Error(ErrorKind::not_found, path.string() + ": no such file");
    }
    throw_errno(path, "cannot open");
  }
  // A directory opens on Linux and reads as nothing.
  if (std::error_code ec; fs::is_directory(path, ec)) {
    throw Error(ErrorKind::invalid_input, path.string() + ": is a directory, not a file");
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    throw_errno(path, "read failed");
  }
  return std::move(ss).str();
}

TempDir::TempDir(const fs::path& parent, std::string_view prefix) {
  const fs::path base = parent.empty() ? fs::temp_directory_path() : parent;
  std::error_code ec;
  fs::create_directories(base, ec);
  for (int attempt = 0; attempt < 16; ++attempt) {
    fs::path candidate = base / (std::string(prefix) + random_suffix());
    if (fs::create_directory(candidate, ec)) {
      m_path = std::move(candidate);
      return;
    }
  }
  throw Error(ErrorKind::io, base.string() + ": cannot create a temporary directory" +
                                 (ec ? ": " + ec.message() : std::string()));
}

TempDir::~TempDir() {
  if (m_owned && !m_path.empty()) {
    std::error_code ec;
    fs::remove_all(m_path, ec);
  }
}

fs::path TempDir::release() noexcept {
  m_owned = false;
  return m_path;
}

namespace {
fs::path staging_parent(const fs::path& target) {
  create_parent(fs::absolute(target));
  return fs::absolute(target).parent_path();
}
} // namespace

StagedDir::StagedDir(fs::path target)
    : m_target(std::move(target)),
      m_staging(staging_parent(m_target), "." + m_target.filename().string() + ".staging-") {}

void StagedDir::commit() {
  std::error_code ec;
  fs::path aside;
  if (fs::exists(m_target, ec)) {
    aside = m_target;
    aside += ".old-" + random_suffix();
    fs::rename(m_target, aside, ec);
    if (ec) {
      throw Error(ErrorKind::io, m_target.string() + ": cannot replace: " + ec.message());
    }
  }
  fs::rename(m_staging.path(), m_target, ec);
  if (ec) {
    if (!aside.empty()) {
      std::error_code ignored;
      fs::rename(aside, m_target, ignored);
    }
    throw Error(io_error_kind(ec.value()),
                m_target.string() + ": cannot rename into place: " + ec.message());
  }
  m_staging.release();
  if (!aside.empty()) {
    fs::remove_all(aside, ec);
  }
}

} // namespace mlctl::util

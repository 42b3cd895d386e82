#include "server/artifact_store.hpp"

#include "artifact/sha256.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <random>
#include <unistd.h>

namespace mlctl::server {
namespace fs = std::filesystem;

namespace {

using util::throw_errno;

constexpr std::size_t k_write_buffer = 1 << 20;
constexpr std::uint64_t k_writeback_step = 4 << 20;

void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

std::string random_name(std::string_view prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char k_alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s(prefix);
  for (int i = 0; i < 12; ++i) {
    s += k_alphabet[rng() % (sizeof(k_alphabet) - 1)];
  }
  return s;
}

bool is_sha256_hex(std::string_view s) {
  return s.size() == 64 &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

} // namespace

struct ArtifactStore::Upload::Hasher {
  artifact::Sha256 sha;
};

ArtifactStore::ArtifactStore(fs::path data_dir)
    : m_data_dir(std::move(data_dir)), m_root(m_data_dir / "artifacts" / "sha256"), m_tmp(m_data_dir / "tmp") {
  util::create_directories(m_root);
  util::create_directories(m_tmp);
}

fs::path ArtifactStore::path_for(std::string_view sha256) const {
  return m_root / std::string(sha256.substr(0, 2)) / std::string(sha256);
}

std::string ArtifactStore::relative(const fs::path& path) const {
  return path.lexically_relative(m_data_dir).string();
}

bool ArtifactStore::contains(std::string_view sha256) const {
  std::error_code ec;
  return fs::is_regular_file(path_for(sha256), ec);
}

void ArtifactStore::track(const fs::path& path) {
  const std::lock_guard lock(m_mutex);
  m_active.insert(path);
}

void ArtifactStore::untrack(const fs::path& path) {
  const std::lock_guard lock(m_mutex);
  m_active.erase(path);
}

ArtifactStore::TempEntry::TempEntry(ArtifactStore& store, fs::path path) : m_store(store), m_path(std::move(path)) {
  m_store.track(m_path);
}

ArtifactStore::TempEntry::~TempEntry() {
  std::error_code ec;
  fs::remove_all(m_path, ec);
  m_store.untrack(m_path);
}

std::unique_ptr<ArtifactStore::Upload> ArtifactStore::begin_upload() {
  for (int attempt = 0; attempt < 8; ++attempt) {
    auto path = m_tmp / random_name("upload-");
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      return std::unique_ptr<Upload>(new Upload(*this, std::move(path), fd));
    }
    if (errno != EEXIST) {
      throw_errno(path, "cannot create");
    }
  }
  throw Error(ErrorKind::io, m_tmp.string() + ": cannot create a temporary file");
}

std::unique_ptr<ArtifactStore::TempEntry> ArtifactStore::scratch_dir() {
  for (int attempt = 0; attempt < 8; ++attempt) {
    auto path = m_tmp / random_name("scratch-");
    std::error_code ec;
    if (fs::create_directory(path, ec)) {
      return std::make_unique<TempEntry>(*this, std::move(path));
    }
    if (ec) {
      throw Error(io_error_kind(ec.value()),
                  path.string() + ": cannot create directory: " + ec.message());
    }
  }
  throw Error(ErrorKind::io, m_tmp.string() + ": cannot create a scratch directory");
}

bool ArtifactStore::adopt(Upload& upload) {
  const auto target = path_for(upload.sha256());
  util::create_directories(target.parent_path());
  std::error_code ec;
  if (fs::exists(target, ec)) {
    // Same name, same bytes: content addressing makes the stored copy as good as ours.
    upload.m_adopted = false;
    return false;
  }
  if (::rename(upload.path().c_str(), target.c_str()) != 0) {
    throw_errno(target, "cannot move the artifact into place");
  }
  upload.m_adopted = true;
  fsync_dir(target.parent_path());
  return true;
}

std::uint64_t ArtifactStore::remove(std::string_view sha256) {
  const auto path = path_for(sha256);
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) {
    return 0;
  }
  if (!fs::remove(path, ec) || ec) {
    if (ec) {
      throw Error(ErrorKind::io, path.string() + ": cannot remove: " + ec.message());
    }
    return 0;
  }
  fsync_dir(path.parent_path());
  // Leave the fan-out directory: an upload may be renaming into it right now.
  return size;
}

std::vector<ArtifactStore::StoredFile> ArtifactStore::scan() const {
  std::vector<StoredFile> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(m_root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (!it->is_regular_file(ec)) {
      continue;
    }
    StoredFile f;
    f.path = it->path();
    f.size = it->file_size(ec);
    const auto name = f.path.filename().string();
    if (is_sha256_hex(name) && f.path.parent_path().filename() == name.substr(0, 2) &&
        f.path.parent_path().parent_path() == m_root) {
      f.sha256 = name;
    }
    out.push_back(std::move(f));
  }
  if (ec) {
    throw Error(ErrorKind::io, m_root.string() + ": cannot list: " + ec.message());
  }
  return out;
}

std::vector<fs::path> ArtifactStore::stale_temporaries() const {
  std::vector<fs::path> out;
  std::error_code ec;
  const std::lock_guard lock(m_mutex);
  for (const auto& entry : fs::directory_iterator(m_tmp, ec)) {
    if (m_active.count(entry.path()) == 0) {
      out.push_back(entry.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// --- Upload

ArtifactStore::Upload::Upload(ArtifactStore& store, fs::path path, int fd)
    : m_entry(store, std::move(path)), m_fd(fd), m_hasher(std::make_unique<Hasher>()) {
  m_buffer.reserve(k_write_buffer);
}

ArtifactStore::Upload::~Upload() {
  if (m_fd >= 0) {
    ::close(m_fd);
  }
  // ~TempEntry removes the file, unless it moved to its address (then the name is gone).
}

void ArtifactStore::Upload::flush() {
  std::size_t done = 0;
  while (done < m_buffer.size()) {
    const auto n = ::write(m_fd, m_buffer.data() + done, m_buffer.size() - done);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      throw_errno(path(), "write failed");
    }
    done += static_cast<std::size_t>(n);
  }
  m_written += done;
  m_buffer.clear();
  // Start writing back what is complete, so that the fsync in `finish` waits only for the tail
  // (a hint: the fsync still decides durability).
  if (m_written - m_writeback >= k_writeback_step) {
    (void)::sync_file_range(m_fd, static_cast<off_t>(m_writeback),
                            static_cast<off_t>(m_written - m_writeback), SYNC_FILE_RANGE_WRITE);
    m_writeback = m_written;
  }
}

void ArtifactStore::Upload::write(const char* data, std::size_t size) {
  m_hasher->sha.update(std::string_view(data, size));
  m_size += size;
  if (m_buffer.size() + size > k_write_buffer) {
    flush();
  }
  if (size >= k_write_buffer) {
    m_buffer.assign(data, data + size);
    flush();
    return;
  }
  m_buffer.insert(m_buffer.end(), data, data + size);
}

void ArtifactStore::Upload::finish() {
  flush();
  if (::fsync(m_fd) != 0) {
    throw_errno(path(), "fsync failed");
  }
  if (::close(m_fd) != 0) {
    m_fd = -1;
    throw_errno(path(), "close failed");
  }
  m_fd = -1;
  m_sha256 = m_hasher->sha.hex_digest();
}

} // namespace mlctl::server

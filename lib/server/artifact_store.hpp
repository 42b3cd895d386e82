#pragma once
// Content-addressed artifact files under the data directory:
//   DATA/artifacts/sha256/ab/abcdef...   (the bytes whose sha256 is the file name)
//   DATA/tmp/                            (uploads being received, validation scratch space)
// A file reaches its address only whole (temporary file, fsync, rename, fsync of the
// directory), so an address never holds partial bytes.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace mlctl::server {

class ArtifactStore {
public:
  // Creates `data_dir/artifacts/sha256` and `data_dir/tmp` when missing. Throws `Error{io}`.
  explicit ArtifactStore(std::filesystem::path data_dir);

  const std::filesystem::path& data_dir() const noexcept { return m_data_dir; }
  const std::filesystem::path& tmp_dir() const noexcept { return m_tmp; }
  // Returns the address of `sha256` (64 lowercase hex; not checked for existence).
  std::filesystem::path path_for(std::string_view sha256) const;
  // Returns `path` relative to the data directory, for messages and reports.
  std::string relative(const std::filesystem::path& path) const;
  bool contains(std::string_view sha256) const;

  class Upload;
  // A temporary name under tmp/ kept out of `stale_temporaries()` while the object lives;
  // removed (recursively) on destruction.
  class TempEntry {
  public:
    TempEntry(ArtifactStore& store, std::filesystem::path path);
    ~TempEntry();
    TempEntry(const TempEntry&) = delete;
    TempEntry& operator=(const TempEntry&) = delete;
    const std::filesystem::path& path() const noexcept { return m_path; }

  private:
    ArtifactStore& m_store;
    std::filesystem::path m_path;
  };

  // Starts a temporary file under tmp/ that is hashed while written. Throws `Error{io}`.
  std::unique_ptr<Upload> begin_upload();
  // Creates a scratch directory under tmp/ (e.g. to unpack an artifact for validation).
  std::unique_ptr<TempEntry> scratch_dir();

  // Moves a finished upload to its content address. Returns true when the address was empty;
  // false when the same bytes were stored already (the upload's file is then removed).
  // Throws `Error{io}`.
  bool adopt(Upload& upload);
  // Removes the artifact; returns the bytes freed (0 when it was not there). Throws `Error{io}`.
  std::uint64_t remove(std::string_view sha256);

  struct StoredFile {
    std::filesystem::path path;
    std::string sha256; // empty when the file name is not a well-formed address
    std::uint64_t size = 0;
  };
  // Returns every regular file under artifacts/ (addresses and strays).
  std::vector<StoredFile> scan() const;
  // Returns the entries of tmp/ that no live `Upload`/`TempEntry` owns.
  std::vector<std::filesystem::path> stale_temporaries() const;

private:
  void track(const std::filesystem::path& path);
  void untrack(const std::filesystem::path& path);

  std::filesystem::path m_data_dir;
  std::filesystem::path m_root; // artifacts/sha256
  std::filesystem::path m_tmp;
  mutable std::mutex m_mutex;
  std::set<std::filesystem::path> m_active;
};

// An upload in progress: bytes are buffered, written to a temporary file and hashed.
class ArtifactStore::Upload {
public:
  ~Upload();
  Upload(const Upload&) = delete;
  Upload& operator=(const Upload&) = delete;

  // Appends bytes. Throws `Error{io}` (e.g. a full disk).
  void write(const char* data, std::size_t size);
  // Flushes and fsyncs the file and fixes the digest. Throws `Error{io}`.
  void finish();
  std::uint64_t size() const noexcept { return m_size; }
  // The lowercase hex sha256; valid after `finish()`.
  const std::string& sha256() const noexcept { return m_sha256; }
  const std::filesystem::path& path() const noexcept { return m_entry.path(); }

private:
  friend class ArtifactStore;
  Upload(ArtifactStore& store, std::filesystem::path path, int fd);
  void flush();

  struct Hasher;
  TempEntry m_entry;
  int m_fd;
  std::unique_ptr<Hasher> m_hasher;
  std::vector<char> m_buffer;
  std::uint64_t m_size = 0;
  std::uint64_t m_written = 0;   // bytes handed to write(2)
  std::uint64_t m_writeback = 0; // bytes whose writeback was started
  std::string m_sha256;
  bool m_adopted = false;
};

} // namespace mlctl::server

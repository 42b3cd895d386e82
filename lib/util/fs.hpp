#pragma once
// Files others may read are written to a temporary path and renamed into place, through
// these helpers only: a crash never leaves a half-written file or directory behind.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

namespace mlctl::util {

// Throws the `Error` of a failed system call on `path`: `<path>: <what>: <strerror(errno)>`,
// of kind `no_space` for a full disk or quota, `io` otherwise.
[[noreturn]] void throw_errno(const std::filesystem::path& path, std::string_view what);

// Creates `dir` and its missing parents. Throws `Error{io}` (`no_space` for a full disk)
// naming `dir`.
void create_directories(const std::filesystem::path& dir);

// Writes `data` to `path` atomically (temporary file in the same directory, fsync, rename).
// Creates missing parent directories. Throws `Error{io}` naming `path`.
void write_file_atomic(const std::filesystem::path& path, std::span<const std::byte> data);
void write_file_atomic(const std::filesystem::path& path, std::string_view text);

// A file written piece by piece to a temporary path in the destination directory and renamed
// into place by `commit()` (after fsync); destroyed without `commit()`, it removes the
// temporary file and `path` is untouched. For files too large to assemble in memory first.
class AtomicFile {
public:
  // Creates the temporary file (and missing parent directories). Throws `Error{io}`.
  explicit AtomicFile(std::filesystem::path path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Appends `data`. Throws `Error{io}` naming the final path.
  void write(std::span<const std::byte> data);
  // Overwrites bytes already written, at `offset` (e.g. a header completed afterwards).
  // Throws `Error{io}`.
  void write_at(std::uint64_t offset, std::span<const std::byte> data);
  // Returns the number of bytes appended so far.
  std::uint64_t size() const noexcept { return m_size; }
  // Syncs, closes and renames the file into place. Throws `Error{io}`.
  void commit();

private:
  std::filesystem::path m_path;
  std::filesystem::path m_tmp;
  int m_fd = -1;
  std::uint64_t m_size = 0;
};

// Reads the whole file. Throws `Error{not_found}` when it does not exist, `Error{invalid_input}`
// "<path>: is a directory, not a file", `Error{io}` otherwise.
std::string read_file(const std::filesystem::path& path);

// A directory that is removed (recursively) when the object is destroyed, unless `release()`d.
class TempDir {
public:
  // Creates a fresh directory under `parent` (default: the system temporary directory)
  // whose name starts with `prefix`. Throws `Error{io}`.
  explicit TempDir(const std::filesystem::path& parent = {}, std::string_view prefix = "mlctl-");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const noexcept { return m_path; }
  // Stops the destructor from removing the directory and returns its path.
  std::filesystem::path release() noexcept;

private:
  std::filesystem::path m_path;
  bool m_owned = true;
};

// Builds a directory next to its final place and renames it there when complete.
// Destroyed without `commit()`, the staging directory is removed and `target` is untouched.
class StagedDir {
public:
  // Throws `Error{io}` when the parent of `target` cannot be created.
  explicit StagedDir(std::filesystem::path target);
  const std::filesystem::path& path() const noexcept { return m_staging.path(); }
  // Replaces `target` with the staged directory (an existing `target` is moved aside first
  // and removed after the rename). Throws `Error{io}`.
  void commit();

private:
  std::filesystem::path m_target;
  TempDir m_staging;
};

} // namespace mlctl::util

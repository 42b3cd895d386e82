#pragma once
// Zip archives (libzip) read into memory and written with deterministic bytes: the container
// of `.npz` files.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace mlctl::artifact {

struct ZipEntry {
  std::string name; // path inside the archive, e.g. "x.npy"
  std::string data; // uncompressed content
};

// Limits that guard readers against zip bombs.
inline constexpr std::uint64_t k_zip_max_total_bytes = 4ull << 30; // 4 GiB uncompressed
inline constexpr std::uint64_t k_zip_max_entries = 10000;

// Returns the regular-file entries of the zip at `path` in archive order (directories skipped).
// Throws `Error{not_found}` for a missing file, `Error{corrupt}` "<file>: not a zip archive"
// for other bytes, "<file>: <entry>: ..." for an unreadable, encrypted or oversized entry
// (over `k_zip_max_total_bytes` in total or `k_zip_max_entries` entries).
std::vector<ZipEntry> read_zip(const std::filesystem::path& path);
// Same as `read_zip` for an archive held in memory; `name` is used in error messages.
std::vector<ZipEntry> read_zip_memory(std::string_view bytes, std::string_view name);

// Writes `entries` (in the given order, stored uncompressed as `numpy.savez` does: datasets
// are read far more often than written; mtime 1980-01-01, no extra fields) to
// `path` atomically: the same entries always give the same bytes. Duplicate or empty
// names throw `Error{invalid_input}`; write failures `Error{io}` naming `path`.
void write_zip(const std::filesystem::path& path, const std::vector<ZipEntry>& entries);
// Returns the bytes `write_zip` would write.
std::string encode_zip(const std::vector<ZipEntry>& entries);

} // namespace mlctl::artifact

#pragma once
// Zip archives (libzip) read into memory and written with deterministic bytes: the container
// of `.npz` files.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
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
// names throw `Error{invalid_input}`, as does an archive past 4 GiB (no zip64); write
// failures `Error{io}` naming `path`.
void write_zip(const std::filesystem::path& path, const std::vector<ZipEntry>& entries);
// Returns the bytes `write_zip` would write (built with libzip, which also writes zip64).
std::string encode_zip(const std::vector<ZipEntry>& entries);

// An entry of `write_zip_parts`: its content is the concatenation of `parts`, read in place.
struct ZipEntryParts {
  std::string name;
  std::vector<std::span<const std::byte>> parts;
};

// Writes `entries` to `path` atomically with the bytes `write_zip` gives for the same
// contents, streaming each part into the file (its CRC computed on the way) instead of
// assembling the archive in memory: for large arrays. Throws what `write_zip` throws, and
// `Error{invalid_input}` "<path>: zip: archive past 4 GiB (zip64 is not written)" (or more
// than 65535 entries).
void write_zip_parts(const std::filesystem::path& path, const std::vector<ZipEntryParts>& entries);

} // namespace mlctl::artifact

#pragma once
// tar.gz archives (libarchive): deterministic packing of a model directory, streaming reads,
// and extraction that refuses anything that could escape the destination.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace mlctl::artifact {

struct TarEntry {
  std::string path;       // relative path as stored in the archive
  std::uint64_t size = 0; // size in bytes of the entry's data
};

// Calls `fn` for each regular-file entry of the .tar or .tar.gz at `tgz` with its whole
// content in memory (entries larger than 1 GiB throw), in archive order; other entry types
// are skipped. `fn` returns false to stop early. Throws `Error{not_found}` for a missing file,
// `Error{invalid_input}` "<file>: not a gzip-compressed tar archive" for other bytes,
// `Error{corrupt}` "<file>: ..." for a damaged archive.
void for_each_tar_entry(const std::filesystem::path& tgz,
                        const std::function<bool(const TarEntry&, std::string_view data)>& fn);

// Packs the regular files under `dir` (relative paths, sorted bytewise, directories implied)
// into a deterministic tar.gz at `out_tgz` (written atomically): mtime 0, uid/gid 0, empty
// uname/gname, mode 0644 (0755 when the owner may execute), no gzip timestamp or name.
// Returns the lowercase hex sha256 of the archive. Throws `Error{invalid_input}` naming the
// entry for symlinks, devices, fifos or sockets in `dir`, `Error{not_found}` when `dir` is not
// a directory, `Error{io}` for read/write failures.
std::string pack_directory(const std::filesystem::path& dir, const std::filesystem::path& out_tgz);

struct UnpackLimits {
  std::uint64_t max_total_bytes = 512ull << 20; // actual bytes extracted, all entries together
  std::uint64_t max_entries = 10000;
};

// Extracts the .tar.gz (or plain .tar) at `tgz` into `dest`, which must be missing or empty,
// and returns the relative paths of the extracted files in archive order. Refuses with
// `Error{invalid_input}` "<file>: <entry>: ..." absolute paths, `..` components, symlinks,
// hardlinks, devices, fifos, duplicate files, and archives over `limits` (bytes are counted
// while extracting, not taken from headers); "<file>: not a gzip-compressed tar archive" for
// other bytes. On any error the files extracted so far are removed from `dest`.
std::vector<std::string> unpack_safely(const std::filesystem::path& tgz,
                                       const std::filesystem::path& dest,
                                       const UnpackLimits& limits = {});

} // namespace mlctl::artifact

#pragma once
// tar.gz archives (libarchive): deterministic packing of a model directory, streaming reads,
// and extraction that refuses anything that could escape the destination.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
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

// Returns the next block of an archive's bytes, valid until the next call; an empty view at
// the end. An exception it throws ends the reading: its message becomes the archive's error.
using ByteSource = std::function<std::string_view()>;

struct ScannedArchive {
  std::vector<std::string> files;          // relative paths of the regular files, archive order
  std::map<std::string, std::string> kept; // path -> content, for the files `keep` selected
  std::uint64_t total_bytes = 0;           // the files' bytes, all together
};

// Reads a .tar.gz (or plain .tar) once from `source`, applying every refusal of
// `unpack_safely`, and writes nothing: files are counted against `limits` and dropped, except
// those for which `keep(path)` is true, whose contents are returned. An entry that would land
// on or under an earlier file, or a file on an earlier directory, is refused with
// "<entry>: conflicts with an earlier entry". Messages start with "<name>: " where
// `unpack_safely` names the file; kinds are as there.
ScannedArchive scan_safely(const ByteSource& source, std::string_view name,
                           const std::function<bool(const std::string&)>& keep,
                           const UnpackLimits& limits = {});
// The same, reading the file `tgz` (messages start with its path). Throws `Error{not_found}`
// for a missing file.
ScannedArchive scan_safely(const std::filesystem::path& tgz,
                           const std::function<bool(const std::string&)>& keep,
                           const UnpackLimits& limits = {});

} // namespace mlctl::artifact

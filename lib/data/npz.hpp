#pragma once
// .npz files: a zip of "<name>.npy" entries, as numpy.savez / savez_compressed write them.

#include "data/npy.hpp"

#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mlctl::data {

// Reads every array of the .npz at `path`, keyed by entry name without ".npy".
// Throws `Error{not_found}` for a missing file, `Error{corrupt}` "<file>: not a zip archive",
// "<file>: not an npz archive: <entry> is not a .npy file", or "<file>: <entry>.npy: ..."
// from `parse_npy` (`Error{invalid_input}` for unsupported arrays).
std::map<std::string, NpyArray> read_npz(const std::filesystem::path& path);
// Same as `read_npz` for bytes in memory; `name` is used in error messages.
std::map<std::string, NpyArray> read_npz_memory(std::string_view bytes, std::string_view name);

// Writes `arrays` as "<key>.npy" entries in key order (stored, as numpy.savez does) to `path`
// atomically; the same map always gives the same bytes. Throws `Error{invalid_input}` for a
// bad key or array, `Error{io}` for write failures.
void write_npz(const std::filesystem::path& path, const std::map<std::string, NpyArray>& arrays);

// An array whose bytes stay where they are (C order, little-endian), for `write_npz_views`.
struct NpyView {
  std::string dtype;
  std::vector<std::size_t> shape;
  std::span<const std::byte> data;
};
// Same as `write_npz` (same bytes for the same arrays), streaming each array's bytes from
// where they are into the file: nothing is copied, whatever the size of the arrays.
void write_npz_views(const std::filesystem::path& path,
                     const std::map<std::string, NpyView>& arrays);
// Returns the bytes `write_npz` would write.
std::string encode_npz(const std::map<std::string, NpyArray>& arrays);

} // namespace mlctl::data

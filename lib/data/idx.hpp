#pragma once
// The IDX format of the MNIST files (http://yann.lecun.com/exdb/mnist/): two zero bytes, a
// type byte, a dimension count, big-endian uint32 dimensions, then the data in C order.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mlctl::data {

struct IdxArray {
  std::vector<std::uint32_t> dims; // 1..4 dimensions, e.g. {60000, 28, 28}
  std::vector<std::uint8_t> data;  // product(dims) bytes, C order
};

// Largest inflated size accepted from a gzip-compressed IDX file (a gzip-bomb guard).
inline constexpr std::size_t k_idx_max_inflated_bytes = std::size_t{1} << 30;

// Parses an IDX file of unsigned bytes (type 0x08), gunzipping it first when it starts with
// 1f 8b. Throws `Error{corrupt}` "<name>: <what> at byte <offset>" for a bad magic, another
// element type, 0 or more than 4 dimensions, a size overflow, truncated data or trailing
// bytes, a damaged gzip stream or one that inflates past `k_idx_max_inflated_bytes`.
IdxArray parse_idx(std::span<const std::byte> bytes, std::string_view name);
// Same as above with another inflated-size limit (tests use a small one).
IdxArray parse_idx(std::span<const std::byte> bytes, std::string_view name,
                   std::size_t max_inflated_bytes);
// Reads and parses the file at `path` (errors name the file name).
// Throws `Error{not_found}`/`Error{io}` from reading, `Error{corrupt}` from `parse_idx`.
IdxArray read_idx_file(const std::filesystem::path& path);
// Returns the raw (not gzipped) IDX bytes of `array`. Throws `Error{invalid_input}` when
// `dims` has 0 or more than 4 entries or `data` does not hold product(dims) bytes.
std::string encode_idx(const IdxArray& array);

} // namespace mlctl::data

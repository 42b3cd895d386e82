#pragma once
// The .npy format (NEP 1, numpy.lib.format): magic "\x93NUMPY", version, header length, a
// Python-literal dict {'descr', 'fortran_order', 'shape'} padded to 64 bytes, then C-order data.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace mlctl::data {

struct NpyArray {
  std::string dtype;              // numpy descr: "|u1", "|i1", "|b1", "<u2".."<i8", "<f4", "<f8"
  std::vector<std::size_t> shape; // {} for a scalar
  std::string data;               // element bytes in C order, little-endian

  // Returns the number of elements (product of `shape`; 1 for a scalar).
  std::size_t count() const;
};

// Returns the size in bytes of one element of `dtype`, or 0 when the descr is not supported.
std::size_t npy_item_size(std::string_view dtype);

// Returns format-1.0 .npy bytes for `array` (header padded with spaces and '\n' to a multiple
// of 64 bytes, keys in numpy's order). Throws `Error{invalid_input}` for an unsupported dtype
// or when `data` does not hold count() * item size bytes.
std::string encode_npy(const NpyArray& array);
// Returns the header `encode_npy` writes before `data_size` bytes of data, with the same checks
// (`data_size` must be the array's byte size).
std::string encode_npy_header(const std::string& dtype, const std::vector<std::size_t>& shape,
                              std::size_t data_size);

// Parses .npy bytes of format 1.0, 2.0 or 3.0. Throws `Error{corrupt}` "<name>: ..." for a
// bad magic, a malformed header, truncated or extra data; `Error{invalid_input}` "<name>: ..."
// for fortran_order True, big-endian, object or other unsupported dtypes.
NpyArray parse_npy(std::string_view bytes, std::string_view name);

} // namespace mlctl::data

// libFuzzer target: `data::read_npz_memory` (libzip + the npy parser) and `data::parse_npy` on
// arbitrary bytes. Only `mlctl::Error` may escape; accepted arrays must round-trip.

#include "data/npy.hpp"
#include "data/npz.hpp"
#include "util/error.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

bool same(const mlctl::data::NpyArray& a, const mlctl::data::NpyArray& b) {
  return a.dtype == b.dtype && a.shape == b.shape && a.data == b.data;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace d = mlctl::data;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    const d::NpyArray a = d::parse_npy(bytes, "fuzz.npy");
    if (!same(a, d::parse_npy(d::encode_npy(a), "again.npy"))) {
      __builtin_trap();
    }
  } catch (const mlctl::Error&) {
  }
  try {
    const auto arrays = d::read_npz_memory(bytes, "fuzz.npz");
    const auto again = d::read_npz_memory(d::encode_npz(arrays), "again.npz");
    if (again.size() != arrays.size()) {
      __builtin_trap();
    }
    for (const auto& [key, array] : arrays) {
      if (!again.contains(key) || !same(array, again.at(key))) {
        __builtin_trap();
      }
    }
  } catch (const mlctl::Error&) {
  }
  return 0;
}

// libFuzzer target: `data::parse_idx` on arbitrary bytes (raw or gzip). Only `mlctl::Error`
// may escape the parser; whatever it accepts must survive an encode/parse round trip.

#include "data/idx.hpp"
#include "util/error.hpp"

#include <cstddef>
#include <cstdint>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace d = mlctl::data;
  const auto bytes = std::as_bytes(std::span(data, size));
  try {
    // A lower inflate limit than the default keeps the fuzzer within its memory budget.
    const d::IdxArray a = d::parse_idx(bytes, "fuzz", std::size_t{64} << 20);
    const std::string encoded = d::encode_idx(a);
    const d::IdxArray b =
        d::parse_idx(std::as_bytes(std::span(encoded.data(), encoded.size())), "again");
    if (a.dims != b.dims || a.data != b.data) {
      __builtin_trap();
    }
  } catch (const mlctl::Error&) {
  }
  return 0;
}

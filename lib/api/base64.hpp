#pragma once
// Base64 (RFC 4648, standard alphabet, padded) for binary fields on the wire, e.g. the pixels of
// a subsample's rows: a third of the size of a JSON number list and far cheaper to build.

#include "util/error.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mlctl::api {

// Returns `bytes` in base64.
inline std::string base64_encode(const std::uint8_t* bytes, std::size_t n) {
  static constexpr char k_alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  for (std::size_t i = 0; i < n; i += 3) {
    const std::uint32_t v = (static_cast<std::uint32_t>(bytes[i]) << 16) |
                            (i + 1 < n ? static_cast<std::uint32_t>(bytes[i + 1]) << 8 : 0U) |
                            (i + 2 < n ? static_cast<std::uint32_t>(bytes[i + 2]) : 0U);
    out += k_alphabet[(v >> 18) & 63];
    out += k_alphabet[(v >> 12) & 63];
    out += i + 1 < n ? k_alphabet[(v >> 6) & 63] : '=';
    out += i + 2 < n ? k_alphabet[v & 63] : '=';
  }
  return out;
}

// Decodes base64 `text` (padding optional). Throws `Error{invalid_input}` "<what>: not base64".
inline std::vector<std::uint8_t> base64_decode(std::string_view text, std::string_view what) {
  const auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z')
      return c - 'A';
    if (c >= 'a' && c <= 'z')
      return c - 'a' + 26;
    if (c >= '0' && c <= '9')
      return c - '0' + 52;
    if (c == '+')
      return 62;
    if (c == '/')
      return 63;
    return -1;
  };
  while (!text.empty() && text.back() == '=') {
    text.remove_suffix(1);
  }
  std::vector<std::uint8_t> out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : text) {
    const int v = value(c);
    if (v < 0) {
      throw Error(ErrorKind::invalid_input, std::string(what) + ": not base64");
    }
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::uint8_t>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

} // namespace mlctl::api

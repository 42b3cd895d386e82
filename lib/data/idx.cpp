#include "data/idx.hpp"

#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/inflate.hpp"

#include <algorithm>

namespace mlctl::data {

namespace {

constexpr std::uint8_t k_type_ubyte = 0x08;

[[noreturn]] void fail(std::string_view name, const std::string& what, std::size_t offset) {
  throw Error(ErrorKind::corrupt,
              std::string(name) + ": " + what + " at byte " + std::to_string(offset));
}

std::string hex_byte(std::uint8_t b) {
  static constexpr char k_hex[] = "0123456789abcdef";
  return std::string("0x") + k_hex[b >> 4] + k_hex[b & 0x0f];
}

std::uint32_t read_be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

IdxArray parse_raw(const std::uint8_t* p, std::size_t size, std::string_view name) {
  if (size < 4) {
    fail(name, "truncated: expected a 4-byte header, got " + std::to_string(size), size);
  }
  if (p[0] != 0 || p[1] != 0) {
    fail(name,
         "not an IDX file: bad magic " + hex_byte(p[0]) + " " + hex_byte(p[1]) +
             " (expected 0x00 0x00)",
         0);
  }
  if (p[2] != k_type_ubyte) {
    fail(name, "unsupported element type " + hex_byte(p[2]) + " (only 0x08, unsigned byte)", 2);
  }
  const std::size_t ndims = p[3];
  if (ndims < 1 || ndims > 4) {
    fail(name, "unsupported number of dimensions " + std::to_string(ndims) + " (expected 1..4)", 3);
  }
  const std::size_t header = 4 + 4 * ndims;
  if (size < header) {
    fail(name,
         "truncated: expected " + std::to_string(header) + " header bytes, got " +
             std::to_string(size),
         size);
  }
  IdxArray out;
  std::uint64_t count = 1;
  for (std::size_t i = 0; i < ndims; ++i) {
    const std::uint32_t d = read_be32(p + 4 + 4 * i);
    out.dims.push_back(d);
    // Four uint32 dimensions can overflow 64 bits; anything past the input is refused anyway.
    if (d != 0 && count > (std::uint64_t{1} << 62) / d) {
      fail(name, "dimensions overflow the addressable size", 4 + 4 * i);
    }
    count *= d;
  }
  const std::size_t have = size - header;
  if (count > have) {
    fail(name,
         "truncated: expected " + std::to_string(count) + " bytes of data, got " +
             std::to_string(have),
         size);
  }
  if (count < have) {
    fail(name,
         std::to_string(have - count) + " trailing bytes after " + std::to_string(count) +
             " bytes of data",
         header + static_cast<std::size_t>(count));
  }
  out.data.assign(p + header, p + size);
  return out;
}

} // namespace

IdxArray parse_idx(std::span<const std::byte> bytes, std::string_view name) {
  return parse_idx(bytes, name, k_idx_max_inflated_bytes);
}

IdxArray parse_idx(std::span<const std::byte> bytes, std::string_view name,
                   std::size_t max_inflated_bytes) {
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (util::is_gzip(text)) {
    std::string raw;
    try {
      util::inflate(text, util::Compression::gzip, max_inflated_bytes, raw);
    } catch (const util::InflateError& e) {
      fail(name, e.what(), e.offset());
    }
    return parse_raw(reinterpret_cast<const std::uint8_t*>(raw.data()), raw.size(), name);
  }
  return parse_raw(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), name);
}

IdxArray read_idx_file(const std::filesystem::path& path) {
  const std::string bytes = util::read_file(path);
  return parse_idx(std::as_bytes(std::span(bytes.data(), bytes.size())), path.string());
}

std::string encode_idx(const IdxArray& array) {
  if (array.dims.empty() || array.dims.size() > 4) {
    throw Error(ErrorKind::invalid_input,
                "idx: expected 1..4 dimensions, got " + std::to_string(array.dims.size()));
  }
  std::uint64_t count = 1;
  bool overflow = false;
  for (const auto d : array.dims) {
    overflow = overflow || __builtin_mul_overflow(count, std::uint64_t{d}, &count);
  }
  if (overflow || count != array.data.size()) {
    throw Error(ErrorKind::invalid_input, "idx: dimensions need " + std::to_string(count) +
                                              " bytes, got " + std::to_string(array.data.size()));
  }
  std::string out;
  out.reserve(4 + 4 * array.dims.size() + array.data.size());
  out.push_back('\0');
  out.push_back('\0');
  out.push_back(static_cast<char>(k_type_ubyte));
  out.push_back(static_cast<char>(array.dims.size()));
  for (const auto d : array.dims) {
    for (int shift = 24; shift >= 0; shift -= 8) {
      out.push_back(static_cast<char>((d >> shift) & 0xff));
    }
  }
  out.append(reinterpret_cast<const char*>(array.data.data()), array.data.size());
  return out;
}

} // namespace mlctl::data

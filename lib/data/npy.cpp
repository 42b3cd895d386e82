#include "data/npy.hpp"

#include "util/error.hpp"

#include <array>
#include <cctype>
#include <optional>

namespace mlctl::data {

namespace {

constexpr std::string_view k_magic = "\x93NUMPY";

struct DtypeInfo {
  std::string_view descr;
  std::size_t size;
};
constexpr std::array<DtypeInfo, 11> k_dtypes{{
    {"|u1", 1},
    {"|i1", 1},
    {"|b1", 1},
    {"<u2", 2},
    {"<i2", 2},
    {"<u4", 4},
    {"<i4", 4},
    {"<u8", 8},
    {"<i8", 8},
    {"<f4", 4},
    {"<f8", 8},
}};

// Returns count * item_size, or nullopt on overflow.
std::optional<std::size_t> byte_size(const std::vector<std::size_t>& shape, std::size_t item) {
  std::size_t n = item;
  for (const auto d : shape) {
    if (__builtin_mul_overflow(n, d, &n)) {
      return std::nullopt;
    }
  }
  return n;
}

// A parser for the header: a Python literal dict of strings, booleans and int tuples, as
// numpy.lib.format writes it (read_array_header uses ast.literal_eval).
class HeaderParser {
public:
  HeaderParser(std::string_view text, std::string_view name) : m_text(text), m_name(name) {}

  struct Header {
    std::string descr;
    bool fortran_order = false;
    std::vector<std::size_t> shape;
  };

  Header parse() {
    Header h;
    bool has_descr = false;
    bool has_fortran = false;
    bool has_shape = false;
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') {
        ++m_pos;
        break;
      }
      const std::string key = string_literal();
      expect(':');
      if (key == "descr") {
        skip_space();
        if (peek() == '[') {
          throw Error(ErrorKind::invalid_input,
                      std::string(m_name) + ": structured dtypes are not supported");
        }
        h.descr = string_literal();
        has_descr = true;
      } else if (key == "fortran_order") {
        h.fortran_order = boolean();
        has_fortran = true;
      } else if (key == "shape") {
        h.shape = tuple();
        has_shape = true;
      } else {
        fail("unexpected key '" + key + "'");
      }
      skip_space();
      if (peek() == ',') {
        ++m_pos;
        continue;
      }
      expect('}');
      break;
    }
    skip_space();
    if (m_pos != m_text.size()) {
      fail("unexpected text after the dict");
    }
    if (!has_descr || !has_fortran || !has_shape) {
      fail(std::string("missing key '") +
           (!has_descr     ? "descr"
            : !has_fortran ? "fortran_order"
                           : "shape") +
           "'");
    }
    return h;
  }

private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorKind::corrupt, std::string(m_name) + ": malformed npy header: " + what +
                                        " at header offset " + std::to_string(m_pos));
  }
  char peek() const { return m_pos < m_text.size() ? m_text[m_pos] : '\0'; }
  void skip_space() {
    while (m_pos < m_text.size() && std::isspace(static_cast<unsigned char>(m_text[m_pos])) != 0) {
      ++m_pos;
    }
  }
  void expect(char c) {
    skip_space();
    if (peek() != c) {
      fail(std::string("expected '") + c + "'");
    }
    ++m_pos;
  }
  std::string string_literal() {
    skip_space();
    const char quote = peek();
    if (quote != '\'' && quote != '"') {
      fail("expected a string");
    }
    ++m_pos;
    std::string out;
    while (m_pos < m_text.size() && m_text[m_pos] != quote) {
      if (m_text[m_pos] == '\\') {
        fail("escapes are not supported in strings");
      }
      out.push_back(m_text[m_pos++]);
    }
    if (m_pos >= m_text.size()) {
      fail("unterminated string");
    }
    ++m_pos;
    return out;
  }
  bool boolean() {
    skip_space();
    if (m_text.substr(m_pos, 4) == "True") {
      m_pos += 4;
      return true;
    }
    if (m_text.substr(m_pos, 5) == "False") {
      m_pos += 5;
      return false;
    }
    fail("expected True or False");
  }
  std::size_t integer() {
    skip_space();
    if (std::isdigit(static_cast<unsigned char>(peek())) == 0) {
      fail("expected a non-negative integer");
    }
    std::size_t v = 0;
    while (std::isdigit(static_cast<unsigned char>(peek())) != 0) {
      const auto digit = static_cast<std::size_t>(m_text[m_pos] - '0');
      if (__builtin_mul_overflow(v, std::size_t{10}, &v) || __builtin_add_overflow(v, digit, &v)) {
        fail("dimension too large");
      }
      ++m_pos;
    }
    if (peek() == 'L') { // written by Python 2
      ++m_pos;
    }
    return v;
  }
  std::vector<std::size_t> tuple() {
    expect('(');
    std::vector<std::size_t> out;
    while (true) {
      skip_space();
      if (peek() == ')') {
        ++m_pos;
        // "(3)" is the integer 3, not a tuple: Python requires "(3,)".
        if (out.size() == 1 && !m_trailing_comma) {
          fail("shape must be a tuple");
        }
        return out;
      }
      out.push_back(integer());
      if (out.size() > 32) {
        fail("more than 32 dimensions");
      }
      skip_space();
      m_trailing_comma = peek() == ',';
      if (m_trailing_comma) {
        ++m_pos;
      } else if (peek() != ')') {
        fail("expected ',' or ')'");
      }
    }
  }

  std::string_view m_text;
  std::string_view m_name;
  std::size_t m_pos = 0;
  bool m_trailing_comma = false;
};

// Maps a descr to the canonical spelling numpy writes on a little-endian host, refusing
// what this reader does not support.
std::string canonical_descr(const std::string& descr, std::string_view name) {
  const auto unsupported = [&](const std::string& why) {
    return Error(ErrorKind::invalid_input, std::string(name) + ": " + why);
  };
  if (descr.empty()) {
    throw unsupported("empty dtype");
  }
  char order = descr[0];
  std::string rest = descr.substr(1);
  if (order != '<' && order != '>' && order != '|' && order != '=') {
    order = '|';
    rest = descr;
  }
  if (rest.starts_with("O")) {
    throw unsupported("object arrays are not supported");
  }
  const std::size_t size = npy_item_size("<" + rest) + npy_item_size("|" + rest);
  if (size == 0) {
    throw unsupported("unsupported dtype '" + descr + "'");
  }
  if (size == 1) {
    return "|" + rest; // byte order is irrelevant for one-byte types
  }
  if (order == '>') {
    throw unsupported("big-endian dtype '" + descr + "' is not supported");
  }
  if (order == '|') {
    throw unsupported("unsupported dtype '" + descr + "'");
  }
  return "<" + rest;
}

std::string shape_text(const std::vector<std::size_t>& shape) {
  std::string out = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) {
      out += ", ";
    }
    out += std::to_string(shape[i]);
  }
  if (shape.size() == 1) {
    out += ",";
  }
  return out + ")";
}

std::uint32_t read_le(std::string_view bytes, std::size_t offset, std::size_t width) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < width; ++i) {
    v |= std::uint32_t{static_cast<unsigned char>(bytes[offset + i])} << (8 * i);
  }
  return v;
}

} // namespace

std::size_t NpyArray::count() const {
  std::size_t n = 1;
  for (const auto d : shape) {
    n *= d;
  }
  return n;
}

std::size_t npy_item_size(std::string_view dtype) {
  for (const auto& d : k_dtypes) {
    if (d.descr == dtype) {
      return d.size;
    }
  }
  return 0;
}

std::string encode_npy(const NpyArray& array) {
  std::string out = encode_npy_header(array.dtype, array.shape, array.data.size());
  out += array.data;
  return out;
}

std::string encode_npy_header(const std::string& dtype, const std::vector<std::size_t>& shape,
                              std::size_t data_size) {
  const std::size_t item = npy_item_size(dtype);
  if (item == 0) {
    throw Error(ErrorKind::invalid_input, "npy: unsupported dtype '" + dtype + "'");
  }
  const auto need = byte_size(shape, item);
  if (!need || *need != data_size) {
    throw Error(ErrorKind::invalid_input,
                "npy: shape " + shape_text(shape) + " of " + dtype + " needs " +
                    (need ? std::to_string(*need) : std::string("too many")) + " bytes, got " +
                    std::to_string(data_size));
  }
  std::string header =
      "{'descr': '" + dtype + "', 'fortran_order': False, 'shape': " + shape_text(shape) + ", }";
  // NEP 1: magic (6) + version (2) + length (2 or 4) + header, padded with spaces and ended
  // by '\n' so the data starts at a multiple of 64 bytes.
  const bool v2 = header.size() + 1 + 10 + 64 > 0xffff;
  const std::size_t prefix = v2 ? 12 : 10;
  const std::size_t total = (prefix + header.size() + 1 + 63) / 64 * 64;
  header.append(total - prefix - header.size() - 1, ' ');
  header.push_back('\n');
  std::string out(k_magic);
  out.push_back(static_cast<char>(v2 ? 2 : 1));
  out.push_back('\0');
  const std::size_t len = header.size();
  for (std::size_t i = 0; i < (v2 ? 4u : 2u); ++i) {
    out.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  }
  out += header;
  return out;
}

NpyArray parse_npy(std::string_view bytes, std::string_view name) {
  const auto corrupt = [&](const std::string& what) {
    return Error(ErrorKind::corrupt, std::string(name) + ": " + what);
  };
  if (bytes.size() < 8 || bytes.substr(0, 6) != k_magic) {
    throw corrupt("not an npy file: bad magic");
  }
  const auto major = static_cast<unsigned char>(bytes[6]);
  const auto minor = static_cast<unsigned char>(bytes[7]);
  if (major < 1 || major > 3 || minor != 0) {
    throw corrupt("unsupported npy format version " + std::to_string(major) + "." +
                  std::to_string(minor));
  }
  const std::size_t width = major == 1 ? 2 : 4;
  if (bytes.size() < 8 + width) {
    throw corrupt("truncated npy header");
  }
  const std::size_t header_len = read_le(bytes, 8, width);
  const std::size_t data_offset = 8 + width + header_len;
  if (bytes.size() < data_offset) {
    throw corrupt("truncated npy header: expected " + std::to_string(header_len) + " bytes, got " +
                  std::to_string(bytes.size() - 8 - width));
  }
  const auto header = HeaderParser(bytes.substr(8 + width, header_len), name).parse();
  if (header.fortran_order) {
    throw Error(ErrorKind::invalid_input,
                std::string(name) + ": fortran_order arrays are not supported");
  }
  NpyArray out;
  out.dtype = canonical_descr(header.descr, name);
  out.shape = header.shape;
  const auto need = byte_size(out.shape, npy_item_size(out.dtype));
  const std::size_t have = bytes.size() - data_offset;
  if (!need) {
    throw corrupt("shape " + shape_text(out.shape) + " overflows the addressable size");
  }
  if (*need > have) {
    throw corrupt("truncated: expected " + std::to_string(*need) + " bytes of data, got " +
                  std::to_string(have));
  }
  if (*need < have) {
    throw corrupt(std::to_string(have - *need) + " trailing bytes after the data");
  }
  out.data.assign(bytes.substr(data_offset));
  return out;
}

} // namespace mlctl::data

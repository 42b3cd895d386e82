#include "util/json_text.hpp"

#include <cstdint>

namespace mlctl::util {

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char k_hex[] = "0123456789abcdef";
  out += '"';
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const unsigned c = *p;
    if (c < 0x80) {
      switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += k_hex[c >> 4];
          out += k_hex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
      }
      ++p;
      continue;
    }
    // RFC 3629: the length of the sequence, and the range of its second byte.
    std::size_t n = 0;
    unsigned lo = 0x80;
    unsigned hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 3;
      lo = c == 0xe0 ? 0xa0 : 0x80;
      hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 4;
      lo = c == 0xf0 ? 0x90 : 0x80;
      hi = c == 0xf4 ? 0x8f : 0xbf;
    }
    bool valid = n != 0 && static_cast<std::size_t>(end - p) >= n && p[1] >= lo && p[1] <= hi;
    for (std::size_t i = 2; valid && i < n; ++i) {
      valid = (p[i] & 0xc0) == 0x80;
    }
    if (valid) {
      out.append(reinterpret_cast<const char*>(p), n);
      p += n;
    } else {
      out += "\xef\xbf\xbd";
      ++p;
    }
  }
  out += '"';
}

namespace {

// The value of a decimal digit, or more than 9 for any other character.
unsigned digit(char c) {
  return static_cast<unsigned>(static_cast<unsigned char>(c)) - '0';
}

} // namespace

const char* skip_json_space(const char* p) {
  while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') {
    ++p;
  }
  return p;
}

const char* read_short_numbers(const char* text, std::vector<double>& out, std::size_t limit) {
  static constexpr double k_pow10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
  const char* p = text;
  if (*p != '[') {
    return nullptr;
  }
  ++p;
  for (;;) {
    p = skip_json_space(p);
    // JSON's grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?, the exponent being left to the caller.
    const bool negative = *p == '-';
    p += negative ? 1 : 0;
    std::uint64_t m = digit(*p);
    if (m > 9) {
      return nullptr;
    }
    ++p;
    std::size_t digits = 1;
    if (m != 0) {
      for (unsigned d; (d = digit(*p)) <= 9; ++p, ++digits) {
        m = m * 10 + d;
      }
    }
    std::size_t fraction = 0;
    if (*p == '.') {
      ++p;
      if (digit(*p) > 9) {
        return nullptr;
      }
      for (unsigned d; (d = digit(*p)) <= 9; ++p, ++fraction) {
        m = m * 10 + d;
      }
    }
    // Up to 15 digits m < 10^15 < 2^53 (and m never wrapped: 19 digits fit in 64 bits, and a
    // longer run is refused here after the fact).
    if (digits + fraction > 15 || *p == 'e' || *p == 'E' || out.size() >= limit) {
      return nullptr;
    }
    const double value = static_cast<double>(m) / k_pow10[fraction];
    out.push_back(negative ? -value : value);
    p = skip_json_space(p);
    if (*p == ']') {
      return p + 1;
    }
    if (*p != ',') {
      return nullptr;
    }
    ++p;
  }
}

} // namespace mlctl::util

#include "util/json_text.hpp"

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

} // namespace mlctl::util

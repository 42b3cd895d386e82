#include "util/inflate.hpp"

#include <algorithm>
#include <climits>
#include <zlib.h>

namespace mlctl::util {

bool is_gzip(std::string_view bytes) {
  return bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
         static_cast<unsigned char>(bytes[1]) == 0x8b;
}

namespace {

// A zlib header (RFC 1950): deflate, a window of at most 32 KB, the check bits right.
bool is_zlib(std::string_view bytes) {
  if (bytes.size() < 2) {
    return false;
  }
  const auto cmf = static_cast<unsigned char>(bytes[0]);
  const auto flg = static_cast<unsigned char>(bytes[1]);
  return (cmf & 0x0f) == 8 && (cmf >> 4) <= 7 && (cmf * 256 + flg) % 31 == 0;
}

} // namespace

void inflate(std::string_view in, Compression kind, std::size_t limit, std::string& out) {
  const bool gzip = kind == Compression::gzip;
  const std::string format = gzip ? "gzip" : "deflate";
  const int window = gzip ? 16 + MAX_WBITS : is_zlib(in) ? MAX_WBITS : -MAX_WBITS;
  z_stream zs{};
  if (inflateInit2(&zs, window) != Z_OK) {
    throw std::bad_alloc();
  }
  struct End {
    z_stream* zs;
    ~End() { inflateEnd(zs); }
  } end{&zs};

  std::size_t consumed = 0;
  std::size_t produced = 0;
  out.resize(std::min<std::size_t>(std::max<std::size_t>(in.size() * 4, 1 << 16), limit));
  while (true) {
    if (produced == out.size()) {
      if (out.size() >= limit) {
        throw InflateError(format + " data inflates past " + std::to_string(limit) + " bytes",
                           consumed, true);
      }
      out.resize(std::min(out.size() * 2, limit));
    }
    const std::size_t in_chunk = std::min<std::size_t>(in.size() - consumed, UINT_MAX);
    const std::size_t out_chunk = std::min<std::size_t>(out.size() - produced, UINT_MAX);
    // zlib's API takes non-const input; it never writes to it.
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + consumed));
    zs.avail_in = static_cast<uInt>(in_chunk);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    zs.avail_out = static_cast<uInt>(out_chunk);
    const int r = ::inflate(&zs, Z_NO_FLUSH);
    consumed += in_chunk - zs.avail_in;
    produced += out_chunk - zs.avail_out;
    if (r == Z_STREAM_END) {
      if (consumed == in.size()) {
        break;
      }
      if (!gzip || !is_gzip(in.substr(consumed))) {
        throw InflateError(std::to_string(in.size() - consumed) + " trailing bytes after the " +
                               format + " data",
                           consumed, false);
      }
      inflateReset(&zs);
      continue;
    }
    if (r == Z_BUF_ERROR && consumed == in.size() && zs.avail_out > 0) {
      throw InflateError("truncated " + format + " data", consumed, false);
    }
    if (r == Z_MEM_ERROR) {
      throw std::bad_alloc();
    }
    if (r != Z_OK && r != Z_BUF_ERROR) {
      throw InflateError("corrupt " + format +
                             " data: " + (zs.msg != nullptr ? zs.msg : "zlib error"),
                         consumed, false);
    }
  }
  out.resize(produced);
}

} // namespace mlctl::util

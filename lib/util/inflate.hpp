#pragma once
// Compressed data inflated with zlib under a size limit: gzip files and HTTP request bodies.

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

namespace mlctl::util {

enum class Compression {
  gzip,    // RFC 1952; several members concatenated are one stream, as gunzip reads them
  deflate, // HTTP's "deflate": a zlib stream (RFC 1950), or the raw RFC 1951 data some clients send
};

// Why data could not be inflated: `what` (e.g. "truncated gzip data"), the position in the
// compressed input where it was found, and whether the data was whole but too large.
class InflateError : public std::runtime_error {
public:
  InflateError(const std::string& what, std::size_t offset, bool past_limit)
      : std::runtime_error(what), m_offset(offset), m_past_limit(past_limit) {}
  std::size_t offset() const { return m_offset; }
  bool past_limit() const { return m_past_limit; }

private:
  std::size_t m_offset;
  bool m_past_limit;
};

// True when `bytes` begin with gzip's magic number.
bool is_gzip(std::string_view bytes);

// Replaces `out` with the inflation of `in` (keeping `out`'s capacity). Throws `InflateError`
// for data that is corrupt, truncated, followed by other bytes, or inflates past `limit` bytes.
void inflate(std::string_view in, Compression kind, std::size_t limit, std::string& out);

} // namespace mlctl::util

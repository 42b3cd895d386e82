#include "data/test_support.hpp"
#include "util/inflate.hpp"

#include <doctest/doctest.h>
#include <string>

using mlctl::util::Compression;
using mlctl::util::inflate;
using mlctl::util::InflateError;

namespace {

// `text` deflated with zlib's window bits: 15 a zlib stream, -15 raw deflate, 31 gzip.
std::string pack(const std::string& text, int window) {
  return mlctl::test::deflated(text, window, 9);
}

std::string inflated(const std::string& in, Compression kind, std::size_t limit = 1 << 20) {
  std::string out = "left over";
  inflate(in, kind, limit, out);
  return out;
}

// The error `inflate` throws for `in`: "what @ offset", "+ past limit" when it is the limit's.
std::string failure(const std::string& in, Compression kind, std::size_t limit = 1 << 20) {
  try {
    inflated(in, kind, limit);
  } catch (const InflateError& e) {
    return std::string(e.what()) + " @ " + std::to_string(e.offset()) +
           (e.past_limit() ? " + past limit" : "");
  }
  return "no error";
}

} // namespace

TEST_CASE("inflate reads gzip (several members as one) and HTTP's deflate, zlib or raw") {
  const std::string text = R"({"images": [[0, 0.5, 1]]})";
  CHECK(inflated(pack(text, 31), Compression::gzip) == text);
  CHECK(inflated(pack(text, 31) + pack("!", 31), Compression::gzip) == text + "!");
  CHECK(inflated(pack(text, 15), Compression::deflate) == text);
  CHECK(inflated(pack(text, -15), Compression::deflate) == text);
  CHECK(inflated(pack("", 31), Compression::gzip).empty());
  const std::string big(3 << 20, 'x'); // grows the output past its first guess
  CHECK(inflated(pack(big, 31), Compression::gzip, 4 << 20) == big);
}

TEST_CASE("inflate refuses damaged data and data past the limit, saying where") {
  const std::string gz = pack("hello, world", 31);
  CHECK(failure(gz.substr(0, gz.size() - 5), Compression::gzip) ==
        "truncated gzip data @ " + std::to_string(gz.size() - 5));
  CHECK(failure("", Compression::gzip) == "truncated gzip data @ 0");
  CHECK(failure("plain text", Compression::gzip) ==
        "corrupt gzip data: incorrect header check @ 2");
  CHECK(failure(gz + "tail", Compression::gzip) ==
        "4 trailing bytes after the gzip data @ " + std::to_string(gz.size()));
  const std::string z = pack("hello", 15);
  CHECK(failure(z + z, Compression::deflate) == std::to_string(z.size()) +
                                                    " trailing bytes after the deflate data @ " +
                                                    std::to_string(z.size()));
  CHECK(failure(pack(std::string(100000, '\0'), 31), Compression::gzip, 65536)
            .starts_with("gzip data inflates past 65536 bytes @ "));
  CHECK(failure(pack(std::string(100000, '\0'), 31), Compression::gzip, 65536)
            .ends_with("+ past limit"));
}

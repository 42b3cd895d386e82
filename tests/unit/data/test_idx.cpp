#include "data/idx.hpp"
#include "data/test_support.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <doctest/doctest.h>

using mlctl::data::encode_idx;
using mlctl::data::IdxArray;
using mlctl::data::parse_idx;
using mlctl::data::read_idx_file;
using mlctl::test::gzip;
using mlctl::util::TempDir;

namespace {

std::span<const std::byte> as_bytes(const std::string& s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

IdxArray images(std::uint32_t n, std::uint32_t rows, std::uint32_t cols) {
  IdxArray a;
  a.dims = {n, rows, cols};
  a.data.resize(std::size_t{n} * rows * cols);
  for (std::size_t i = 0; i < a.data.size(); ++i) {
    a.data[i] = static_cast<std::uint8_t>(i * 31 % 256);
  }
  return a;
}

std::string header(std::uint8_t type, std::vector<std::uint32_t> dims) {
  std::string h{'\0', '\0', static_cast<char>(type), static_cast<char>(dims.size())};
  for (const auto d : dims) {
    for (int s = 24; s >= 0; s -= 8) {
      h.push_back(static_cast<char>((d >> s) & 0xff));
    }
  }
  return h;
}

} // namespace

TEST_CASE("encode_idx then parse_idx round-trips, raw and gzipped") {
  const IdxArray a = images(3, 28, 28);
  const std::string raw = encode_idx(a);
  CHECK(raw.size() == 16 + 3 * 28 * 28);
  CHECK(raw.substr(0, 8) == std::string("\x00\x00\x08\x03\x00\x00\x00\x03", 8));
  for (const std::string& bytes : {raw, gzip(raw)}) {
    const IdxArray b = parse_idx(as_bytes(bytes), "t");
    CHECK(b.dims == a.dims);
    CHECK(b.data == a.data);
  }
  IdxArray labels;
  labels.dims = {4};
  labels.data = {0, 9, 3, 1};
  const IdxArray back = parse_idx(as_bytes(encode_idx(labels)), "labels");
  CHECK(back.dims == labels.dims);
  CHECK(back.data == labels.data);
}

TEST_CASE("read_idx_file reads a gzipped file from disk") {
  TempDir dir;
  const auto path = dir.path() / "t10k-labels-idx1-ubyte.gz";
  IdxArray labels;
  labels.dims = {5};
  labels.data = {7, 2, 1, 0, 4};
  mlctl::util::write_file_atomic(path, gzip(encode_idx(labels)));
  CHECK(read_idx_file(path).data == labels.data);
  CHECK_THROWS_AS(read_idx_file(dir.path() / "missing.gz"), mlctl::Error);
}

TEST_CASE("parse_idx accepts concatenated gzip members") {
  const std::string raw = encode_idx(images(2, 4, 4));
  const std::string two = gzip(raw.substr(0, 10)) + gzip(raw.substr(10));
  CHECK(parse_idx(as_bytes(two), "t").data == images(2, 4, 4).data);
}

TEST_CASE("parse_idx names the file, the problem and the byte offset") {
  const std::string good = encode_idx(images(2, 3, 3));
  const auto check = [](const std::string& bytes, const std::string& message) {
    CHECK_THROWS_WITH_AS(parse_idx(as_bytes(bytes), "f.idx"), message.c_str(), mlctl::Error);
  };
  check(std::string("\x01\x02\x08\x01", 4) + std::string(4, '\0'),
        "f.idx: not an IDX file: bad magic 0x01 0x02 (expected 0x00 0x00) at byte 0");
  check(header(0x0d, {2}) + std::string(8, '\0'),
        "f.idx: unsupported element type 0x0d (only 0x08, unsigned byte) at byte 2");
  check(header(0x08, {}), "f.idx: unsupported number of dimensions 0 (expected 1..4) at byte 3");
  check(header(0x08, {1, 1, 1, 1, 1}) + "x",
        "f.idx: unsupported number of dimensions 5 (expected 1..4) at byte 3");
  check(std::string("\0\0", 2), "f.idx: truncated: expected a 4-byte header, got 2 at byte 2");
  check(good.substr(0, 10), "f.idx: truncated: expected 16 header bytes, got 10 at byte 10");
  check(good.substr(0, good.size() - 5),
        "f.idx: truncated: expected 18 bytes of data, got 13 at byte 29");
  check(good + "abc", "f.idx: 3 trailing bytes after 18 bytes of data at byte 34");
  check(header(0x08, {0xffffffffu, 0xffffffffu, 0xffffffffu}),
        "f.idx: dimensions overflow the addressable size at byte 8");
  check(std::string(), "f.idx: truncated: expected a 4-byte header, got 0 at byte 0");
}

TEST_CASE("parse_idx refuses damaged, truncated and oversized gzip data") {
  const std::string raw = encode_idx(images(10, 28, 28));
  const std::string gz = gzip(raw);
  const auto cut = gz.substr(0, gz.size() / 2);
  CHECK_THROWS_WITH_AS(parse_idx(as_bytes(cut), "a.gz"),
                       ("a.gz: truncated gzip data at byte " + std::to_string(cut.size())).c_str(),
                       mlctl::Error);
  std::string bad = gz;
  bad[3] = '\xff'; // reserved FLG bits set: zlib refuses the header
  CHECK_THROWS_WITH_AS(parse_idx(as_bytes(bad), "b.gz"),
                       "b.gz: corrupt gzip data: unknown header flags set at byte 4", mlctl::Error);
  CHECK_THROWS_WITH_AS(
      parse_idx(as_bytes(gz + "junk"), "c.gz"),
      ("c.gz: 4 trailing bytes after the gzip data at byte " + std::to_string(gz.size())).c_str(),
      mlctl::Error);
  // A gzip bomb: 8 MiB of zeros in a few kB, refused past the limit without inflating it all.
  const std::string bomb = gzip(header(0x08, {8u << 20}) + std::string(8u << 20, '\0'));
  CHECK(bomb.size() < 20000);
  try {
    parse_idx(as_bytes(bomb), "bomb.gz", 1u << 20);
    FAIL("no error");
  } catch (const mlctl::Error& e) {
    CHECK(std::string(e.what()).starts_with(
        "bomb.gz: gzip data inflates past 1048576 bytes at byte "));
    CHECK(e.kind() == mlctl::ErrorKind::corrupt);
  }
  CHECK(parse_idx(as_bytes(bomb), "bomb.gz", 9u << 20).data.size() == 8u << 20);
}

TEST_CASE("encode_idx refuses inconsistent arrays") {
  IdxArray a;
  a.dims = {2, 2};
  a.data = {1, 2, 3};
  CHECK_THROWS_WITH_AS(encode_idx(a), "idx: dimensions need 4 bytes, got 3", mlctl::Error);
  a.dims = {};
  CHECK_THROWS_AS(encode_idx(a), mlctl::Error);
}

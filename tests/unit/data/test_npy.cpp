#include "data/npy.hpp"
#include "data/test_support.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <cstring>
#include <doctest/doctest.h>
#include <functional>

namespace fs = std::filesystem;
using mlctl::ErrorKind;
using mlctl::data::encode_npy;
using mlctl::data::NpyArray;
using mlctl::data::parse_npy;
using mlctl::test::kind_of;

namespace {

std::string fixture(const std::string& name) {
  return mlctl::util::read_file(mlctl::test::fixture(name));
}

// Builds format-1.0 bytes around a hand-written header.
std::string with_header(const std::string& header, const std::string& data, char major = 1) {
  std::string out("\x93NUMPY", 6);
  out.push_back(major);
  out.push_back('\0');
  const std::size_t width = major == 1 ? 2 : 4;
  for (std::size_t i = 0; i < width; ++i) {
    out.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xff));
  }
  return out + header + data;
}

template <class T> std::string raw(std::initializer_list<T> values) {
  std::string out(values.size() * sizeof(T), '\0');
  std::memcpy(out.data(), std::data(values), out.size());
  return out;
}

} // namespace

TEST_CASE("encode_npy writes the same bytes as numpy.save") {
  const NpyArray a{"|u1", {2, 3}, std::string("\0\1\2\3\4\5", 6)};
  CHECK(encode_npy(a) == fixture("u1_2x3.npy"));
  const NpyArray f{"<f4", {4}, raw<float>({0.5f, -1.0f, 2.25f, 3.0f})};
  CHECK(encode_npy(f) == fixture("f4_4.npy"));
  const NpyArray s{"<i8", {}, raw<std::int64_t>({-7})};
  CHECK(encode_npy(s) == fixture("i8_scalar.npy"));
  const NpyArray b{"|b1", {3}, std::string("\1\0\1", 3)};
  CHECK(encode_npy(b) == fixture("b1_3.npy"));
}

TEST_CASE("encode_npy pads the header to 64 bytes and parse_npy round-trips every dtype") {
  for (const std::string dtype :
       {"|u1", "|i1", "|b1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f4", "<f8"}) {
    CAPTURE(dtype);
    const std::size_t item = mlctl::data::npy_item_size(dtype);
    NpyArray a{dtype, {2, 1, 3}, std::string(6 * item, '\0')};
    for (std::size_t i = 0; i < a.data.size(); ++i) {
      a.data[i] = static_cast<char>(dtype == "|b1" ? i % 2 : i * 13);
    }
    const std::string bytes = encode_npy(a);
    CHECK((bytes.size() - a.data.size()) % 64 == 0);
    CHECK(bytes[bytes.size() - a.data.size() - 1] == '\n');
    const NpyArray back = parse_npy(bytes, "a.npy");
    CHECK(back.dtype == dtype);
    CHECK(back.shape == a.shape);
    CHECK(back.data == a.data);
  }
  const NpyArray empty{"<f8", {0, 784}, ""};
  CHECK(parse_npy(encode_npy(empty), "e").shape == empty.shape);
}

TEST_CASE("parse_npy reads headers in other spellings") {
  const std::string two = raw<std::uint16_t>({1, 2});
  const auto parsed = [](const std::string& bytes) { return parse_npy(bytes, "h.npy"); };
  auto a = parsed(with_header("{'shape': (2,), 'fortran_order': False, 'descr': '<u2'}\n", two));
  CHECK(a.dtype == "<u2");
  CHECK(a.shape == std::vector<std::size_t>{2});
  a = parsed(with_header("{\"descr\":\"<u2\",\"fortran_order\":False,\"shape\":(1,2)}", two));
  CHECK(a.shape == std::vector<std::size_t>{1, 2});
  a = parsed(with_header(
      "{ 'descr' : '=u2' , 'fortran_order' : False , 'shape' : ( 2L , ) , }   \n", two, 2));
  CHECK(a.dtype == "<u2");
  a = parsed(with_header("{'descr': '<u1', 'fortran_order': False, 'shape': (), }\n", "x", 3));
  CHECK(a.dtype == "|u1");
  CHECK(a.shape.empty());
  CHECK(a.count() == 1);
  CHECK(parsed(fixture("f4_4.npy")).data == raw<float>({0.5f, -1.0f, 2.25f, 3.0f}));
}

TEST_CASE("parse_npy refuses what it does not support with invalid_input") {
  CHECK_THROWS_WITH_AS(parse_npy(fixture("f8_fortran.npy"), "f.npy"),
                       "f.npy: fortran_order arrays are not supported", mlctl::Error);
  CHECK_THROWS_WITH_AS(parse_npy(fixture("f4_big_endian.npy"), "b.npy"),
                       "b.npy: big-endian dtype '>f4' is not supported", mlctl::Error);
  CHECK_THROWS_WITH_AS(
      parse_npy(with_header("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", "12345678"),
                "o.npy"),
      "o.npy: object arrays are not supported", mlctl::Error);
  CHECK_THROWS_WITH_AS(
      parse_npy(
          with_header("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", "12345678"),
          "c.npy"),
      "c.npy: unsupported dtype '<c8'", mlctl::Error);
  CHECK_THROWS_WITH_AS(parse_npy(with_header("{'descr': [('a', '<i4')], 'fortran_order': False, "
                                             "'shape': (1,), }",
                                             "1234"),
                                 "s.npy"),
                       "s.npy: structured dtypes are not supported", mlctl::Error);
  CHECK(kind_of([] { parse_npy(fixture("f8_fortran.npy"), "f"); }) == ErrorKind::invalid_input);
}

TEST_CASE("parse_npy refuses damaged files with corrupt") {
  const std::string good = fixture("u1_2x3.npy");
  CHECK_THROWS_WITH_AS(parse_npy("PK\3\4 not npy", "z.npy"), "z.npy: not an npy file: bad magic",
                       mlctl::Error);
  CHECK_THROWS_WITH_AS(parse_npy(good.substr(0, good.size() - 1), "t.npy"),
                       "t.npy: truncated: expected 6 bytes of data, got 5", mlctl::Error);
  CHECK_THROWS_WITH_AS(parse_npy(good + "xy", "x.npy"), "x.npy: 2 trailing bytes after the data",
                       mlctl::Error);
  CHECK_THROWS_WITH_AS(parse_npy(good.substr(0, 40), "h.npy"),
                       "h.npy: truncated npy header: expected 118 bytes, got 30", mlctl::Error);
  std::string version = good;
  version[6] = 9;
  CHECK_THROWS_WITH_AS(parse_npy(version, "v.npy"), "v.npy: unsupported npy format version 9.0",
                       mlctl::Error);
  CHECK_THROWS_WITH_AS(
      parse_npy(with_header("{'descr': '|u1', 'shape': (1,), }", "1"), "m.npy"),
      "m.npy: malformed npy header: missing key 'fortran_order' at header offset 33", mlctl::Error);
  CHECK_THROWS_WITH_AS(
      parse_npy(with_header("{'descr': '|u1', 'fortran_order': False, 'shape': (3), }", "123"),
                "n.npy"),
      "n.npy: malformed npy header: shape must be a tuple at header offset 53", mlctl::Error);
  CHECK_THROWS_WITH_AS(
      parse_npy(with_header("{'descr': '|u1', 'fortran_order': False, 'shape': (1,), 'x': 1}", "1"),
                "k.npy"),
      "k.npy: malformed npy header: unexpected key 'x' at header offset 60", mlctl::Error);
  CHECK(kind_of([] {
          parse_npy(with_header("{'descr': '|u1', 'fortran_order': False, 'shape': "
                                "(99999999999, 99999999999, 99999999999), }",
                                ""),
                    "big.npy");
        }) == ErrorKind::corrupt);
  CHECK(kind_of([] {
          parse_npy(with_header("{'descr': '|u1', 'fortran_order': Nope, 'shape': (1,)}", "1"),
                    "q");
        }) == ErrorKind::corrupt);
}

TEST_CASE("encode_npy refuses a size mismatch and unknown dtypes") {
  CHECK_THROWS_WITH_AS(encode_npy(NpyArray{"<f4", {2}, "1234"}),
                       "npy: shape (2,) of <f4 needs 8 bytes, got 4", mlctl::Error);
  CHECK_THROWS_WITH_AS(encode_npy(NpyArray{"<c8", {1}, "12345678"}), "npy: unsupported dtype '<c8'",
                       mlctl::Error);
}

#include "artifact/zip.hpp"
#include "data/npz.hpp"
#include "data/test_support.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <doctest/doctest.h>

namespace fs = std::filesystem;
using mlctl::ErrorKind;
using mlctl::data::encode_npz;
using mlctl::data::NpyArray;
using mlctl::data::read_npz;
using mlctl::data::read_npz_memory;
using mlctl::data::write_npz;
using mlctl::test::fixture;
using mlctl::util::read_file;
using mlctl::util::TempDir;

namespace {

std::map<std::string, NpyArray> sample() {
  std::string pixels(5 * 4 * 4, '\0');
  for (std::size_t i = 0; i < pixels.size(); ++i) {
    pixels[i] = static_cast<char>(i * 17);
  }
  return {{"y", NpyArray{"|u1", {5}, std::string("\1\2\3\4\5", 5)}},
          {"x", NpyArray{"|u1", {5, 4, 4}, pixels}},
          {"w", NpyArray{"<f8", {}, std::string(8, '\0')}}};
}

} // namespace

TEST_CASE("write_npz then read_npz round-trips and is deterministic") {
  TempDir dir;
  write_npz(dir.path() / "a.npz", sample());
  write_npz(dir.path() / "b.npz", sample());
  CHECK(read_file(dir.path() / "a.npz") == read_file(dir.path() / "b.npz"));
  const auto back = read_npz(dir.path() / "a.npz");
  REQUIRE(back.size() == 3);
  for (const auto& item : sample()) {
    const std::string& key = item.first;
    const NpyArray& array = item.second;
    CAPTURE(key);
    REQUIRE(back.contains(key));
    CHECK(back.at(key).dtype == array.dtype);
    CHECK(back.at(key).shape == array.shape);
    CHECK(back.at(key).data == array.data);
  }
  // Entries are "<key>.npy" in key order.
  const auto entries = mlctl::artifact::read_zip(dir.path() / "a.npz");
  REQUIRE(entries.size() == 3);
  CHECK(entries[0].name == "w.npy");
  CHECK(entries[1].name == "x.npy");
  CHECK(entries[2].name == "y.npy");

  auto changed = sample();
  changed["x"].data[7] ^= 1;
  CHECK(encode_npz(changed) != encode_npz(sample()));
}

TEST_CASE("read_npz reads what numpy.savez and savez_compressed write") {
  for (const char* name : {"split_stored.npz", "split_deflated.npz"}) {
    CAPTURE(name);
    const auto arrays = read_npz(fixture(name));
    REQUIRE(arrays.size() == 2);
    const NpyArray& x = arrays.at("x");
    CHECK(x.dtype == "|u1");
    CHECK(x.shape == std::vector<std::size_t>{2, 4, 4});
    CHECK(static_cast<unsigned char>(x.data[31]) == 31);
    const NpyArray& y = arrays.at("y");
    CHECK(y.shape == std::vector<std::size_t>{2});
    CHECK((y.dtype == "|u1" || y.dtype == "<i8"));
  }
}

TEST_CASE("read_npz refuses a zip that is not an npz, and bytes that are not a zip") {
  const auto not_npz = fixture("not_npz.zip");
  CHECK_THROWS_WITH_AS(
      read_npz(not_npz),
      (not_npz.string() + ": not an npz archive: readme.txt is not a .npy file").c_str(),
      mlctl::Error);
  const auto npy = fixture("u1_2x3.npy");
  CHECK_THROWS_WITH_AS(read_npz(npy), (npy.string() + ": not a zip archive").c_str(), mlctl::Error);
  CHECK_THROWS_WITH_AS(read_npz_memory("", "empty.npz"), "empty.npz: not a zip archive",
                       mlctl::Error);
  const std::string bad_npy = mlctl::artifact::encode_zip({{"x.npy", "\x93NUMPX garbage"}});
  CHECK_THROWS_WITH_AS(read_npz_memory(bad_npy, "d.npz"),
                       "d.npz: x.npy: not an npy file: bad magic", mlctl::Error);
  TempDir dir;
  try {
    read_npz(dir.path() / "missing.npz");
    FAIL("no error");
  } catch (const mlctl::Error& e) {
    CHECK(e.kind() == ErrorKind::not_found);
  }
}

TEST_CASE("write_npz_views writes the bytes of encode_npz without copying the arrays") {
  TempDir dir;
  const auto arrays = sample();
  std::map<std::string, mlctl::data::NpyView> views;
  for (const auto& [key, array] : arrays) {
    views.emplace(
        key, mlctl::data::NpyView{array.dtype, array.shape,
                                  std::as_bytes(std::span(array.data.data(), array.data.size()))});
  }
  mlctl::data::write_npz_views(dir.path() / "v.npz", views);
  CHECK(read_file(dir.path() / "v.npz") == encode_npz(arrays));
  write_npz(dir.path() / "a.npz", arrays);
  CHECK(read_file(dir.path() / "a.npz") == encode_npz(arrays));
  views["x"].shape = {5, 4, 5};
  CHECK(mlctl::test::kind_of([&] {
          mlctl::data::write_npz_views(dir.path() / "bad.npz", views);
        }) == ErrorKind::invalid_input);
  CHECK_FALSE(fs::exists(dir.path() / "bad.npz"));
}

TEST_CASE("write_npz refuses bad keys and arrays and writes nothing") {
  TempDir dir;
  const auto path = dir.path() / "bad.npz";
  CHECK_THROWS_WITH_AS(write_npz(path, {{"a/b", NpyArray{"|u1", {1}, "x"}}}),
                       (path.string() + ": npz: invalid array name 'a/b'").c_str(), mlctl::Error);
  CHECK_THROWS_AS(write_npz(path, {{"a", NpyArray{"|u1", {2}, "x"}}}), mlctl::Error);
  CHECK_FALSE(fs::exists(path));
}

#include "artifact/zip.hpp"
#include "data/test_support.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <cstdlib>
#include <ctime>
#include <doctest/doctest.h>
#include <functional>

namespace fs = std::filesystem;
using mlctl::ErrorKind;
using mlctl::artifact::encode_zip;
using mlctl::artifact::read_zip;
using mlctl::artifact::read_zip_memory;
using mlctl::artifact::write_zip;
using mlctl::artifact::ZipEntry;
using mlctl::test::kind_of;
using mlctl::util::TempDir;

namespace {

std::vector<ZipEntry> sample() {
  std::string big(200000, 'a');
  for (std::size_t i = 0; i < big.size(); i += 7) {
    big[i] = static_cast<char>(i % 251);
  }
  return {{"b.npy", "second"}, {"a/inner.txt", ""}, {"big.bin", big}};
}

void set_tz(const char* tz) {
  ::setenv("TZ", tz, 1);
  ::tzset();
}

} // namespace

TEST_CASE("write_zip then read_zip returns the entries in the given order") {
  TempDir dir;
  const auto path = dir.path() / "a.zip";
  write_zip(path, sample());
  const auto back = read_zip(path);
  REQUIRE(back.size() == 3);
  for (std::size_t i = 0; i < back.size(); ++i) {
    CHECK(back[i].name == sample()[i].name);
    CHECK(back[i].data == sample()[i].data);
  }
  // Stored as numpy.savez does (no compression): the archive holds the bytes as they are.
  std::size_t total = 0;
  for (const auto& e : sample()) {
    total += e.data.size();
  }
  CHECK(fs::file_size(path) > total);
}

TEST_CASE("encode_zip is deterministic across runs and time zones") {
  const char* saved = std::getenv("TZ");
  const std::string saved_tz = saved != nullptr ? saved : "";
  set_tz("UTC");
  const std::string a = encode_zip(sample());
  const std::string b = encode_zip(sample());
  set_tz("America/Los_Angeles");
  const std::string c = encode_zip(sample());
  set_tz("Asia/Kolkata");
  const std::string d = encode_zip(sample());
  if (saved != nullptr) {
    set_tz(saved_tz.c_str());
  } else {
    ::unsetenv("TZ");
    ::tzset();
  }
  CHECK(a == b);
  CHECK(a == c);
  CHECK(a == d);
  // Local file header of the first entry: DOS time 00:00:00 and date 1980-01-01 (APPNOTE 4.4.6).
  REQUIRE(a.size() > 14);
  CHECK(a.substr(0, 4) == std::string("PK\x03\x04", 4));
  CHECK(a.substr(10, 4) == std::string("\x00\x00\x21\x00", 4));
}

TEST_CASE("an empty zip round-trips") {
  const std::string bytes = encode_zip({});
  CHECK(bytes.size() == 22);
  CHECK(read_zip_memory(bytes, "empty.zip").empty());
}

TEST_CASE("read_zip refuses bytes that are not a zip archive") {
  CHECK_THROWS_WITH_AS(read_zip_memory("hello, this is plain text and no zip at all", "t.zip"),
                       "t.zip: not a zip archive", mlctl::Error);
  CHECK_THROWS_WITH_AS(read_zip_memory("", "e.zip"), "e.zip: not a zip archive", mlctl::Error);
  CHECK(kind_of([] { read_zip_memory("abc", "x"); }) == ErrorKind::corrupt);
}

TEST_CASE("read_zip refuses a truncated or damaged archive") {
  const std::string bytes = encode_zip(sample());
  const std::string cut = bytes.substr(0, bytes.size() - 10);
  CHECK(kind_of([&] { read_zip_memory(cut, "cut.zip"); }) == ErrorKind::corrupt);
  // Flip a byte inside the deflated data of the big entry: CRC or inflate must fail.
  std::string damaged = bytes;
  damaged[bytes.size() / 2] ^= 0x55;
  CHECK(kind_of([&] { read_zip_memory(damaged, "bad.zip"); }) == ErrorKind::corrupt);
}

TEST_CASE("read_zip of a missing file is not_found") {
  TempDir dir;
  CHECK(kind_of([&] { read_zip(dir.path() / "none.zip"); }) == ErrorKind::not_found);
}

TEST_CASE("write_zip refuses duplicate and empty names") {
  TempDir dir;
  const auto path = dir.path() / "d.zip";
  CHECK_THROWS_WITH_AS(write_zip(path, {{"a", "1"}, {"a", "2"}}),
                       (path.string() + ": zip: duplicate entry 'a'").c_str(), mlctl::Error);
  CHECK(kind_of([&] { write_zip(path, {{"", "1"}}); }) == ErrorKind::invalid_input);
  CHECK_FALSE(fs::exists(path));
}

TEST_CASE("write_zip streams the same bytes as encode_zip (libzip) writes") {
  TempDir dir;
  const std::vector<std::vector<ZipEntry>> cases = {
      sample(),
      {},
      {{"empty.npy", ""}},
      {{"\xc3\xa9t\xc3\xa9.npy", "utf-8 name"}, {"z", std::string(3 << 20, 'z')}},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    CAPTURE(i);
    const auto path = dir.path() / ("case" + std::to_string(i) + ".zip");
    write_zip(path, cases[i]);
    CHECK(mlctl::util::read_file(path) == encode_zip(cases[i]));
  }
}

TEST_CASE("write_zip_parts concatenates the parts of each entry") {
  TempDir dir;
  const auto path = dir.path() / "parts.zip";
  const std::string head = "head-";
  std::string body(2500000, 'b'); // spans several CRC chunks
  body[1234567] = 'x';
  const auto bytes = [](const std::string& s) {
    return std::as_bytes(std::span(s.data(), s.size()));
  };
  mlctl::artifact::write_zip_parts(path, {{"a.npy", {bytes(head), bytes(body)}}, {"b.npy", {}}});
  CHECK(mlctl::util::read_file(path) == encode_zip({{"a.npy", head + body}, {"b.npy", ""}}));
  CHECK_THROWS_WITH_AS(
      mlctl::artifact::write_zip_parts(dir.path() / "d.zip", {{"a", {}}, {"a", {}}}),
      (dir.path() / "d.zip").string().append(": zip: duplicate entry 'a'").c_str(), mlctl::Error);
  CHECK_FALSE(fs::exists(dir.path() / "d.zip"));
}

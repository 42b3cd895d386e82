#include "data/dataset.hpp"
#include "data/npz.hpp"
#include "data/test_support.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <doctest/doctest.h>
#include <functional>

namespace fs = std::filesystem;
using mlctl::ErrorKind;
using mlctl::data::dataset_digest;
using mlctl::data::from_idx;
using mlctl::data::IdxArray;
using mlctl::data::LabeledImages;
using mlctl::data::read_dataset_info;
using mlctl::data::read_dataset_split;
using mlctl::data::read_split;
using mlctl::data::write_dataset;
using mlctl::data::write_split;
using mlctl::test::kind_of;
using mlctl::util::read_file;
using mlctl::util::TempDir;
using mlctl::util::write_file_atomic;

namespace {

LabeledImages make_split(std::size_t count, std::uint8_t seed) {
  LabeledImages s;
  s.count = count;
  s.x.resize(count * 28 * 28);
  for (std::size_t i = 0; i < s.x.size(); ++i) {
    s.x[i] = static_cast<std::uint8_t>((i * 7 + seed) % 256);
  }
  for (std::size_t i = 0; i < count; ++i) {
    s.y.push_back(static_cast<std::uint8_t>((i + seed) % 10));
  }
  return s;
}

const nlohmann::json k_source = {{"name", "test"}, {"url", "file:///nowhere"}};

} // namespace

TEST_CASE("from_idx combines images and labels and names both files on a count mismatch") {
  IdxArray images{{2, 2, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}};
  IdxArray labels{{2}, {4, 9}};
  const LabeledImages s = from_idx(images, labels, "img.gz", "lbl.gz");
  CHECK(s.count == 2);
  CHECK(s.rows == 2);
  CHECK(s.cols == 3);
  CHECK(s.x == images.data);
  CHECK(s.y == labels.data);

  IdxArray three{{3}, {1, 2, 3}};
  CHECK_THROWS_WITH_AS(from_idx(images, three, "img.gz", "lbl.gz"),
                       "img.gz: 2 images but lbl.gz: 3 labels", mlctl::Error);
  CHECK_THROWS_WITH_AS(from_idx(labels, labels, "img.gz", "lbl.gz"),
                       "img.gz: expected 3 dimensions (count, rows, cols), got 1", mlctl::Error);
  CHECK_THROWS_WITH_AS(from_idx(images, images, "img.gz", "lbl.gz"),
                       "lbl.gz: expected 1 dimension (count), got 3", mlctl::Error);
  IdxArray bad_label{{2}, {4, 10}};
  CHECK_THROWS_WITH_AS(from_idx(images, bad_label, "img.gz", "lbl.gz"),
                       "lbl.gz: label 10 at index 1 is outside 0..9", mlctl::Error);
  CHECK(kind_of([&] { from_idx(images, three, "a", "b"); }) == ErrorKind::corrupt);
}

TEST_CASE("dataset_digest depends on the content only") {
  const auto train = make_split(20, 1);
  const auto test = make_split(5, 2);
  const std::string digest = dataset_digest(train, test);
  CHECK(digest.starts_with("sha256:"));
  CHECK(digest.size() == 7 + 64);
  CHECK(dataset_digest(make_split(20, 1), make_split(5, 2)) == digest);
  // Pinned: the digest is the data version recorded in model lineage; it must not drift.
  CHECK(digest == "sha256:7a36393fb4431603653450d79dd670d15f6efa3b8951acde172f6bea6efb14cf");

  auto pixel = train;
  pixel.x[123] ^= 1;
  CHECK(dataset_digest(pixel, test) != digest);
  auto label = test;
  label.y[0] = static_cast<std::uint8_t>((label.y[0] + 1) % 10);
  CHECK(dataset_digest(train, label) != digest);
  CHECK(dataset_digest(test, train) != digest);
  auto reshaped = train;
  reshaped.rows = 14;
  reshaped.cols = 56;
  CHECK(dataset_digest(reshaped, test) != digest);
}

TEST_CASE("write_dataset writes byte-identical directories with a correct summary") {
  TempDir tmp;
  LabeledImages train;
  train.count = 3;
  train.rows = 2;
  train.cols = 2;
  train.x = {0, 10, 255, 4, /**/ 2, 10, 255, 4, /**/ 4, 10, 0, 4};
  train.y = {1, 1, 9};
  LabeledImages test = train;
  test.count = 1;
  test.x.resize(4);
  test.y = {0};

  const auto summary = write_dataset(tmp.path() / "a", train, test, k_source);
  write_dataset(tmp.path() / "b", train, test, k_source);
  for (const char* f : {"train.npz", "test.npz", "dataset.json"}) {
    CAPTURE(f);
    CHECK(read_file(tmp.path() / "a" / f) == read_file(tmp.path() / "b" / f));
  }
  CHECK(nlohmann::json::parse(read_file(tmp.path() / "a" / "dataset.json")) == summary);
  CHECK(read_dataset_info(tmp.path() / "a") == summary);

  CHECK(summary["format"] == "mlctl.dataset/v1");
  CHECK(summary["source"] == k_source);
  CHECK(summary["digest"] == dataset_digest(train, test));
  CHECK(summary["shape"] == nlohmann::json{2, 2});
  CHECK(summary["counts"] == nlohmann::json{{"train", 3}, {"test", 1}});
  CHECK(summary["class_histogram"]["train"] == nlohmann::json{0, 2, 0, 0, 0, 0, 0, 0, 0, 1});
  CHECK(summary["class_histogram"]["test"] == nlohmann::json{1, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  const auto& p = summary["profile"];
  CHECK(p["pixel_mean"] == nlohmann::json{2.0, 10.0, 170.0, 4.0});
  CHECK(p["pixel_min"] == nlohmann::json{0, 10, 0, 4});
  CHECK(p["pixel_max"] == nlohmann::json{4, 10, 255, 4});
  // Population std of {0, 2, 4} = sqrt(8/3); of {255, 255, 0} = 255 * sqrt(2) / 3.
  CHECK(p["pixel_std"][0].get<double>() == 1.632993);
  CHECK(p["pixel_std"][1].get<double>() == 0.0);
  CHECK(p["pixel_std"][2].get<double>() == 120.208153);
  CHECK(p["intensity_histogram"].size() == 256);
  CHECK(p["intensity_histogram"][10] == 3);
  CHECK(p["intensity_histogram"][255] == 2);
  CHECK(p["mean"].get<double>() == 46.5);

  const LabeledImages back = read_dataset_split(tmp.path() / "a", "train");
  CHECK(back.count == 3);
  CHECK(back.rows == 2);
  CHECK(back.cols == 2);
  CHECK(back.x == train.x);
  CHECK(back.y == train.y);
  CHECK(read_dataset_split(tmp.path() / "a", "test").y == test.y);
  CHECK_THROWS_WITH_AS(read_dataset_split(tmp.path() / "a", "valid"),
                       "unknown split 'valid' (expected train or test)", mlctl::Error);

  // Rewriting replaces the directory as a whole.
  write_dataset(tmp.path() / "a", make_split(4, 3), make_split(2, 4), k_source);
  CHECK(read_dataset_info(tmp.path() / "a")["counts"]["train"] == 4);
}

TEST_CASE("write_dataset refuses inconsistent splits and leaves no directory") {
  TempDir tmp;
  auto train = make_split(4, 0);
  train.y[2] = 12;
  CHECK_THROWS_WITH_AS(write_dataset(tmp.path() / "d", train, make_split(1, 0), k_source),
                       "train: label 12 at index 2 is outside 0..9", mlctl::Error);
  auto short_x = make_split(4, 0);
  short_x.x.pop_back();
  CHECK_THROWS_WITH_AS(write_dataset(tmp.path() / "d", short_x, make_split(1, 0), k_source),
                       "train: expected 3136 pixels, got 3135", mlctl::Error);
  CHECK_FALSE(fs::exists(tmp.path() / "d"));
}

TEST_CASE("read_split accepts N x 784 images and integer labels of other widths") {
  TempDir tmp;
  const auto s = make_split(3, 5);
  std::string y64;
  for (const auto label : s.y) {
    std::string v(8, '\0');
    v[0] = static_cast<char>(label);
    y64 += v;
  }
  const auto path = tmp.path() / "flat.npz";
  mlctl::data::write_npz(path, {{"x", {"|u1", {3, 784}, std::string(s.x.begin(), s.x.end())}},
                                {"y", {"<i8", {3}, y64}}});
  const LabeledImages back = read_split(path);
  CHECK(back.rows == 28);
  CHECK(back.cols == 28);
  CHECK(back.x == s.x);
  CHECK(back.y == s.y);

  const auto numpy_file = mlctl::test::fixture("split_deflated.npz");
  const LabeledImages np = read_split(numpy_file);
  CHECK(np.count == 2);
  CHECK(np.rows == 4);
  CHECK(np.y == std::vector<std::uint8_t>{3, 7});
}

TEST_CASE("read_split names the file and the array it refuses") {
  TempDir tmp;
  const auto path = tmp.path() / "bad.npz";
  const std::string four(4 * 4, '\0');
  mlctl::data::write_npz(path, {{"x", {"<f4", {1, 2, 2}, four}}, {"y", {"|u1", {1}, "\1"}}});
  CHECK_THROWS_WITH_AS(read_split(path),
                       (path.string() + ": x: expected dtype |u1 (uint8), got <f4").c_str(),
                       mlctl::Error);
  mlctl::data::write_npz(
      path, {{"x", {"|u1", {2, 5}, std::string(10, '\0')}}, {"y", {"|u1", {2}, "\1\2"}}});
  CHECK_THROWS_WITH_AS(
      read_split(path),
      (path.string() + ": x: expected shape (N, rows, cols) or (N, 784), got (2, 5)").c_str(),
      mlctl::Error);
  mlctl::data::write_npz(path, {{"x", {"|u1", {2, 1, 1}, "ab"}}, {"y", {"|u1", {3}, "\1\2\3"}}});
  CHECK_THROWS_WITH_AS(read_split(path),
                       (path.string() + ": y: expected shape (2,), got (3,)").c_str(),
                       mlctl::Error);
  mlctl::data::write_npz(path, {{"x", {"|u1", {1, 1, 1}, "a"}}});
  CHECK_THROWS_WITH_AS(read_split(path), (path.string() + ": missing array 'y'").c_str(),
                       mlctl::Error);
  mlctl::data::write_npz(
      path, {{"x", {"|u1", {1, 1, 1}, "a"}}, {"y", {"<i2", {1}, std::string("\xff\xff", 2)}}});
  CHECK_THROWS_WITH_AS(read_split(path),
                       (path.string() + ": y: label -1 at index 0 is outside 0..9").c_str(),
                       mlctl::Error);
}

TEST_CASE("read_dataset_info refuses what is not a dataset directory") {
  TempDir tmp;
  const auto dir = tmp.path();
  CHECK_THROWS_WITH_AS(read_dataset_info(dir),
                       (dir.string() + ": not a dataset directory (no dataset.json)").c_str(),
                       mlctl::Error);
  CHECK(kind_of([&] { read_dataset_info(dir); }) == ErrorKind::not_found);
  CHECK(kind_of([&] { read_dataset_split(dir, "train"); }) == ErrorKind::not_found);
  CHECK_THROWS_WITH_AS(read_dataset_info(dir / "nowhere"),
                       (dir.string() + "/nowhere: no such dataset directory").c_str(),
                       mlctl::Error);
  // A directory of the original IDX files gets the command that makes a dataset of it.
  const auto idx = dir / "idx";
  fs::create_directories(idx);
  write_file_atomic(idx / "t10k-images-idx3-ubyte.gz", "");
  CHECK_THROWS_WITH_AS(read_dataset_split(idx, "test"),
                       (idx.string() +
                        ": not a dataset directory (no dataset.json); it holds IDX "
                        "files: make a dataset of them with 'mlctl fetch-mnist "
                        "--source " +
                        idx.string() + " --out DATASET_DIR'")
                           .c_str(),
                       mlctl::Error);
  write_file_atomic(dir / "dataset.json", "{not json");
  CHECK(kind_of([&] { read_dataset_info(dir); }) == ErrorKind::corrupt);
  write_file_atomic(dir / "dataset.json", R"({"format": "other/v9"})");
  CHECK_THROWS_WITH_AS(read_dataset_info(dir),
                       ((dir / "dataset.json").string() +
                        ": format: expected \"mlctl.dataset/v1\", got \"other/v9\"")
                           .c_str(),
                       mlctl::Error);
  write_file_atomic(dir / "dataset.json", R"({"format": "mlctl.dataset/v1"})");
  CHECK_THROWS_WITH_AS(read_dataset_info(dir),
                       ((dir / "train.npz").string() + ": no such file").c_str(), mlctl::Error);
  write_split(dir / "train.npz", make_split(2, 0));
  write_split(dir / "test.npz", make_split(1, 0));
  CHECK(read_dataset_info(dir)["format"] == "mlctl.dataset/v1");
}

#include "data/dataset.hpp"

#include "artifact/sha256.hpp"
#include "data/npz.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <array>
#include <cmath>
#include <limits>

namespace mlctl::data {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view k_digest_tag = "mlctl.dataset.digest/v1\n";

// Checks that the vectors of `split` match its dimensions and that labels are classes.
void validate(const LabeledImages& split, std::string_view what) {
  const auto bad = [&](const std::string& msg) {
    return Error(ErrorKind::invalid_input, std::string(what) + ": " + msg);
  };
  std::size_t pixels = 0;
  if (split.rows == 0 || split.cols == 0 ||
      __builtin_mul_overflow(split.count, split.rows * split.cols, &pixels)) {
    throw bad("invalid image size " + std::to_string(split.rows) + "x" +
              std::to_string(split.cols));
  }
  if (split.x.size() != pixels) {
    throw bad("expected " + std::to_string(pixels) + " pixels, got " +
              std::to_string(split.x.size()));
  }
  if (split.y.size() != split.count) {
    throw bad("expected " + std::to_string(split.count) + " labels, got " +
              std::to_string(split.y.size()));
  }
  for (std::size_t i = 0; i < split.y.size(); ++i) {
    if (split.y[i] >= k_num_classes) {
      throw bad("label " + std::to_string(split.y[i]) + " at index " + std::to_string(i) +
                " is outside 0..9");
    }
  }
}

void append_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) {
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
}

// Rounds to 6 decimals so dataset.json stays short; the inputs are exact integer sums, so the
// result is the same on every machine.
double round6(double v) {
  return std::round(v * 1e6) / 1e6;
}

// Mean and population standard deviation from exact integer sums.
std::pair<double, double> mean_std(unsigned __int128 sum, unsigned __int128 sum_sq,
                                   std::uint64_t n) {
  if (n == 0) {
    return {0.0, 0.0};
  }
  const double mean = static_cast<double>(sum) / static_cast<double>(n);
  // n² var = n Σx² - (Σx)², exact in 128 bits for any realistic dataset.
  const unsigned __int128 num = sum_sq * n - sum * sum;
  const double var = static_cast<double>(num) / (static_cast<double>(n) * static_cast<double>(n));
  return {round6(mean), round6(std::sqrt(var))};
}

nlohmann::json histogram(const LabeledImages& split) {
  std::array<std::uint64_t, k_num_classes> h{};
  for (const auto label : split.y) {
    ++h[label];
  }
  return h;
}

nlohmann::json profile(const LabeledImages& train) {
  const std::size_t pixels = train.rows * train.cols;
  std::vector<std::uint64_t> sum(pixels, 0);
  std::vector<std::uint64_t> sum_sq(pixels, 0);
  std::vector<std::uint8_t> lo(pixels, 255);
  std::vector<std::uint8_t> hi(pixels, 0);
  std::array<std::uint64_t, 256> intensity{};
  for (std::size_t i = 0; i < train.count; ++i) {
    const std::uint8_t* img = train.x.data() + i * pixels;
    for (std::size_t p = 0; p < pixels; ++p) {
      const std::uint8_t v = img[p];
      sum[p] += v;
      sum_sq[p] += std::uint64_t{v} * v;
      lo[p] = std::min(lo[p], v);
      hi[p] = std::max(hi[p], v);
      ++intensity[v];
    }
  }
  if (train.count == 0) {
    std::fill(lo.begin(), lo.end(), 0);
  }
  nlohmann::json mean = nlohmann::json::array();
  nlohmann::json stddev = nlohmann::json::array();
  unsigned __int128 total = 0;
  unsigned __int128 total_sq = 0;
  for (std::size_t p = 0; p < pixels; ++p) {
    const auto [m, s] = mean_std(sum[p], sum_sq[p], train.count);
    mean.push_back(m);
    stddev.push_back(s);
    total += sum[p];
    total_sq += sum_sq[p];
  }
  const auto [m, s] = mean_std(total, total_sq, std::uint64_t{train.count} * pixels);
  return {{"pixel_mean", std::move(mean)},
          {"pixel_std", std::move(stddev)},
          {"pixel_min", lo},
          {"pixel_max", hi},
          {"intensity_histogram", intensity},
          {"mean", m},
          {"std", s}};
}

const NpyArray& require(const std::map<std::string, NpyArray>& arrays, const std::string& key,
                        const fs::path& file) {
  const auto it = arrays.find(key);
  if (it == arrays.end()) {
    throw Error(ErrorKind::invalid_input, file.string() + ": missing array '" + key + "'");
  }
  return it->second;
}

// Reads little-endian integer element `i` of `a` (a supported integer dtype) as int64.
std::int64_t integer_at(const NpyArray& a, std::size_t i) {
  const std::size_t size = npy_item_size(a.dtype);
  const auto* p = reinterpret_cast<const unsigned char*>(a.data.data()) + i * size;
  std::uint64_t v = 0;
  for (std::size_t b = 0; b < size; ++b) {
    v |= std::uint64_t{p[b]} << (8 * b);
  }
  const bool is_signed = a.dtype[1] == 'i';
  if (is_signed && size < 8 && (v >> (8 * size - 1)) != 0) {
    v |= ~std::uint64_t{0} << (8 * size); // sign-extend
  }
  return static_cast<std::int64_t>(v);
}

std::string shape_text(const std::vector<std::size_t>& shape) {
  std::string out = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    out += (i > 0 ? ", " : "") + std::to_string(shape[i]);
  }
  return out + (shape.size() == 1 ? ",)" : ")");
}

} // namespace

LabeledImages from_idx(const IdxArray& images, const IdxArray& labels, std::string_view images_name,
                       std::string_view labels_name) {
  const auto corrupt = [](std::string_view file, const std::string& what) {
    return Error(ErrorKind::corrupt, std::string(file) + ": " + what);
  };
  if (images.dims.size() != 3) {
    throw corrupt(images_name, "expected 3 dimensions (count, rows, cols), got " +
                                   std::to_string(images.dims.size()));
  }
  if (labels.dims.size() != 1) {
    throw corrupt(labels_name,
                  "expected 1 dimension (count), got " + std::to_string(labels.dims.size()));
  }
  if (images.dims[1] == 0 || images.dims[2] == 0) {
    throw corrupt(images_name, "empty images (" + std::to_string(images.dims[1]) + "x" +
                                   std::to_string(images.dims[2]) + ")");
  }
  if (images.dims[0] != labels.dims[0]) {
    throw Error(ErrorKind::corrupt,
                std::string(images_name) + ": " + std::to_string(images.dims[0]) + " images but " +
                    std::string(labels_name) + ": " + std::to_string(labels.dims[0]) + " labels");
  }
  for (std::size_t i = 0; i < labels.data.size(); ++i) {
    if (labels.data[i] >= k_num_classes) {
      throw corrupt(labels_name, "label " + std::to_string(labels.data[i]) + " at index " +
                                     std::to_string(i) + " is outside 0..9");
    }
  }
  LabeledImages out;
  out.count = images.dims[0];
  out.rows = images.dims[1];
  out.cols = images.dims[2];
  out.x = images.data;
  out.y = labels.data;
  return out;
}

LabeledImages read_split(const fs::path& npz) {
  const auto arrays = read_npz(npz);
  const NpyArray& x = require(arrays, "x", npz);
  const NpyArray& y = require(arrays, "y", npz);
  const auto invalid = [&](const std::string& what) {
    return Error(ErrorKind::invalid_input, npz.string() + ": " + what);
  };
  if (x.dtype != "|u1") {
    throw invalid("x: expected dtype |u1 (uint8), got " + x.dtype);
  }
  LabeledImages out;
  if (x.shape.size() == 3 && x.shape[1] > 0 && x.shape[2] > 0) {
    out.rows = x.shape[1];
    out.cols = x.shape[2];
  } else if (x.shape.size() == 2 && x.shape[1] == 28 * 28) {
    out.rows = 28;
    out.cols = 28;
  } else {
    throw invalid("x: expected shape (N, rows, cols) or (N, 784), got " + shape_text(x.shape));
  }
  out.count = x.shape[0];
  if (y.shape.size() != 1 || y.shape[0] != out.count) {
    throw invalid("y: expected shape (" + std::to_string(out.count) + ",), got " +
                  shape_text(y.shape));
  }
  if (y.dtype == "|b1" || y.dtype[1] == 'f') {
    throw invalid("y: expected an integer dtype, got " + y.dtype);
  }
  out.x.assign(x.data.begin(), x.data.end());
  out.y.resize(out.count);
  for (std::size_t i = 0; i < out.count; ++i) {
    const std::int64_t v = integer_at(y, i);
    if (v < 0 || v >= static_cast<std::int64_t>(k_num_classes)) {
      throw Error(ErrorKind::corrupt, npz.string() + ": y: label " + std::to_string(v) +
                                          " at index " + std::to_string(i) + " is outside 0..9");
    }
    out.y[i] = static_cast<std::uint8_t>(v);
  }
  return out;
}

void write_split(const fs::path& npz, const LabeledImages& split) {
  validate(split, npz.string());
  // Views, not copies: the pixels go from the split to the file in one pass.
  std::map<std::string, NpyView> arrays;
  arrays["x"] =
      NpyView{"|u1", {split.count, split.rows, split.cols}, std::as_bytes(std::span(split.x))};
  arrays["y"] = NpyView{"|u1", {split.count}, std::as_bytes(std::span(split.y))};
  write_npz_views(npz, arrays);
}

std::string dataset_digest(const LabeledImages& train, const LabeledImages& test) {
  artifact::Sha256 h;
  h.update(k_digest_tag);
  for (const LabeledImages* split : {&train, &test}) {
    std::string dims;
    append_u64(dims, split->count);
    append_u64(dims, split->rows);
    append_u64(dims, split->cols);
    h.update(dims);
    h.update(std::as_bytes(std::span(split->x)));
    h.update(std::as_bytes(std::span(split->y)));
  }
  return "sha256:" + h.hex_digest();
}

nlohmann::json dataset_summary(const LabeledImages& train, const LabeledImages& test,
                               const nlohmann::json& source) {
  validate(train, "train");
  validate(test, "test");
  if (train.rows != test.rows || train.cols != test.cols) {
    throw Error(ErrorKind::invalid_input, "test: images are " + std::to_string(test.rows) + "x" +
                                              std::to_string(test.cols) + " but train images are " +
                                              std::to_string(train.rows) + "x" +
                                              std::to_string(train.cols));
  }
  return {{"format", k_dataset_format},
          {"source", source},
          {"digest", dataset_digest(train, test)},
          {"shape", {train.rows, train.cols}},
          {"counts", {{"train", train.count}, {"test", test.count}}},
          {"class_histogram", {{"train", histogram(train)}, {"test", histogram(test)}}},
          {"profile", profile(train)}};
}

nlohmann::json write_dataset(const fs::path& dir, const LabeledImages& train,
                             const LabeledImages& test, const nlohmann::json& source) {
  nlohmann::json summary = dataset_summary(train, test, source);
  util::StagedDir staged(dir);
  write_split(staged.path() / "train.npz", train);
  write_split(staged.path() / "test.npz", test);
  util::write_file_atomic(staged.path() / "dataset.json", summary.dump(2) + "\n");
  staged.commit();
  return summary;
}

namespace {

// "<dir>: not a dataset directory (no dataset.json)", saying what to do with a directory of the
// original IDX files (as Debian's dataset-fashion-mnist installs them), and naming a path that
// does not exist as such.
[[noreturn]] void throw_not_a_dataset(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    throw Error(ErrorKind::not_found, dir.string() + ": no such dataset directory");
  }
  std::string message = dir.string() + ": not a dataset directory (no dataset.json)";
  if (fs::is_directory(dir, ec)) {
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      if (entry.path().filename().string().find("-ubyte") != std::string::npos) {
        message +=
            "; it holds IDX files: make a dataset of them with 'mlctl fetch-mnist --source " +
            dir.string() + " --out DATASET_DIR'";
        break;
      }
    }
  }
  throw Error(ErrorKind::not_found, message);
}

} // namespace

nlohmann::json read_dataset_info(const fs::path& dir) {
  const fs::path json_path = dir / "dataset.json";
  std::error_code ec;
  if (!fs::is_regular_file(json_path, ec)) {
    throw_not_a_dataset(dir);
  }
  nlohmann::json info;
  try {
    info = nlohmann::json::parse(util::read_file(json_path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorKind::corrupt, json_path.string() + ": invalid JSON: " + e.what());
  }
  if (!info.is_object() || !info.contains("format") || info["format"] != k_dataset_format) {
    const std::string got =
        info.is_object() && info.contains("format") ? info["format"].dump() : "nothing";
    throw Error(ErrorKind::corrupt, json_path.string() + ": format: expected \"" +
                                        std::string(k_dataset_format) + "\", got " + got);
  }
  for (const char* split : {"train.npz", "test.npz"}) {
    if (!fs::is_regular_file(dir / split, ec)) {
      throw Error(ErrorKind::not_found, (dir / split).string() + ": no such file");
    }
  }
  return info;
}

LabeledImages read_dataset_split(const fs::path& dir, std::string_view split) {
  if (split != "train" && split != "test") {
    throw Error(ErrorKind::invalid_input,
                "unknown split '" + std::string(split) + "' (expected train or test)");
  }
  std::error_code ec;
  if (!fs::is_regular_file(dir / "dataset.json", ec)) {
    throw_not_a_dataset(dir);
  }
  return read_split(dir / (std::string(split) + ".npz"));
}

} // namespace mlctl::data

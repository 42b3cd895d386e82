#include "explain/rise.hpp"

#include "nn/rng.hpp"
#include "onnx/runtime.hpp"
#include "util/error.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <string>

namespace mlctl::explain {

namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

std::string number(double v) {
  std::string s = std::to_string(v);
  while (s.size() > 1 && s.back() == '0') {
    s.pop_back();
  }
  if (!s.empty() && s.back() == '.') {
    s.pop_back();
  }
  return s;
}

} // namespace

void validate(const RiseOptions& o) {
  if (o.masks < 1 || o.masks > 100000) {
    throw Error(ErrorKind::invalid_input,
                "masks: must be 1..100000, got " + std::to_string(o.masks));
  }
  if (o.grid < 2 || o.grid > 28) {
    throw Error(ErrorKind::invalid_input, "grid: must be 2..28, got " + std::to_string(o.grid));
  }
  if (!(o.p > 0.0 && o.p < 1.0)) {
    throw Error(ErrorKind::invalid_input, "p: must be in (0, 1), got " + number(o.p));
  }
  if (o.batch < 1) {
    throw Error(ErrorKind::invalid_input, "batch: must be at least 1");
  }
}

std::vector<float> make_masks(std::size_t rows, std::size_t cols, const RiseOptions& o) {
  validate(o);
  const auto g = static_cast<std::size_t>(o.grid);
  const std::size_t cell_h = (rows + g - 1) / g;
  const std::size_t cell_w = (cols + g - 1) / g;
  const std::size_t up_h = (g + 1) * cell_h;
  const std::size_t up_w = (g + 1) * cell_w;
  // Bilinear sampling positions (half-pixel centres) of every upsampled row and column: the
  // two grid cells and the weight of the second.
  struct Tap {
    std::size_t i0, i1;
    float w;
  };
  const auto taps = [g](std::size_t up) {
    std::vector<Tap> t(up);
    const double scale = static_cast<double>(g) / static_cast<double>(up);
    for (std::size_t u = 0; u < up; ++u) {
      const double s =
          std::clamp((static_cast<double>(u) + 0.5) * scale - 0.5, 0.0, static_cast<double>(g - 1));
      const auto i0 = static_cast<std::size_t>(s);
      const std::size_t i1 = std::min(i0 + 1, g - 1);
      t[u] = {i0, i1, static_cast<float>(s - static_cast<double>(i0))};
    }
    return t;
  };
  const auto row_taps = taps(up_h);
  const auto col_taps = taps(up_w);

  nn::Rng rng(o.seed);
  const std::size_t pixels = rows * cols;
  std::vector<float> masks(o.masks * pixels);
  std::vector<float> cells(g * g);
  std::vector<float> horizontal(g * cols); // grid rows interpolated along the columns
  for (std::size_t m = 0; m < o.masks; ++m) {
    for (auto& c : cells) {
      c = rng.uniform() < o.p ? 1.0f : 0.0f;
    }
    const std::size_t dy = rng.below(cell_h);
    const std::size_t dx = rng.below(cell_w);
    for (std::size_t gy = 0; gy < g; ++gy) {
      for (std::size_t c = 0; c < cols; ++c) {
        const auto& t = col_taps[c + dx];
        horizontal[gy * cols + c] = cells[gy * g + t.i0] * (1 - t.w) + cells[gy * g + t.i1] * t.w;
      }
    }
    float* out = masks.data() + m * pixels;
    for (std::size_t r = 0; r < rows; ++r) {
      const auto& t = row_taps[r + dy];
      const float* a = horizontal.data() + t.i0 * cols;
      const float* b = horizontal.data() + t.i1 * cols;
      for (std::size_t c = 0; c < cols; ++c) {
        out[r * cols + c] = a[c] * (1 - t.w) + b[c] * t.w;
      }
    }
  }
  return masks;
}

std::vector<Saliency> rise(const Classifier& classifier, const std::vector<float>& images,
                           std::size_t n, std::size_t rows, std::size_t cols,
                           const RiseOptions& o) {
  validate(o);
  const std::size_t pixels = rows * cols;
  if (pixels == 0 || images.size() != n * pixels) {
    throw Error(ErrorKind::invalid_input, "images: expected " + std::to_string(n) + " × " +
                                              std::to_string(pixels) + " values, got " +
                                              std::to_string(images.size()));
  }
  std::vector<Saliency> result(n);
  if (n == 0) {
    return result;
  }
  const auto masks = make_masks(rows, cols, o);
  const Eigen::Map<const RowMatrix> mask_matrix(masks.data(), static_cast<Eigen::Index>(o.masks),
                                                static_cast<Eigen::Index>(pixels));
  const Eigen::RowVectorXf coverage = mask_matrix.colwise().sum();

  // The unmasked images, all at once: their probabilities and the number of classes.
  const auto base = classifier(images, n);
  if (base.empty() || base.size() % n != 0) {
    throw Error(ErrorKind::invalid_input, "classifier: returned " + std::to_string(base.size()) +
                                              " scores for " + std::to_string(n) + " images");
  }
  const std::size_t classes = base.size() / n;

  std::vector<float> batch;
  for (std::size_t k = 0; k < n; ++k) {
    auto& s = result[k];
    s.rows = rows;
    s.cols = cols;
    s.classes = classes;
    s.probabilities.assign(base.begin() + static_cast<std::ptrdiff_t>(k * classes),
                           base.begin() + static_cast<std::ptrdiff_t>((k + 1) * classes));
    s.predicted =
        std::max_element(s.probabilities.begin(), s.probabilities.end()) - s.probabilities.begin();

    const Eigen::Map<const Eigen::RowVectorXf> image(images.data() + k * pixels,
                                                     static_cast<Eigen::Index>(pixels));
    RowMatrix sal =
        RowMatrix::Zero(static_cast<Eigen::Index>(classes), static_cast<Eigen::Index>(pixels));
    Eigen::RowVectorXd score_sum = Eigen::RowVectorXd::Zero(static_cast<Eigen::Index>(classes));
    for (std::size_t first = 0; first < o.masks; first += o.batch) {
      const std::size_t count = std::min(o.batch, o.masks - first);
      batch.resize(count * pixels);
      Eigen::Map<RowMatrix> masked(batch.data(), static_cast<Eigen::Index>(count),
                                   static_cast<Eigen::Index>(pixels));
      const auto block = mask_matrix.middleRows(static_cast<Eigen::Index>(first),
                                                static_cast<Eigen::Index>(count));
      masked = block.array().rowwise() * image.array();
      const auto scores = classifier(batch, count);
      if (scores.size() != count * classes) {
        throw Error(ErrorKind::invalid_input, "classifier: returned " +
                                                  std::to_string(scores.size()) + " scores for " +
                                                  std::to_string(count) + " images");
      }
      const Eigen::Map<const RowMatrix> p(scores.data(), static_cast<Eigen::Index>(count),
                                          static_cast<Eigen::Index>(classes));
      sal.noalias() += p.transpose() * block;
      score_sum += p.colwise().sum().cast<double>();
    }
    // Each pixel is divided by how much the drawn masks actually kept it (sum_i M_i), whose
    // expectation is the paper's N p: the same map in expectation, without the sampling
    // noise of the masks themselves (which would otherwise swamp weak evidence).
    sal.array().rowwise() /= coverage.array().max(1e-6f);
    s.maps.assign(sal.data(), sal.data() + sal.size());
    s.baseline.resize(classes);
    for (std::size_t c = 0; c < classes; ++c) {
      s.baseline[c] = static_cast<float>(score_sum(static_cast<Eigen::Index>(c)) /
                                         static_cast<double>(o.masks));
    }
  }
  return result;
}

Saliency rise(const Classifier& classifier, const std::vector<float>& image, std::size_t rows,
              std::size_t cols, const RiseOptions& options) {
  return std::move(rise(classifier, image, 1, rows, cols, options).front());
}

Classifier onnx_classifier(const onnx::Model& model) {
  const auto& outputs = model.outputs();
  std::size_t index = outputs.size();
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    if (outputs[i].name == "probabilities" && outputs[i].datatype == "FP32") {
      index = i;
      break;
    }
  }
  for (std::size_t i = 0; i < outputs.size() && index == outputs.size(); ++i) {
    if (outputs[i].datatype == "FP32" && outputs[i].shape.size() == 2) {
      index = i;
    }
  }
  if (index == outputs.size() || model.inputs().size() != 1) {
    throw Error(ErrorKind::invalid_input, model.name() + ": no FP32 [N, classes] output");
  }
  return [&model, index](const std::vector<float>& images, std::size_t n) {
    onnx::Tensor input;
    input.datatype = "FP32";
    input.shape = {static_cast<std::int64_t>(n),
                   static_cast<std::int64_t>(n == 0 ? 0 : images.size() / n)};
    input.f32 = images;
    auto out = model.run({std::move(input)});
    return std::move(out.at(index).f32);
  };
}

double mass_share(const Saliency& s, std::size_t c, std::size_t col_begin, std::size_t col_end) {
  if (c >= s.classes || c >= s.baseline.size()) {
    return 0.0;
  }
  const float* map = s.map(c);
  double inside = 0;
  double total = 0;
  for (std::size_t r = 0; r < s.rows; ++r) {
    for (std::size_t col = 0; col < s.cols; ++col) {
      const double v = std::max(0.0f, map[r * s.cols + col] - s.baseline[c]);
      total += v;
      if (col >= col_begin && col < col_end) {
        inside += v;
      }
    }
  }
  return total > 0 ? inside / total : 0.0;
}

} // namespace mlctl::explain

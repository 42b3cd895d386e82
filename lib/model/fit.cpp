#include "model/fit.hpp"

#include "util/error.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace mlctl::model {

namespace {

// Ink below a quarter of the range (paper texture, shadows, JPEG-like noise) does not make the
// digit's box larger.
constexpr float k_box_threshold = 255.0f / 4;
// Less contrast than this (of 255) is no digit.
constexpr int k_min_contrast = 32;

// Box-filter resampling of n values to m: output i covers [i·n/m, (i+1)·n/m) of the input and
// takes each input value with the length it overlaps. Shrinking averages (anti-aliased),
// growing repeats; an integer ratio gives exact block means.
void resample(const float* src, std::size_t n, float* dst, std::size_t m) {
  const double step = static_cast<double>(n) / static_cast<double>(m);
  for (std::size_t i = 0; i < m; ++i) {
    const double a = static_cast<double>(i) * step;
    const double b = i + 1 == m ? static_cast<double>(n) : static_cast<double>(i + 1) * step;
    double sum = 0;
    for (auto j = static_cast<std::size_t>(a); j < n && static_cast<double>(j) < b; ++j) {
      const double overlap =
          std::min(b, static_cast<double>(j + 1)) - std::max(a, static_cast<double>(j));
      sum += src[j] * overlap;
    }
    dst[i] = static_cast<float>(sum / (b - a));
  }
}

std::uint8_t median_of_border(const GrayImage& image) {
  std::vector<std::uint8_t> border;
  const auto at = [&](std::size_t y, std::size_t x) { return image.pixels[y * image.cols + x]; };
  for (std::size_t x = 0; x < image.cols; ++x) {
    border.push_back(at(0, x));
    border.push_back(at(image.rows - 1, x));
  }
  for (std::size_t y = 1; y + 1 < image.rows; ++y) {
    border.push_back(at(y, 0));
    border.push_back(at(y, image.cols - 1));
  }
  const auto middle = border.begin() + static_cast<std::ptrdiff_t>(border.size() / 2);
  std::nth_element(border.begin(), middle, border.end());
  return *middle;
}

} // namespace

GrayImage fit_digit(const GrayImage& image, std::size_t rows, std::size_t cols,
                    std::string_view name, FitReport* report) {
  if (image.rows == 0 || image.cols == 0 || rows == 0 || cols == 0) {
    throw Error(ErrorKind::invalid_input, std::string(name) + ": the image is empty");
  }
  FitReport r;
  // Light digit on black, as MNIST: a light background is paper.
  int background = median_of_border(image);
  r.inverted = background > 127;
  const auto value = [&](std::size_t y, std::size_t x) -> int {
    const int v = image.pixels[y * image.cols + x];
    return r.inverted ? 255 - v : v;
  };
  if (r.inverted) {
    background = 255 - background;
  }
  int brightest = 0;
  for (std::size_t y = 0; y < image.rows; ++y) {
    for (std::size_t x = 0; x < image.cols; ++x) {
      brightest = std::max(brightest, value(y, x));
    }
  }
  if (brightest - background < k_min_contrast) {
    throw Error(ErrorKind::invalid_input,
                std::string(name) + ": no digit found: the image is nearly uniform (background " +
                    std::to_string(r.inverted ? 255 - background : background) +
                    ", the ink differs by at most " + std::to_string(brightest - background) +
                    " of 255)");
  }
  // The background becomes 0, the brightest ink 255.
  const float gain = 255.0f / static_cast<float>(brightest - background);
  const auto ink = [&](std::size_t y, std::size_t x) {
    return std::max(0.0f, static_cast<float>(value(y, x) - background) * gain);
  };

  std::size_t x0 = image.cols;
  std::size_t y0 = image.rows;
  std::size_t x1 = 0;
  std::size_t y1 = 0;
  for (std::size_t y = 0; y < image.rows; ++y) {
    for (std::size_t x = 0; x < image.cols; ++x) {
      if (ink(y, x) > k_box_threshold) {
        x0 = std::min(x0, x);
        y0 = std::min(y0, y);
        x1 = std::max(x1, x + 1);
        y1 = std::max(y1, y + 1);
      }
    }
  }
  r.box_x = x0;
  r.box_y = y0;
  r.box_cols = x1 - x0;
  r.box_rows = y1 - y0;

  // The longer side of the box becomes 20 (of 28), the other keeps the aspect.
  const auto inner = std::max<std::size_t>(
      1,
      static_cast<std::size_t>(std::lround(static_cast<double>(std::min(rows, cols)) * 20 / 28)));
  const double scale =
      static_cast<double>(inner) / static_cast<double>(std::max(r.box_cols, r.box_rows));
  const auto scaled = [&](std::size_t n) {
    return std::clamp<std::size_t>(
        static_cast<std::size_t>(std::lround(static_cast<double>(n) * scale)), 1, inner);
  };
  r.scaled_cols = scaled(r.box_cols);
  r.scaled_rows = scaled(r.box_rows);

  // Rows first (box_rows × scaled_cols), then columns (scaled_rows × scaled_cols).
  std::vector<float> line(std::max(r.box_cols, r.box_rows));
  std::vector<float> across(r.box_rows * r.scaled_cols);
  for (std::size_t y = 0; y < r.box_rows; ++y) {
    for (std::size_t x = 0; x < r.box_cols; ++x) {
      line[x] = ink(y0 + y, x0 + x);
    }
    resample(line.data(), r.box_cols, across.data() + y * r.scaled_cols, r.scaled_cols);
  }
  std::vector<float> box(r.scaled_rows * r.scaled_cols);
  std::vector<float> column(r.scaled_rows);
  for (std::size_t x = 0; x < r.scaled_cols; ++x) {
    for (std::size_t y = 0; y < r.box_rows; ++y) {
      line[y] = across[y * r.scaled_cols + x];
    }
    resample(line.data(), r.box_rows, column.data(), r.scaled_rows);
    for (std::size_t y = 0; y < r.scaled_rows; ++y) {
      box[y * r.scaled_cols + x] = column[y];
    }
  }

  // The centre of mass goes to the centre, as far as the box stays whole.
  double mass = 0;
  double mx = 0;
  double my = 0;
  for (std::size_t y = 0; y < r.scaled_rows; ++y) {
    for (std::size_t x = 0; x < r.scaled_cols; ++x) {
      const double v = box[y * r.scaled_cols + x];
      mass += v;
      mx += v * (static_cast<double>(x) + 0.5);
      my += v * (static_cast<double>(y) + 0.5);
    }
  }
  const auto offset = [&](double centre, std::size_t size, std::size_t room) {
    const auto at = std::lround(static_cast<double>(room) / 2 - centre);
    return static_cast<std::size_t>(std::clamp<long>(at, 0, static_cast<long>(room - size)));
  };
  const auto ox = offset(mx / mass, r.scaled_cols, cols);
  const auto oy = offset(my / mass, r.scaled_rows, rows);

  GrayImage out;
  out.rows = rows;
  out.cols = cols;
  out.pixels.assign(rows * cols, 0);
  for (std::size_t y = 0; y < r.scaled_rows; ++y) {
    for (std::size_t x = 0; x < r.scaled_cols; ++x) {
      out.pixels[(oy + y) * cols + ox + x] = static_cast<std::uint8_t>(
          std::lround(std::clamp(box[y * r.scaled_cols + x], 0.0f, 255.0f)));
    }
  }
  if (report != nullptr) {
    *report = r;
  }
  return out;
}

} // namespace mlctl::model

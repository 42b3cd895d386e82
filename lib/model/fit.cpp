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
constexpr double k_min_contrast = 32;

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

struct BorderPixel {
  double x = 0;
  double y = 0;
  double v = 0;
};

std::vector<BorderPixel> border_of(const GrayImage& image) {
  std::vector<BorderPixel> border;
  const auto add = [&](std::size_t y, std::size_t x) {
    border.push_back({static_cast<double>(x), static_cast<double>(y),
                      static_cast<double>(image.pixels[y * image.cols + x])});
  };
  for (std::size_t x = 0; x < image.cols; ++x) {
    add(0, x);
    if (image.rows > 1) {
      add(image.rows - 1, x);
    }
  }
  for (std::size_t y = 1; y + 1 < image.rows; ++y) {
    add(y, 0);
    if (image.cols > 1) {
      add(y, image.cols - 1);
    }
  }
  return border;
}

double median(std::vector<double> values) {
  const auto middle = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
  std::nth_element(values.begin(), middle, values.end());
  return *middle;
}

// The paper's level under light that is uneven across the sheet: a plane a + b·x + c·y fitted
// to the border pixels by least squares, then twice more without those far from it (ink or an
// object that touches the border). Flat light gives the border's level.
struct Plane {
  double a = 0;
  double b = 0;
  double c = 0;
  double mx = 0; // the centre of the pixels it was fitted to
  double my = 0;
  double at(double x, double y) const { return a + b * (x - mx) + c * (y - my); }
};

Plane fit_plane(std::vector<BorderPixel> pixels) {
  Plane plane;
  for (int round = 0; round < 3 && !pixels.empty(); ++round) {
    const auto n = static_cast<double>(pixels.size());
    double sx = 0;
    double sy = 0;
    double sv = 0;
    for (const auto& p : pixels) {
      sx += p.x;
      sy += p.y;
      sv += p.v;
    }
    plane = Plane{sv / n, 0, 0, sx / n, sy / n};
    double xx = 0;
    double xy = 0;
    double yy = 0;
    double xv = 0;
    double yv = 0;
    for (const auto& p : pixels) {
      const double dx = p.x - plane.mx;
      const double dy = p.y - plane.my;
      const double dv = p.v - plane.a;
      xx += dx * dx;
      xy += dx * dy;
      yy += dy * dy;
      xv += dx * dv;
      yv += dy * dv;
    }
    const double det = xx * yy - xy * xy;
    if (det > 1e-9 * (xx * yy + 1)) {
      plane.b = (xv * yy - yv * xy) / det;
      plane.c = (yv * xx - xv * xy) / det;
    } else { // one row or one column: a slope along it at most
      plane.b = xx > 0 ? xv / xx : 0;
      plane.c = yy > 0 ? yv / yy : 0;
    }
    std::vector<double> residuals;
    residuals.reserve(pixels.size());
    for (const auto& p : pixels) {
      residuals.push_back(std::abs(p.v - plane.at(p.x, p.y)));
    }
    // Kept: within 3 robust standard deviations (1.4826 × the median deviation), or 8 levels.
    const double limit = std::max(3 * 1.4826 * median(residuals), 8.0);
    std::vector<BorderPixel> kept;
    for (std::size_t i = 0; i < pixels.size(); ++i) {
      if (residuals[i] <= limit) {
        kept.push_back(pixels[i]);
      }
    }
    if (kept.size() == pixels.size() || kept.size() < 3) {
      break;
    }
    pixels = std::move(kept);
  }
  return plane;
}

// Calls `visit(y, x, v, mean)` for every pixel with its `value` v and the mean of `value` over
// its 3×3 neighbourhood (the part inside the image), computing each value once.
template <class Value, class Visit>
void for_each_mean3(std::size_t rows, std::size_t cols, const Value& value, const Visit& visit) {
  std::vector<double> ring(3 * cols); // rows y-1, y, y+1 at (row % 3) * cols
  const auto fill = [&](std::size_t y) {
    for (std::size_t x = 0; x < cols; ++x) {
      ring[(y % 3) * cols + x] = value(y, x);
    }
  };
  fill(0);
  for (std::size_t y = 0; y < rows; ++y) {
    if (y + 1 < rows) {
      fill(y + 1);
    }
    const std::size_t first_row = y == 0 ? 0 : y - 1;
    const std::size_t last_row = std::min(y + 1, rows - 1);
    for (std::size_t x = 0; x < cols; ++x) {
      const std::size_t first_col = x == 0 ? 0 : x - 1;
      const std::size_t last_col = std::min(x + 1, cols - 1);
      double sum = 0;
      for (std::size_t yy = first_row; yy <= last_row; ++yy) {
        for (std::size_t xx = first_col; xx <= last_col; ++xx) {
          sum += ring[(yy % 3) * cols + xx];
        }
      }
      visit(y, x, ring[(y % 3) * cols + x],
            sum / static_cast<double>((last_row - first_row + 1) * (last_col - first_col + 1)));
    }
  }
}

} // namespace

GrayImage fit_digit(const GrayImage& image, std::size_t rows, std::size_t cols,
                    std::string_view name, FitReport* report) {
  if (image.rows == 0 || image.cols == 0 || rows == 0 || cols == 0) {
    throw Error(ErrorKind::invalid_input, std::string(name) + ": the image is empty");
  }
  FitReport r;
  // Light digit on black, as MNIST: a light border is paper.
  auto border = border_of(image);
  std::vector<double> levels;
  for (const auto& p : border) {
    levels.push_back(p.v);
  }
  r.inverted = median(levels) > 127;
  const auto paper = fit_plane(std::move(border));
  // How far each pixel stands out of the paper (0 for the paper itself), of 255. Light on
  // paper multiplies: ink is the share of the paper's light it takes away, the same at either
  // end of a sheet lit from one side. Light ink on a dark ground adds to it.
  const auto above = [&](std::size_t y, std::size_t x) {
    const double v = image.pixels[y * image.cols + x];
    const double level = paper.at(static_cast<double>(x), static_cast<double>(y));
    return std::max(0.0, r.inverted ? (level - v) / std::max(level, 1.0) * 255 : v - level);
  };
  // The strongest ink, but for the top 0.1% of pixels (the largest value in a small image): a few
  // pixels of noise do not set it.
  constexpr std::size_t k_bins = 4096;
  std::vector<std::size_t> counts(k_bins);
  std::vector<double> largest(k_bins);
  for (std::size_t y = 0; y < image.rows; ++y) {
    for (std::size_t x = 0; x < image.cols; ++x) {
      const double v = above(y, x);
      const auto bin = std::min(static_cast<std::size_t>(v / 256 * k_bins), k_bins - 1);
      ++counts[bin];
      largest[bin] = std::max(largest[bin], v);
    }
  }
  const std::size_t top = std::max<std::size_t>(1, image.rows * image.cols / 1000);
  double contrast = 0;
  for (std::size_t bin = k_bins, seen = 0; bin-- > 0 && seen < top;) {
    seen += counts[bin];
    contrast = largest[bin];
  }
  if (contrast < k_min_contrast) {
    throw Error(ErrorKind::invalid_input,
                std::string(name) + ": no digit found: the image is nearly uniform (background " +
                    std::to_string(std::lround(paper.a)) + ", the ink differs by at most " +
                    std::to_string(std::lround(contrast)) + " of 255)");
  }
  // The paper becomes 0, the strongest ink 255.
  const double gain = 255.0 / contrast;
  const auto ink = [&](std::size_t y, std::size_t x) {
    return static_cast<float>(above(y, x) * gain);
  };

  std::size_t x0 = image.cols;
  std::size_t y0 = image.rows;
  std::size_t x1 = 0;
  std::size_t y1 = 0;
  // A pixel in the box stands out, and so does its 3×3 neighbourhood on average (a third of it
  // at full strength): specks of dust or noise of one or two pixels do not widen the box, a
  // stroke one pixel wide still counts (but for its very ends).
  for_each_mean3(image.rows, image.cols, above,
                 [&](std::size_t y, std::size_t x, double v, double mean) {
                   if (v * gain > k_box_threshold && mean * gain > k_box_threshold) {
                     x0 = std::min(x0, x);
                     y0 = std::min(y0, y);
                     x1 = std::max(x1, x + 1);
                     y1 = std::max(y1, y + 1);
                   }
                 });
  if (x1 == 0) {
    throw Error(ErrorKind::invalid_input,
                std::string(name) + ": no digit found: only specks stand out of the background");
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

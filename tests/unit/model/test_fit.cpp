#include "model/fit.hpp"
#include "model/predict.hpp"
#include "util/error.hpp"

#include <cmath>
#include <cstdlib>
#include <doctest/doctest.h>
#include <utility>
#include <vector>

using namespace mlctl::model;

namespace {

// A "0" in the MNIST form: a ring 3 pixels thick whose box is 12×20 at (8, 4), so that its
// centre of mass is the centre of 28×28 and fitting it changes nothing.
GrayImage mnist_zero() {
  GrayImage image{28, 28, std::vector<std::uint8_t>(784, 0)};
  for (std::size_t y = 4; y < 24; ++y) {
    for (std::size_t x = 8; x < 20; ++x) {
      const bool ring = y < 7 || y >= 21 || x < 11 || x >= 17;
      image.pixels[y * 28 + x] = ring ? 255 : 0;
    }
  }
  return image;
}

// `image` k times larger, dark on white, at (left, top) of a white canvas of rows × cols.
GrayImage photo_of(const GrayImage& image, std::size_t k, std::size_t rows, std::size_t cols,
                   std::size_t left, std::size_t top) {
  GrayImage out{rows, cols, std::vector<std::uint8_t>(rows * cols, 255)};
  for (std::size_t y = 0; y < image.rows * k; ++y) {
    for (std::size_t x = 0; x < image.cols * k; ++x) {
      out.pixels[(top + y) * cols + left + x] =
          static_cast<std::uint8_t>(255 - image.pixels[(y / k) * image.cols + x / k]);
    }
  }
  return out;
}

// The box of the "0" in photo_of(mnist_zero(), 7, ..., 17, 30): 12×20 at (8, 4), 7× larger.
void check_photo_box(const FitReport& report) {
  CHECK(report.box_x == 17 + 8 * 7);
  CHECK(report.box_y == 30 + 4 * 7);
  CHECK(report.box_cols == 12 * 7);
  CHECK(report.box_rows == 20 * 7);
}

} // namespace

TEST_CASE("fit_digit leaves an image in the MNIST form as it is") {
  const auto zero = mnist_zero();
  FitReport report;
  const auto fitted = fit_digit(zero, 28, 28, "zero.png", &report);
  CHECK(fitted.pixels == zero.pixels);
  CHECK_FALSE(report.inverted);
  CHECK(report.box_x == 8);
  CHECK(report.box_y == 4);
  CHECK(report.box_cols == 12);
  CHECK(report.box_rows == 20);
}

TEST_CASE("fit_digit brings a larger, shifted, dark-on-light picture back to the MNIST form") {
  const auto zero = mnist_zero();
  const auto photo = photo_of(zero, 7, 250, 230, 17, 30);
  FitReport report;
  const auto fitted = fit_digit(photo, 28, 28, "photo.png", &report);
  CHECK(report.inverted);
  check_photo_box(report);
  CHECK(report.scaled_cols == 12);
  CHECK(report.scaled_rows == 20);
  // 7×7 blocks average back to the pixels exactly.
  CHECK(fitted.pixels == zero.pixels);
}

TEST_CASE("fit_digit scales a small digit up and centres it by its mass") {
  // A bar 1 wide and 5 high in the middle of 3×5: 4×20 in the output, centred.
  GrayImage bar{5, 3, {0, 255, 0, 0, 255, 0, 0, 255, 0, 0, 255, 0, 0, 255, 0}};
  FitReport report;
  const auto fitted = fit_digit(bar, 28, 28, "bar.png", &report);
  CHECK(report.scaled_cols == 4);
  CHECK(report.scaled_rows == 20);
  for (std::size_t y = 0; y < 28; ++y) {
    for (std::size_t x = 0; x < 28; ++x) {
      const bool inside = y >= 4 && y < 24 && x >= 12 && x < 16;
      CHECK(fitted.pixels[y * 28 + x] == (inside ? 255 : 0));
    }
  }
}

TEST_CASE("fit_digit stretches faint ink and ignores the paper's level") {
  // Gray ink (100) on gray paper (160): the same digit as white on black.
  const auto zero = mnist_zero();
  GrayImage faint{28, 28, {}};
  for (const auto v : zero.pixels) {
    faint.pixels.push_back(v != 0 ? 100 : 160);
  }
  FitReport report;
  const auto fitted = fit_digit(faint, 28, 28, "faint.png", &report);
  CHECK(report.inverted);
  CHECK(fitted.pixels == zero.pixels);
}

TEST_CASE("fit_digit: specks of dust on the sheet do not widen the digit's box") {
  const auto zero = mnist_zero();
  auto photo = photo_of(zero, 7, 250, 230, 17, 30);
  for (const auto& [y, x] : {std::pair{2, 3}, {240, 220}, {100, 5}, {5, 200}, {101, 6}}) {
    photo.pixels[static_cast<std::size_t>(y) * photo.cols + static_cast<std::size_t>(x)] = 0;
  }
  FitReport report;
  const auto fitted = fit_digit(photo, 28, 28, "dusty.png", &report);
  check_photo_box(report);
  CHECK(fitted.pixels == zero.pixels);
}

TEST_CASE("fit_digit takes out light that falls unevenly across the sheet") {
  // The photo of the "0" lit from the left: the paper goes from 250 to 110 across the sheet and
  // from top to bottom by 20 more, the ink takes 90% of the light wherever it is. At the right
  // end the paper is darker than the ink at the left, so no single level separates them.
  const auto zero = mnist_zero();
  auto photo = photo_of(zero, 7, 250, 230, 17, 30);
  for (std::size_t y = 0; y < photo.rows; ++y) {
    for (std::size_t x = 0; x < photo.cols; ++x) {
      const double light =
          250.0 - 140.0 * static_cast<double>(x) / 229 - 20.0 * static_cast<double>(y) / 249;
      const double reflects = photo.pixels[y * photo.cols + x] == 255 ? 1.0 : 0.1;
      photo.pixels[y * photo.cols + x] = static_cast<std::uint8_t>(std::lround(light * reflects));
    }
  }
  FitReport report;
  const auto fitted = fit_digit(photo, 28, 28, "lit.png", &report);
  CHECK(report.inverted);
  check_photo_box(report);
  for (std::size_t i = 0; i < fitted.pixels.size(); ++i) {
    CHECK(std::abs(fitted.pixels[i] - zero.pixels[i]) <= 3);
  }
}

TEST_CASE("fit_digit refuses an image with no digit") {
  GrayImage blank{40, 30, std::vector<std::uint8_t>(1200, 200)};
  blank.pixels[615] = 180; // a speck, too faint to be ink
  GrayImage dusty{40, 30, std::vector<std::uint8_t>(1200, 200)};
  dusty.pixels[615] = 0; // black, but a speck
  CHECK_THROWS_WITH_AS(fit_digit(dusty, 28, 28, "dusty.png"),
                       "dusty.png: no digit found: only specks stand out of the background",
                       mlctl::Error);
  CHECK_THROWS_WITH_AS(fit_digit(blank, 28, 28, "blank.png"),
                       "blank.png: no digit found: the image is nearly uniform (background 200, "
                       "the ink differs by at most 26 of 255)", // 20 of the paper's 200
                       mlctl::Error);
}

TEST_CASE("image_dims reads one image's rows and columns from a model input") {
  using Dims = std::pair<std::size_t, std::size_t>;
  const auto dims = [](std::vector<std::int64_t> item) { return image_dims(item); };
  CHECK(dims({784}) == Dims{28, 28});
  CHECK(dims({28, 28}) == Dims{28, 28});
  CHECK(dims({1, 28, 28}) == Dims{28, 28});
  CHECK(dims({3, 32, 24}) == Dims{32, 24});
  CHECK(dims({10}) == Dims{1, 10});
}

// libFuzzer target: `model::decode_picture` (PNG with libpng, both backdrops; JPEG with
// libjpeg) on arbitrary bytes, then `model::fit_digit` (predict --fit) on every picture that
// decodes, into 28×28 and into a size taken from the input. Only `mlctl::Error` may escape; a
// decoded picture must have rows × cols pixels and a fitted one the size asked for. Seeds:
// corpus/picture/.

#include "model/fit.hpp"
#include "model/picture.hpp"
#include "util/error.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace {

// Larger pictures (pixels) are refused, and larger than the second limit not fitted, to keep
// iterations fast (a header may claim 2^26 pixels; fitting reads each pixel a few times).
constexpr std::size_t k_max_pixels = 1 << 16;
constexpr std::size_t k_max_fit_pixels = 1 << 12;

void fit(const mlctl::model::GrayImage& image, std::size_t rows, std::size_t cols) {
  try {
    const auto fitted = mlctl::model::fit_digit(image, rows, cols, "fuzz.png");
    if (fitted.rows != rows || fitted.cols != cols || fitted.pixels.size() != rows * cols) {
      __builtin_trap();
    }
  } catch (const mlctl::Error&) {
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace m = mlctl::model;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  for (const auto backdrop : {m::Backdrop::black, m::Backdrop::contrast}) {
    try {
      const auto image = m::decode_picture(bytes, "fuzz.png", backdrop, k_max_pixels);
      if (image.pixels.size() != image.rows * image.cols) {
        __builtin_trap();
      }
      if (image.pixels.size() <= k_max_fit_pixels) {
        fit(image, 28, 28);
        fit(image, 1 + size % 7, 1 + size % 41);
      }
    } catch (const mlctl::Error&) {
    }
  }
  return 0;
}

#pragma once
// Pictures as input: a PNG or a JPEG read as 8-bit grayscale.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

namespace mlctl::model {

struct GrayImage {
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::vector<std::uint8_t> pixels; // rows*cols, C order
};

// What shows through transparent pixels: black (as MNIST's background), or the contrast of what
// is drawn (white under dark ink, black under light: a drawing on a transparent sheet).
enum class Backdrop { black, contrast };

// Reads a PNG or a JPEG as 8-bit grayscale. PNG through libpng's simplified API: colour is
// converted to gray, 16-bit reduced to 8, alpha composited onto `backdrop`. JPEG through
// libjpeg (its luminance), turned upright as its EXIF orientation says (a phone's photo).
// Throws `Error{not_found}`/`Error{io}` from reading and `Error{invalid_input}` "<file>: not a
// PNG or JPEG image ..." (naming a GIF, WebP, TIFF or BMP), "<file>: not a JPEG image (<libjpeg's
// message>)", "<file>: the image is W×H, too large" (over `max_pixels`: a header may claim any
// size).
inline constexpr std::uint64_t k_max_picture_pixels = std::uint64_t{1} << 26;
GrayImage read_picture(const std::filesystem::path& path, Backdrop backdrop = Backdrop::black);
// The same for the bytes of a file in memory; `name` starts every message.
GrayImage decode_picture(std::string_view bytes, std::string_view name,
                         Backdrop backdrop = Backdrop::black,
                         std::uint64_t max_pixels = k_max_picture_pixels);

} // namespace mlctl::model

#pragma once
// Pictures as input: a PNG read as 8-bit grayscale (libpng's simplified API).

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

// Reads a PNG as 8-bit grayscale (libpng's simplified API: colour is converted to gray,
// 16-bit reduced to 8, alpha composited onto `backdrop`). Throws `Error{not_found}`/`Error{io}`
// from reading and `Error{invalid_input}` "<file>: not a PNG image (...)" for anything libpng
// refuses (naming a JPEG, GIF, WebP, TIFF or BMP).
GrayImage read_png_gray(const std::filesystem::path& path, Backdrop backdrop = Backdrop::black);
// The same for PNG bytes in memory; `name` starts every message.
GrayImage decode_png_gray(std::string_view bytes, std::string_view name,
                          Backdrop backdrop = Backdrop::black);

} // namespace mlctl::model

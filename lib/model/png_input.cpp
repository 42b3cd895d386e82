#include "model/png_input.hpp"

#include "util/error.hpp"
#include "util/fs.hpp"

#include <cstring>
#include <png.h>
#include <string>

namespace mlctl::model {

namespace {

// Largest PNG accepted (pixels): a header may claim any size.
constexpr std::uint64_t k_max_png_pixels = std::uint64_t{1} << 26;

// libpng's simplified API (png_image) keeps its setjmp/longjmp inside libpng; this owner frees
// whatever it allocated on every path.
class PngReader {
public:
  PngReader() { m_image.version = PNG_IMAGE_VERSION; }
  ~PngReader() { png_image_free(&m_image); }
  PngReader(const PngReader&) = delete;
  PngReader& operator=(const PngReader&) = delete;
  png_image& image() { return m_image; }

private:
  png_image m_image{};
};

// The format of an image file that is not a PNG, by its first bytes ("" when unknown).
std::string_view other_format(std::string_view bytes) {
  if (bytes.starts_with("\xff\xd8\xff")) {
    return "JPEG";
  }
  if (bytes.starts_with("GIF87a") || bytes.starts_with("GIF89a")) {
    return "GIF";
  }
  if (bytes.starts_with("RIFF") && bytes.size() >= 12 && bytes.substr(8, 4) == "WEBP") {
    return "WebP";
  }
  if (bytes.starts_with(std::string_view("II*\0", 4)) ||
      bytes.starts_with(std::string_view("MM\0*", 4))) {
    return "TIFF";
  }
  if (bytes.starts_with("BM")) {
    return "BMP";
  }
  return "";
}

[[noreturn]] void refuse(const std::string& name, const std::string& what) {
  throw Error(ErrorKind::invalid_input, name + ": " + what);
}

} // namespace

GrayImage decode_png_gray(std::string_view bytes, std::string_view name, Backdrop backdrop) {
  const std::string file(name);
  static constexpr unsigned char k_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() < 8 || std::memcmp(bytes.data(), k_signature, 8) != 0) {
    const auto format = other_format(bytes);
    refuse(file, format.empty() ? std::string("not a PNG image (no PNG signature)")
                                : "not a PNG image: a " + std::string(format) +
                                      " (convert it first, e.g. convert photo.jpg photo.png)");
  }
  PngReader reader;
  png_image& image = reader.image();
  if (png_image_begin_read_from_memory(&image, bytes.data(), bytes.size()) == 0) {
    refuse(file, std::string("not a PNG image (") + image.message + ")");
  }
  if (static_cast<std::uint64_t>(image.width) * image.height > k_max_png_pixels) {
    refuse(file, "the image is " + std::to_string(image.width) + "×" +
                     std::to_string(image.height) + ", too large");
  }
  GrayImage out;
  out.rows = image.height;
  out.cols = image.width;
  if ((image.format & PNG_FORMAT_FLAG_ALPHA) != 0 && backdrop == Backdrop::contrast) {
    // Gray and alpha (8-bit: not premultiplied), composited here onto the backdrop that
    // contrasts with what is drawn: white under dark ink.
    image.format = PNG_FORMAT_GA;
    std::vector<std::uint8_t> ga(PNG_IMAGE_SIZE(image));
    if (png_image_finish_read(&image, nullptr, ga.data(), 0, nullptr) == 0) {
      refuse(file, std::string("not a PNG image (") + image.message + ")");
    }
    std::uint64_t ink = 0;
    std::uint64_t cover = 0;
    for (std::size_t i = 0; i + 1 < ga.size(); i += 2) {
      ink += std::uint64_t{ga[i]} * ga[i + 1];
      cover += ga[i + 1];
    }
    const unsigned back = cover > 0 && ink < 128 * cover ? 255 : 0;
    out.pixels.resize(out.rows * out.cols);
    for (std::size_t i = 0; i < out.pixels.size(); ++i) {
      const unsigned g = ga[2 * i];
      const unsigned a = ga[2 * i + 1];
      out.pixels[i] = static_cast<std::uint8_t>((g * a + back * (255 - a) + 127) / 255);
    }
    return out;
  }
  image.format = PNG_FORMAT_GRAY;
  out.pixels.resize(PNG_IMAGE_SIZE(image));
  png_color black{0, 0, 0};
  if (png_image_finish_read(&image, &black, out.pixels.data(), 0, nullptr) == 0) {
    refuse(file, std::string("not a PNG image (") + image.message + ")");
  }
  out.pixels.resize(out.rows * out.cols);
  return out;
}

GrayImage read_png_gray(const std::filesystem::path& path, Backdrop backdrop) {
  return decode_png_gray(util::read_file(path), path.string(), backdrop);
}

} // namespace mlctl::model

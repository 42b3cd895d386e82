#include "model/picture.hpp"

#include "util/error.hpp"
#include "util/fs.hpp"

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <jpeglib.h>
#include <png.h>
#include <string>

namespace mlctl::model {

namespace {

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

// The format of an image file that is neither PNG nor JPEG, by its first bytes ("" when
// unknown).
std::string_view other_format(std::string_view bytes) {
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

void refuse_size(const std::string& file, std::uint64_t width, std::uint64_t height,
                 std::uint64_t max_pixels) {
  if (width * height > max_pixels) {
    refuse(file,
           "the image is " + std::to_string(width) + "×" + std::to_string(height) + ", too large");
  }
}

GrayImage decode_png(std::string_view bytes, const std::string& file, Backdrop backdrop,
                     std::uint64_t max_pixels) {
  PngReader reader;
  png_image& image = reader.image();
  if (png_image_begin_read_from_memory(&image, bytes.data(), bytes.size()) == 0) {
    refuse(file, std::string("not a PNG image (") + image.message + ")");
  }
  refuse_size(file, image.width, image.height, max_pixels);
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

// ---- JPEG (libjpeg-turbo) ---------------------------------------------------------------

// The start of the APP1 marker that holds EXIF data.
constexpr std::string_view k_exif("Exif\0\0", 6);

// libjpeg reports errors through a callback that must not return: it longjmps back to
// `decode_jpeg_into`, which frees the decompressor. Nothing with a destructor lives in the
// frames it jumps over (libjpeg's own).
struct JpegError {
  jpeg_error_mgr manager{};
  std::jmp_buf jump{};
  char message[JMSG_LENGTH_MAX] = {};
};

void jpeg_fail(j_common_ptr info) {
  auto* error = reinterpret_cast<JpegError*>(info->err);
  (*info->err->format_message)(info, error->message);
  std::longjmp(error->jump, 1);
}

void jpeg_warn(j_common_ptr, int) {} // corrupt data libjpeg can read past: what it reads counts

// Decodes into `out` (rows, cols, pixels) as 8-bit gray and `exif` (the EXIF APP1 marker, if
// any); returns false with `error.message` set when libjpeg refuses. `out` is sized before it
// is written, so a jump leaves it in a valid state.
bool decode_jpeg_into(std::string_view bytes, const std::string& file, std::uint64_t max_pixels,
                      GrayImage& out, std::string& exif, JpegError& error) {
  jpeg_decompress_struct info{};
  info.err = jpeg_std_error(&error.manager);
  error.manager.error_exit = jpeg_fail;
  error.manager.emit_message = jpeg_warn;
  if (setjmp(error.jump) != 0) {
    jpeg_destroy_decompress(&info);
    return false;
  }
  jpeg_create_decompress(&info);
  jpeg_mem_src(&info, reinterpret_cast<const unsigned char*>(bytes.data()),
               static_cast<unsigned long>(bytes.size()));
  jpeg_save_markers(&info, JPEG_APP0 + 1, 0xffff);
  jpeg_read_header(&info, TRUE);
  for (auto* marker = info.marker_list; marker != nullptr; marker = marker->next) {
    const std::string_view data(reinterpret_cast<const char*>(marker->data), marker->data_length);
    if (marker->marker == JPEG_APP0 + 1 && exif.empty() && data.starts_with(k_exif)) {
      exif = data; // not XMP, which is APP1 too
    }
  }
  if (static_cast<std::uint64_t>(info.image_width) * info.image_height > max_pixels) {
    jpeg_destroy_decompress(&info);
    refuse_size(file, info.image_width, info.image_height, max_pixels);
  }
  info.out_color_space = JCS_GRAYSCALE;
  jpeg_start_decompress(&info);
  out.rows = info.output_height;
  out.cols = info.output_width;
  out.pixels.assign(out.rows * out.cols, 0);
  while (info.output_scanline < info.output_height) {
    JSAMPROW row = out.pixels.data() + std::size_t{info.output_scanline} * out.cols;
    jpeg_read_scanlines(&info, &row, 1);
  }
  jpeg_finish_decompress(&info);
  jpeg_destroy_decompress(&info);
  return true;
}

// The EXIF orientation (1-8) of an APP1 marker's content, 1 when there is none: TIFF header
// "II" or "MM", IFD0's entry 0x0112.
int exif_orientation(std::string_view app1) {
  if (!app1.starts_with(k_exif)) {
    return 1;
  }
  const std::string_view tiff = app1.substr(6);
  if (tiff.size() < 8 || (!tiff.starts_with("II") && !tiff.starts_with("MM"))) {
    return 1;
  }
  const bool little = tiff[0] == 'I';
  const auto u16 = [&](std::size_t at) -> std::uint32_t {
    const auto a = static_cast<unsigned char>(tiff[at]);
    const auto b = static_cast<unsigned char>(tiff[at + 1]);
    return little ? a | (b << 8) : (a << 8) | b;
  };
  const auto u32 = [&](std::size_t at) -> std::uint32_t {
    return little ? u16(at) | (u16(at + 2) << 16) : (u16(at) << 16) | u16(at + 2);
  };
  const std::size_t ifd = u32(4);
  if (ifd > tiff.size() || tiff.size() - ifd < 2) {
    return 1;
  }
  const std::size_t entries = u16(ifd);
  for (std::size_t i = 0; i < entries; ++i) {
    const std::size_t at = ifd + 2 + 12 * i;
    if (at + 12 > tiff.size()) {
      break;
    }
    if (u16(at) == 0x0112 && u16(at + 2) == 3) { // Orientation, SHORT: the value is inline
      const auto value = static_cast<int>(u16(at + 8));
      return value >= 1 && value <= 8 ? value : 1;
    }
  }
  return 1;
}

// `image` turned as EXIF `orientation` says the camera held it (2-8; 1 is upright).
GrayImage orient(const GrayImage& image, int orientation) {
  const std::size_t h = image.rows;
  const std::size_t w = image.cols;
  const bool turned = orientation >= 5;
  GrayImage out{turned ? w : h, turned ? h : w, std::vector<std::uint8_t>(w * h)};
  for (std::size_t r = 0; r < out.rows; ++r) {
    for (std::size_t c = 0; c < out.cols; ++c) {
      std::size_t y = r;
      std::size_t x = c;
      switch (orientation) {
      case 2:
        x = w - 1 - c;
        break; // mirrored
      case 3:
        y = h - 1 - r;
        x = w - 1 - c;
        break; // upside down
      case 4:
        y = h - 1 - r;
        break; // mirrored upside down
      case 5:
        y = c;
        x = r;
        break; // mirrored, turned
      case 6:
        y = h - 1 - c;
        x = r;
        break; // turned a quarter clockwise to view
      case 7:
        y = h - 1 - c;
        x = w - 1 - r;
        break; // mirrored, turned the other way
      case 8:
        y = c;
        x = w - 1 - r;
        break; // turned a quarter counter-clockwise
      default:
        break;
      }
      out.pixels[r * out.cols + c] = image.pixels[y * w + x];
    }
  }
  return out;
}

GrayImage decode_jpeg(std::string_view bytes, const std::string& file, std::uint64_t max_pixels) {
  GrayImage out;
  std::string exif;
  JpegError error;
  if (!decode_jpeg_into(bytes, file, max_pixels, out, exif, error)) {
    refuse(file, std::string("not a JPEG image (") + error.message + ")");
  }
  const int orientation = exif_orientation(exif);
  return orientation == 1 ? out : orient(out, orientation);
}

} // namespace

GrayImage decode_picture(std::string_view bytes, std::string_view name, Backdrop backdrop,
                         std::uint64_t max_pixels) {
  const std::string file(name);
  static constexpr unsigned char k_png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), k_png, 8) == 0) {
    return decode_png(bytes, file, backdrop, max_pixels);
  }
  if (bytes.starts_with("\xff\xd8\xff")) {
    return decode_jpeg(bytes, file, max_pixels);
  }
  const auto format = other_format(bytes);
  refuse(file, format.empty() ? std::string("not a PNG or JPEG image (neither signature)")
                              : "not a PNG or JPEG image: a " + std::string(format) +
                                    " (convert it first, e.g. convert picture.gif picture.png)");
}

GrayImage read_picture(const std::filesystem::path& path, Backdrop backdrop) {
  return decode_picture(util::read_file(path), path.string(), backdrop);
}

} // namespace mlctl::model

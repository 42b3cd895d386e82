// JPEG input (model/picture.hpp): decoded to gray and turned upright by its EXIF orientation.
// The PNG cases are in tests/unit/onnx/test_predict.cpp.
#include "model/picture.hpp"
#include "util/error.hpp"

#include <cstdio>
#include <cstdlib>
#include <doctest/doctest.h>
#include <jpeglib.h>
#include <string>
#include <vector>

using namespace mlctl::model;

namespace {

// A JPEG (quality 100) of `pixels`, gray (components 1) or RGB (3), with an EXIF APP1 marker
// giving `orientation` when it is not 0 (after an XMP APP1 marker when `xmp_first`).
std::string make_jpeg(int width, int height, int components,
                      const std::vector<unsigned char>& pixels, int orientation = 0,
                      bool xmp_first = false) {
  jpeg_compress_struct info{};
  jpeg_error_mgr error{};
  info.err = jpeg_std_error(&error);
  jpeg_create_compress(&info);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&info, &buffer, &size);
  info.image_width = static_cast<JDIMENSION>(width);
  info.image_height = static_cast<JDIMENSION>(height);
  info.input_components = components;
  info.in_color_space = components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&info);
  jpeg_set_quality(&info, 100, TRUE);
  jpeg_start_compress(&info, TRUE);
  if (xmp_first) {
    const std::string xmp = std::string("http://ns.adobe.com/xap/1.0/") + '\0' + "<x:xmpmeta/>";
    jpeg_write_marker(&info, JPEG_APP0 + 1, reinterpret_cast<const JOCTET*>(xmp.data()),
                      static_cast<unsigned>(xmp.size()));
  }
  if (orientation != 0) {
    // "Exif\0\0", a big-endian TIFF header, IFD0 at 8 with one entry: 0x0112 SHORT 1 <value>.
    const unsigned char app1[] = {'E',  'x',
                                  'i',  'f',
                                  0,    0,
                                  'M',  'M',
                                  0,    42,
                                  0,    0,
                                  0,    8,
                                  0,    1,
                                  0x01, 0x12,
                                  0,    3,
                                  0,    0,
                                  0,    1,
                                  0,    static_cast<unsigned char>(orientation),
                                  0,    0,
                                  0,    0,
                                  0,    0};
    jpeg_write_marker(&info, JPEG_APP0 + 1, app1, sizeof app1);
  }
  for (int y = 0; y < height; ++y) {
    auto* row = const_cast<unsigned char*>(pixels.data()) +
                static_cast<std::size_t>(y * width * components);
    jpeg_write_scanlines(&info, &row, 1);
  }
  jpeg_finish_compress(&info);
  jpeg_destroy_compress(&info);
  std::string out(reinterpret_cast<const char*>(buffer), size);
  std::free(buffer);
  return out;
}

// 16×8: the left half white, the right half black.
std::vector<unsigned char> half_white() {
  std::vector<unsigned char> pixels(16 * 8);
  for (int y = 0; y < 8; ++y) {
    for (int x = 0; x < 16; ++x) {
      pixels[static_cast<std::size_t>(y * 16 + x)] = x < 8 ? 255 : 0;
    }
  }
  return pixels;
}

int at(const GrayImage& image, std::size_t row, std::size_t col) {
  return image.pixels[row * image.cols + col];
}

} // namespace

TEST_CASE("JPEG input: gray and colour decode to gray") {
  std::vector<unsigned char> gray(24 * 16);
  for (std::size_t i = 0; i < gray.size(); ++i) {
    gray[i] = static_cast<unsigned char>((i * 7) % 256 / 32 * 32); // flat steps JPEG keeps well
  }
  const auto g = decode_picture(make_jpeg(24, 16, 1, gray), "gray.jpg");
  CHECK(g.rows == 16);
  CHECK(g.cols == 24);
  int worst = 0;
  for (std::size_t i = 0; i < gray.size(); ++i) {
    worst = std::max(worst, std::abs(static_cast<int>(g.pixels[i]) - gray[i]));
  }
  CHECK(worst <= 40); // quality 100 still rounds sharp edges

  std::vector<unsigned char> rgb(8 * 8 * 3);
  for (std::size_t i = 0; i < 64; ++i) {
    rgb[3 * i] = 200; // the luminance of (200, 100, 50): 0.299·200 + 0.587·100 + 0.114·50 = 124
    rgb[3 * i + 1] = 100;
    rgb[3 * i + 2] = 50;
  }
  const auto c = decode_picture(make_jpeg(8, 8, 3, rgb), "colour.jpg");
  CHECK(std::abs(at(c, 4, 4) - 124) <= 2);
}

TEST_CASE("JPEG input: turned upright as the EXIF orientation says") {
  const auto pixels = half_white();
  // 1: as stored; 6: the camera was turned, the picture is turned a quarter clockwise to view
  // (the stored left half comes on top); 8: a quarter counter-clockwise (the left half at the
  // bottom); 3: upside down (the left half on the right).
  const auto upright = decode_picture(make_jpeg(16, 8, 1, pixels, 1), "1.jpg");
  CHECK((upright.rows == 8 && upright.cols == 16));
  CHECK(at(upright, 4, 2) > 200);
  CHECK(at(upright, 4, 13) < 50);
  const auto six = decode_picture(make_jpeg(16, 8, 1, pixels, 6), "6.jpg");
  CHECK((six.rows == 16 && six.cols == 8));
  CHECK(at(six, 2, 4) > 200);
  CHECK(at(six, 13, 4) < 50);
  const auto eight = decode_picture(make_jpeg(16, 8, 1, pixels, 8), "8.jpg");
  CHECK((eight.rows == 16 && eight.cols == 8));
  CHECK(at(eight, 2, 4) < 50);
  CHECK(at(eight, 13, 4) > 200);
  const auto after_xmp = decode_picture(make_jpeg(16, 8, 1, pixels, 6, true), "xmp.jpg");
  CHECK((after_xmp.rows == 16 && after_xmp.cols == 8));
  CHECK(at(after_xmp, 2, 4) > 200);
  const auto three = decode_picture(make_jpeg(16, 8, 1, pixels, 3), "3.jpg");
  CHECK((three.rows == 8 && three.cols == 16));
  CHECK(at(three, 4, 2) < 50);
  CHECK(at(three, 4, 13) > 200);
}

TEST_CASE("JPEG input: what libjpeg refuses is named") {
  CHECK_THROWS_WITH_AS(decode_picture("\xff\xd8\xff\xe0 not a JPEG at all", "bad.jpg"),
                       doctest::Contains("bad.jpg: not a JPEG image ("), mlctl::Error);
  auto cut = make_jpeg(16, 8, 1, half_white());
  cut.resize(4);
  CHECK_THROWS_AS(decode_picture(cut, "cut.jpg"), mlctl::Error);
}

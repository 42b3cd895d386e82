#pragma once
// Pictures without a plotting stack: an RGB canvas with a built-in 5×7 bitmap font, PNG
// encoding through libpng, the line charts of `mlctl monitor --plot` and the RISE grid figure
// of `mlctl explain`.

#include "explain/rise.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mlctl::explain {

struct Rgb {
  std::uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb&) const = default;
};

inline constexpr Rgb k_white{255, 255, 255};
inline constexpr Rgb k_black{0, 0, 0};

// An RGB image, row-major, 8 bits per channel. Drawing outside the canvas is clipped.
class Canvas {
public:
  // Throws `Error{invalid_input}` for a size outside 1..16384.
  Canvas(int width, int height, Rgb background = k_white);

  int width() const noexcept { return m_width; }
  int height() const noexcept { return m_height; }
  const std::vector<std::uint8_t>& pixels() const noexcept { return m_pixels; } // r,g,b,r,...
  Rgb at(int x, int y) const;

  void set(int x, int y, Rgb c);
  void fill_rect(int x, int y, int w, int h, Rgb c);
  // Draws the outline of a rectangle `thickness` pixels wide, inside (x, y, w, h).
  void rect(int x, int y, int w, int h, Rgb c, int thickness = 1);
  // Draws a line `thickness` pixels wide; `dash` > 0 draws dashes of that many pixels.
  void line(double x0, double y0, double x1, double y1, Rgb c, int thickness = 1, int dash = 0);
  // Draws `text` (printable ASCII; others show as '?') with its top-left corner at (x, y),
  // each font pixel `scale` × `scale`; `vertical` turns it 90° counter-clockwise (reading
  // bottom-up, (x, y) is then its bottom-left corner).
  void text(int x, int y, std::string_view text, Rgb c, int scale = 1, bool vertical = false);
  // Copies `other` with its top-left corner at (x, y).
  void blit(const Canvas& other, int x, int y);

  // The size of `text` drawn at `scale` (one line).
  static int text_width(std::string_view text, int scale = 1);
  static int text_height(int scale = 1);

private:
  int m_width;
  int m_height;
  std::vector<std::uint8_t> m_pixels;
};

// Returns the PNG file bytes of `canvas` (8-bit RGB, no interlace). Throws `Error{internal}`
// when libpng fails.
std::string encode_png(const Canvas& canvas);
// Writes `canvas` as a PNG file, atomically. Throws `Error{io}` naming `path`.
void write_png(const std::filesystem::path& path, const Canvas& canvas);

// Returns the colour of `t` in [0, 1] (clamped) on a perceptual blue-to-yellow map (viridis-like).
Rgb colormap(double t);

struct Series {
  std::string label;
  std::vector<double> x; // for time charts: seconds since the epoch
  std::vector<double> y; // NaN leaves a gap
  Rgb colour{31, 119, 180};
};

struct Chart {
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<Series> series;
  bool x_is_time = false;             // tick labels as UTC HH:MM[:SS]
  std::optional<double> threshold;    // a dashed red horizontal line
  std::string threshold_label;        // e.g. "threshold 0.031"
  std::optional<double> y_min, y_max; // fixed range (default: from the data, 0 included)
  std::optional<double> x_min, x_max; // fixed range (default: from the data)
};

// Draws `chart` on a canvas of `width` × `height` (at least 200 × 150): title, axes with
// "nice" ticks and their labels, axis labels, the series as lines (a legend when there is
// more than one), the threshold line. An empty chart says "no data".
Canvas draw_chart(const Chart& chart, int width = 640, int height = 360);

// Lays canvases out in a grid of `columns`, in order, on white with `gap` pixels between.
Canvas compose(const std::vector<Canvas>& parts, int columns, int gap = 8);

struct ExplainedImage {
  std::vector<float> image; // rows*cols floats in [0, 1]
  Saliency saliency;
  std::int64_t true_class = -1; // -1: unknown
  std::string caption;          // e.g. "#17"
};

// Draws the RISE figure: one row per image, first column the image, then one column per
// class with its saliency map over the image (colour map, one scale per row); the true class
// framed in green, the predicted class in red when it is wrong (the row marked "wrong"), each
// cell captioned with the class probability. `labels` name the classes (default 0..C-1).
Canvas draw_rise_grid(const std::vector<ExplainedImage>& rows,
                      const std::vector<std::string>& labels = {});

} // namespace mlctl::explain

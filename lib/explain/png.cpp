#include "explain/png.hpp"

#include "util/error.hpp"
#include "util/fs.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <ctime>
#include <limits>
#include <png.h>

namespace mlctl::explain {

namespace {

#include "explain/font5x7.inc"

constexpr int k_glyph_w = 5;
constexpr int k_glyph_h = 7;
constexpr int k_advance = 6; // glyph plus one column of space
constexpr int k_line = 9;    // glyph plus two rows of space

const char* glyph(char ch) {
  const auto c = static_cast<unsigned char>(ch);
  return (c >= 32 && c <= 126) ? k_font5x7[c - 32] : k_font5x7['?' - 32];
}

} // namespace

Canvas::Canvas(int width, int height, Rgb background) : m_width(width), m_height(height) {
  if (width < 1 || height < 1 || width > 16384 || height > 16384) {
    throw Error(ErrorKind::invalid_input, "canvas: size must be 1..16384, got " +
                                              std::to_string(width) + "x" + std::to_string(height));
  }
  m_pixels.resize(static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3);
  for (std::size_t i = 0; i < m_pixels.size(); i += 3) {
    m_pixels[i] = background.r;
    m_pixels[i + 1] = background.g;
    m_pixels[i + 2] = background.b;
  }
}

Rgb Canvas::at(int x, int y) const {
  if (x < 0 || y < 0 || x >= m_width || y >= m_height) {
    return {};
  }
  const auto i = (static_cast<std::size_t>(y) * static_cast<std::size_t>(m_width) +
                  static_cast<std::size_t>(x)) *
                 3;
  return {m_pixels[i], m_pixels[i + 1], m_pixels[i + 2]};
}

void Canvas::set(int x, int y, Rgb c) {
  if (x < 0 || y < 0 || x >= m_width || y >= m_height) {
    return;
  }
  const auto i = (static_cast<std::size_t>(y) * static_cast<std::size_t>(m_width) +
                  static_cast<std::size_t>(x)) *
                 3;
  m_pixels[i] = c.r;
  m_pixels[i + 1] = c.g;
  m_pixels[i + 2] = c.b;
}

void Canvas::fill_rect(int x, int y, int w, int h, Rgb c) {
  for (int yy = std::max(0, y); yy < std::min(m_height, y + h); ++yy) {
    for (int xx = std::max(0, x); xx < std::min(m_width, x + w); ++xx) {
      set(xx, yy, c);
    }
  }
}

void Canvas::rect(int x, int y, int w, int h, Rgb c, int thickness) {
  fill_rect(x, y, w, thickness, c);
  fill_rect(x, y + h - thickness, w, thickness, c);
  fill_rect(x, y, thickness, h, c);
  fill_rect(x + w - thickness, y, thickness, h, c);
}

void Canvas::line(double x0, double y0, double x1, double y1, Rgb c, int thickness, int dash) {
  const double dx = x1 - x0;
  const double dy = y1 - y0;
  const double length = std::hypot(dx, dy);
  const int steps = std::max(1, static_cast<int>(std::ceil(length * 2)));
  const int lo = -(thickness - 1) / 2;
  const int hi = thickness / 2;
  for (int i = 0; i <= steps; ++i) {
    const double t = static_cast<double>(i) / steps;
    if (dash > 0 && static_cast<int>(t * length / dash) % 2 == 1) {
      continue;
    }
    const int px = static_cast<int>(std::lround(x0 + t * dx));
    const int py = static_cast<int>(std::lround(y0 + t * dy));
    for (int oy = lo; oy <= hi; ++oy) {
      for (int ox = lo; ox <= hi; ++ox) {
        set(px + ox, py + oy, c);
      }
    }
  }
}

void Canvas::text(int x, int y, std::string_view s, Rgb c, int scale, bool vertical) {
  for (std::size_t k = 0; k < s.size(); ++k) {
    const char* g = glyph(s[k]);
    const int origin = static_cast<int>(k) * k_advance * scale;
    for (int row = 0; row < k_glyph_h; ++row) {
      for (int col = 0; col < k_glyph_w; ++col) {
        if (g[row * k_glyph_w + col] != '#') {
          continue;
        }
        // Vertical text reads bottom-up: the glyph's columns go up, its rows go right.
        const int gx = vertical ? x + row * scale : x + origin + col * scale;
        const int gy = vertical ? y - origin - (col + 1) * scale : y + row * scale;
        fill_rect(gx, gy, scale, scale, c);
      }
    }
  }
}

void Canvas::blit(const Canvas& other, int x, int y) {
  for (int yy = 0; yy < other.height(); ++yy) {
    for (int xx = 0; xx < other.width(); ++xx) {
      set(x + xx, y + yy, other.at(xx, yy));
    }
  }
}

int Canvas::text_width(std::string_view s, int scale) {
  return s.empty() ? 0 : (static_cast<int>(s.size()) * k_advance - 1) * scale;
}

int Canvas::text_height(int scale) {
  return k_glyph_h * scale;
}

namespace {

struct PngWriteState {
  std::string out;
};

void png_append(png_structp png, png_bytep data, png_size_t length) {
  auto* state = static_cast<PngWriteState*>(png_get_io_ptr(png));
  state->out.append(reinterpret_cast<const char*>(data), length);
}

void png_flush(png_structp) {}

} // namespace

std::string encode_png(const Canvas& canvas) {
  PngWriteState state;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  if (png == nullptr) {
    throw Error(ErrorKind::internal, "png: cannot create the libpng writer");
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    throw Error(ErrorKind::internal, "png: cannot create the libpng info");
  }
  std::vector<png_bytep> rows(static_cast<std::size_t>(canvas.height()));
  // libpng reports errors by longjmp: nothing with a destructor may be created below.
  if (setjmp(png_jmpbuf(png))) { // NOLINT(cert-err52-cpp): libpng's error protocol
    png_destroy_write_struct(&png, &info);
    throw Error(ErrorKind::internal, "png: libpng failed to encode the image");
  }
  png_set_write_fn(png, &state, png_append, png_flush);
  png_set_IHDR(png, info, static_cast<png_uint_32>(canvas.width()),
               static_cast<png_uint_32>(canvas.height()), 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_set_compression_level(png, 6);
  png_write_info(png, info);
  for (int y = 0; y < canvas.height(); ++y) {
    rows[static_cast<std::size_t>(y)] =
        const_cast<png_bytep>(canvas.pixels().data()) +
        static_cast<std::size_t>(y) * static_cast<std::size_t>(canvas.width()) * 3;
  }
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return std::move(state.out);
}

void write_png(const std::filesystem::path& path, const Canvas& canvas) {
  util::write_file_atomic(path, encode_png(canvas));
}

Rgb colormap(double t) {
  // Viridis, sampled at nine points and interpolated linearly.
  static constexpr std::array<std::array<double, 3>, 9> k_stops{{{68, 1, 84},
                                                                 {71, 44, 122},
                                                                 {59, 81, 139},
                                                                 {44, 113, 142},
                                                                 {33, 144, 141},
                                                                 {39, 173, 129},
                                                                 {92, 200, 99},
                                                                 {170, 220, 50},
                                                                 {253, 231, 37}}};
  if (!std::isfinite(t)) {
    t = 0;
  }
  t = std::clamp(t, 0.0, 1.0) * (k_stops.size() - 1);
  const auto i = std::min<std::size_t>(static_cast<std::size_t>(t), k_stops.size() - 2);
  const double f = t - static_cast<double>(i);
  const auto mix = [&](int ch) {
    return static_cast<std::uint8_t>(
        std::lround(k_stops[i][ch] * (1 - f) + k_stops[i + 1][ch] * f));
  };
  return {mix(0), mix(1), mix(2)};
}

namespace {

// A "nice" step (1, 2 or 5 × 10^k) giving about `target` intervals over `span`.
double nice_step(double span, int target) {
  if (!(span > 0)) {
    return 1;
  }
  const double raw = span / target;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / magnitude;
  const double nice = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
  return nice * magnitude;
}

std::string format_tick(double v, double step) {
  if (std::fabs(v) < step * 1e-6) {
    v = 0;
  }
  const double a = std::fabs(v);
  char buf[32];
  if (a != 0 && (a >= 1e6 || a < 1e-3)) {
    std::snprintf(buf, sizeof buf, "%.2g", v);
  } else {
    const int decimals = std::clamp(static_cast<int>(std::ceil(-std::log10(step) - 1e-9)), 0, 6);
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  }
  return buf;
}

std::string format_time_tick(double epoch_seconds, double step) {
  const auto t = static_cast<std::time_t>(std::llround(epoch_seconds));
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, step < 60 ? "%H:%M:%S" : "%H:%M", &tm);
  return buf;
}

// A time step among 1, 2, 5, 10, 15, 30 s, 1, 2, 5, 10, 15, 30 min, 1, 2, 6, 12 h, 1 day.
double nice_time_step(double span, int target) {
  static constexpr std::array<double, 17> k_steps{
      1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400};
  const double raw = span / target;
  for (const double s : k_steps) {
    if (s >= raw) {
      return s;
    }
  }
  return nice_step(span, target);
}

constexpr Rgb k_axis{40, 40, 40};
constexpr Rgb k_grid{225, 225, 225};
constexpr Rgb k_threshold{214, 39, 40};
constexpr Rgb k_muted{110, 110, 110};

} // namespace

Canvas draw_chart(const Chart& chart, int width, int height) {
  width = std::max(width, 200);
  height = std::max(height, 150);
  Canvas c(width, height);
  constexpr int s = 2; // font scale of titles and labels
  const int title_h = Canvas::text_height(s) + 12;
  const int left = 16 + Canvas::text_height(s) + 8 + Canvas::text_width("-0.0000", s) + 10;
  const int right = 20;
  const int top = title_h + 10;
  const int bottom = 12 + Canvas::text_height(s) + 10 + Canvas::text_height(s) + 10;
  const int pw = width - left - right;
  const int ph = height - top - bottom;

  c.text((width - Canvas::text_width(chart.title, s)) / 2, 8, chart.title, k_black, s);

  double x_lo = std::numeric_limits<double>::infinity();
  double x_hi = -x_lo;
  double y_lo = x_lo;
  double y_hi = -x_lo;
  for (const auto& series : chart.series) {
    for (std::size_t i = 0; i < std::min(series.x.size(), series.y.size()); ++i) {
      if (!std::isfinite(series.x[i]) || !std::isfinite(series.y[i])) {
        continue;
      }
      x_lo = std::min(x_lo, series.x[i]);
      x_hi = std::max(x_hi, series.x[i]);
      y_lo = std::min(y_lo, series.y[i]);
      y_hi = std::max(y_hi, series.y[i]);
    }
  }
  const bool empty = !(x_lo <= x_hi);
  if (empty) {
    x_lo = 0;
    x_hi = 1;
    y_lo = 0;
    y_hi = 1;
  }
  y_lo = std::min(y_lo, 0.0);
  if (chart.threshold) {
    y_hi = std::max(y_hi, *chart.threshold);
  }
  y_hi = y_hi + (y_hi - y_lo) * 0.08;
  if (chart.y_min) {
    y_lo = *chart.y_min;
  }
  if (chart.y_max) {
    y_hi = *chart.y_max;
  }
  if (!(y_hi > y_lo)) {
    y_hi = y_lo + 1;
  }
  if (chart.x_min) {
    x_lo = *chart.x_min;
  }
  if (chart.x_max) {
    x_hi = *chart.x_max;
  }
  if (!(x_hi > x_lo)) {
    x_lo -= chart.x_is_time ? 30 : 0.5;
    x_hi += chart.x_is_time ? 30 : 0.5;
  }
  const auto px = [&](double x) { return left + (x - x_lo) / (x_hi - x_lo) * pw; };
  const auto py = [&](double y) { return top + ph - (y - y_lo) / (y_hi - y_lo) * ph; };

  // Grid lines and ticks.
  const double ystep = nice_step(y_hi - y_lo, 5);
  for (double v = std::ceil(y_lo / ystep) * ystep; v <= y_hi + ystep * 1e-9; v += ystep) {
    const int y = static_cast<int>(std::lround(py(v)));
    c.line(left, y, left + pw, y, k_grid);
    c.line(left - 5, y, left, y, k_axis);
    const auto label = format_tick(v, ystep);
    c.text(left - 8 - Canvas::text_width(label, s), y - Canvas::text_height(s) / 2, label, k_axis,
           s);
  }
  const int x_ticks = std::max(2, pw / 140);
  const double xstep =
      chart.x_is_time ? nice_time_step(x_hi - x_lo, x_ticks) : nice_step(x_hi - x_lo, x_ticks);
  for (double v = std::ceil(x_lo / xstep) * xstep; v <= x_hi + xstep * 1e-9; v += xstep) {
    const int x = static_cast<int>(std::lround(px(v)));
    c.line(x, top, x, top + ph, k_grid);
    c.line(x, top + ph, x, top + ph + 5, k_axis);
    const auto label = chart.x_is_time ? format_time_tick(v, xstep) : format_tick(v, xstep);
    // Keep the label on the canvas (the last tick may sit at the right edge).
    const int lx =
        std::min(x - Canvas::text_width(label, s) / 2, width - 4 - Canvas::text_width(label, s));
    c.text(lx, top + ph + 10, label, k_axis, s);
  }
  // Axes.
  c.line(left, top, left, top + ph, k_axis, 2);
  c.line(left, top + ph, left + pw, top + ph, k_axis, 2);
  // Axis labels.
  c.text(left + (pw - Canvas::text_width(chart.x_label, s)) / 2,
         height - 8 - Canvas::text_height(s), chart.x_label, k_axis, s);
  c.text(12, top + (ph + Canvas::text_width(chart.y_label, s)) / 2, chart.y_label, k_axis, s, true);

  if (empty) {
    const std::string msg = "no data";
    c.text(left + (pw - Canvas::text_width(msg, s)) / 2, top + ph / 2, msg, k_muted, s);
  }
  for (const auto& series : chart.series) {
    bool have = false;
    double lx = 0;
    double ly = 0;
    const std::size_t n = std::min(series.x.size(), series.y.size());
    for (std::size_t i = 0; i < n; ++i) {
      if (!std::isfinite(series.x[i]) || !std::isfinite(series.y[i])) {
        have = false;
        continue;
      }
      if (series.x[i] < x_lo || series.x[i] > x_hi) {
        have = false;
        continue;
      }
      const double x = px(series.x[i]);
      const double y = py(std::clamp(series.y[i], y_lo, y_hi));
      if (have) {
        c.line(lx, ly, x, y, series.colour, 2);
      } else {
        c.fill_rect(static_cast<int>(x) - 3, static_cast<int>(y) - 3, 7, 7, series.colour);
      }
      lx = x;
      ly = y;
      have = true;
    }
  }
  if (chart.threshold) {
    const double y = py(*chart.threshold);
    c.line(left, y, left + pw, y, k_threshold, 2, 8);
    const auto& label = chart.threshold_label;
    c.text(left + pw - Canvas::text_width(label, s) - 4,
           static_cast<int>(y) - Canvas::text_height(s) - 5, label, k_threshold, s);
  }
  if (chart.series.size() > 1) {
    int ly = top + 6;
    for (const auto& series : chart.series) {
      const int lx = left + 10;
      c.fill_rect(lx, ly + Canvas::text_height(s) / 2 - 2, 18, 4, series.colour);
      c.text(lx + 24, ly, series.label, k_axis, s);
      ly += Canvas::text_height(s) + 6;
    }
  }
  return c;
}

Canvas compose(const std::vector<Canvas>& parts, int columns, int gap) {
  if (parts.empty()) {
    return Canvas(1, 1);
  }
  columns = std::max(1, std::min<int>(columns, static_cast<int>(parts.size())));
  const int rows = (static_cast<int>(parts.size()) + columns - 1) / columns;
  std::vector<int> col_w(static_cast<std::size_t>(columns), 0);
  std::vector<int> row_h(static_cast<std::size_t>(rows), 0);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    auto& w = col_w[i % static_cast<std::size_t>(columns)];
    auto& h = row_h[i / static_cast<std::size_t>(columns)];
    w = std::max(w, parts[i].width());
    h = std::max(h, parts[i].height());
  }
  int width = gap;
  for (const int w : col_w) {
    width += w + gap;
  }
  int height = gap;
  for (const int h : row_h) {
    height += h + gap;
  }
  Canvas out(width, height, {240, 240, 240});
  int y = gap;
  for (int r = 0; r < rows; ++r) {
    int x = gap;
    for (int col = 0; col < columns; ++col) {
      const auto i = static_cast<std::size_t>(r * columns + col);
      if (i < parts.size()) {
        out.blit(parts[i], x, y);
      }
      x += col_w[static_cast<std::size_t>(col)] + gap;
    }
    y += row_h[static_cast<std::size_t>(r)] + gap;
  }
  return out;
}

Canvas draw_rise_grid(const std::vector<ExplainedImage>& rows,
                      const std::vector<std::string>& given_labels) {
  std::size_t classes = 0;
  for (const auto& r : rows) {
    classes = std::max(classes, r.saliency.classes);
  }
  std::vector<std::string> labels = given_labels;
  for (std::size_t c = labels.size(); c < classes; ++c) {
    labels.push_back(std::to_string(c));
  }
  constexpr int zoom = 4; // 28 px -> 112 px
  constexpr int pad = 10;
  constexpr int s = 2; // font scale
  const int cell = 28 * zoom;
  const int caption_h = Canvas::text_height(s) + 8;
  const int header_h = Canvas::text_height(s) * 2 + 30;
  const int row_h = cell + caption_h + pad;
  const int image_col_w = std::max(cell, Canvas::text_width("true 0 pred 0", s)) + 2 * pad;
  const int width = image_col_w + static_cast<int>(classes) * (cell + pad) + pad;
  const int legend_h = 40;
  const int height = header_h + static_cast<int>(rows.size()) * row_h + legend_h + pad;
  Canvas c(width, height);

  const std::string title = "RISE saliency per class (brighter = more important for that class)";
  c.text(pad, 8, title, k_black, s);
  const int label_y = 8 + Canvas::text_height(s) + 14;
  c.text(pad, label_y, "input", k_axis, s);
  for (std::size_t k = 0; k < classes; ++k) {
    const int x = image_col_w + static_cast<int>(k) * (cell + pad);
    const auto label = "class " + labels[k];
    c.text(x + (cell - Canvas::text_width(label, s)) / 2, label_y, label, k_axis, s);
  }
  constexpr Rgb k_true{44, 160, 44};
  constexpr Rgb k_wrong{214, 39, 40};
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const auto& row = rows[r];
    const auto& sal = row.saliency;
    const int y = header_h + static_cast<int>(r) * row_h;
    const int img_rows = static_cast<int>(sal.rows);
    const int img_cols = static_cast<int>(sal.cols);
    const int z = img_rows > 0 ? std::max(1, cell / std::max(img_rows, img_cols)) : zoom;
    // The input image, grey.
    const auto pixel = [&](int yy, int xx) {
      const auto i = static_cast<std::size_t>(yy * img_cols + xx);
      return i < row.image.size() ? std::clamp(row.image[i], 0.0f, 1.0f) : 0.0f;
    };
    for (int yy = 0; yy < img_rows; ++yy) {
      for (int xx = 0; xx < img_cols; ++xx) {
        const auto v = static_cast<std::uint8_t>(std::lround(pixel(yy, xx) * 255));
        c.fill_rect(pad + xx * z, y + yy * z, z, z, {v, v, v});
      }
    }
    const bool wrong = row.true_class >= 0 && sal.predicted != row.true_class;
    std::string caption = row.true_class >= 0
                              ? "true " + labels.at(static_cast<std::size_t>(row.true_class)) + " "
                              : "";
    caption +=
        "pred " + (sal.predicted >= 0 && static_cast<std::size_t>(sal.predicted) < labels.size()
                       ? labels[static_cast<std::size_t>(sal.predicted)]
                       : std::string("?"));
    c.text(pad, y + cell + 4, caption, wrong ? k_wrong : k_axis, s);
    if (wrong) {
      c.text(pad + cell + 4, y + 2, "X", k_wrong, 3);
    }
    if (!row.caption.empty()) {
      c.text(pad + cell - Canvas::text_width(row.caption, 1) - 2, y + 2, row.caption, {255, 200, 0},
             1);
    }
    // One colour scale per row: the classes compare with each other.
    float lo = std::numeric_limits<float>::infinity();
    float hi = -lo;
    for (const float v : sal.maps) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    const float span = hi > lo ? hi - lo : 1.0f;
    for (std::size_t k = 0; k < sal.classes; ++k) {
      const int x0 = image_col_w + static_cast<int>(k) * (cell + pad);
      const float* m = sal.map(k);
      for (int yy = 0; yy < img_rows; ++yy) {
        for (int xx = 0; xx < img_cols; ++xx) {
          const auto heat = colormap((m[yy * img_cols + xx] - lo) / span);
          // The digit shows through as a light veil over the heat map.
          const float g = pixel(yy, xx) * 0.35f;
          const auto blend = [g](std::uint8_t v) {
            return static_cast<std::uint8_t>(std::lround(v * (1 - g) + 255 * g));
          };
          c.fill_rect(x0 + xx * z, y + yy * z, z, z, {blend(heat.r), blend(heat.g), blend(heat.b)});
        }
      }
      const bool is_true = row.true_class >= 0 && static_cast<std::size_t>(row.true_class) == k;
      const bool is_wrong_pred = wrong && static_cast<std::size_t>(sal.predicted) == k;
      if (is_true) {
        c.rect(x0 - 4, y - 4, cell + 8, cell + 8, k_true, 4);
      } else if (is_wrong_pred) {
        c.rect(x0 - 4, y - 4, cell + 8, cell + 8, k_wrong, 4);
      }
      char prob[32];
      std::snprintf(prob, sizeof prob, "p=%.2f",
                    k < sal.probabilities.size() ? sal.probabilities[k] : 0.0f);
      const bool bold = static_cast<std::int64_t>(k) == sal.predicted;
      c.text(x0 + (cell - Canvas::text_width(prob, s)) / 2, y + cell + 6, prob,
             bold ? k_black : k_muted, s);
    }
  }
  // Legend: the colour scale and the frames.
  const int ly = height - legend_h;
  c.text(pad, ly + 6, "low", k_axis, s);
  for (int i = 0; i < 200; ++i) {
    c.fill_rect(pad + 44 + i, ly + 4, 1, 18, colormap(i / 199.0));
  }
  c.text(pad + 252, ly + 6, "high", k_axis, s);
  c.rect(pad + 320, ly + 4, 18, 18, k_true, 3);
  c.text(pad + 344, ly + 6, "true class", k_axis, s);
  c.rect(pad + 490, ly + 4, 18, 18, k_wrong, 3);
  c.text(pad + 514, ly + 6, "wrong prediction", k_axis, s);
  return c;
}

} // namespace mlctl::explain

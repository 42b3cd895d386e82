#include "explain/png.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <cmath>
#include <doctest/doctest.h>

using namespace mlctl;

namespace {

std::uint32_t be32(const std::string& s, std::size_t at) {
  return (static_cast<std::uint32_t>(static_cast<unsigned char>(s[at])) << 24) |
         (static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + 1])) << 16) |
         (static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + 2])) << 8) |
         static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + 3]));
}

int count(const explain::Canvas& c, explain::Rgb colour) {
  int n = 0;
  for (int y = 0; y < c.height(); ++y) {
    for (int x = 0; x < c.width(); ++x) {
      n += c.at(x, y) == colour ? 1 : 0;
    }
  }
  return n;
}

} // namespace

TEST_CASE("png: encodes an RGB image libpng can describe") {
  explain::Canvas c(37, 21);
  c.fill_rect(0, 0, 10, 10, {255, 0, 0});
  const auto bytes = explain::encode_png(c);
  REQUIRE(bytes.size() > 33);
  CHECK(bytes.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
  CHECK(bytes.substr(12, 4) == "IHDR");
  CHECK(be32(bytes, 16) == 37);
  CHECK(be32(bytes, 20) == 21);
  CHECK(bytes[24] == 8); // bit depth
  CHECK(bytes[25] == 2); // RGB
  CHECK(bytes.substr(bytes.size() - 8, 4) == "IEND");

  util::TempDir dir;
  explain::write_png(dir.path() / "x.png", c);
  CHECK(util::read_file(dir.path() / "x.png") == bytes);
}

TEST_CASE("png: text is drawn with the built-in font, clipped at the edges") {
  explain::Canvas c(100, 20);
  c.text(2, 2, "A1", explain::k_black, 2);
  // 'A' has 18 ink pixels and '1' 10 in the 5x7 font; at scale 2 each is 4 pixels.
  CHECK(count(c, explain::k_black) == (18 + 10) * 4);
  CHECK(explain::Canvas::text_width("A1", 2) == 22);
  c.text(95, 15, "WWW", explain::k_black, 3); // mostly outside: no crash
  CHECK_THROWS_AS(explain::Canvas(0, 10), Error);
}

TEST_CASE("png: a chart has axes, a series and a dashed threshold line") {
  explain::Chart chart;
  chart.title = "reconstruction score";
  chart.x_label = "time (UTC)";
  chart.y_label = "MSE";
  chart.x_is_time = true;
  explain::Series s;
  s.label = "mnist:1";
  for (int i = 0; i < 30; ++i) {
    s.x.push_back(1'700'000'000.0 + i * 10);
    s.y.push_back(0.01 + 0.001 * i);
  }
  chart.series.push_back(s);
  chart.threshold = 0.03;
  chart.threshold_label = "threshold 0.030";
  const auto c = explain::draw_chart(chart, 640, 360);
  CHECK(c.width() == 640);
  CHECK(count(c, {214, 39, 40}) > 300); // the threshold line and its label
  CHECK(count(c, s.colour) > 300);      // the series
  CHECK(count(c, {40, 40, 40}) > 1000); // axes, ticks, labels
}

TEST_CASE("png: the RISE grid frames the true class and marks a wrong prediction") {
  explain::ExplainedImage row;
  row.image.assign(784, 0.5f);
  row.saliency.classes = 3;
  row.saliency.maps.resize(3 * 784);
  for (std::size_t i = 0; i < row.saliency.maps.size(); ++i) {
    row.saliency.maps[i] = static_cast<float>(i % 784) / 784.0f;
  }
  row.saliency.probabilities = {0.2f, 0.7f, 0.1f};
  row.saliency.predicted = 1;
  row.true_class = 2;
  const auto c = explain::draw_rise_grid({row, row});
  CHECK(c.height() > 2 * 112);
  CHECK(count(c, {44, 160, 44}) > 2 * 4 * 112 * 4); // green frames, one per row
  CHECK(count(c, {214, 39, 40}) > 2 * 4 * 112 * 4); // red frames (wrong predictions)
}

TEST_CASE("png: the colour map runs from dark to bright") {
  const auto lo = explain::colormap(0);
  const auto hi = explain::colormap(1);
  CHECK(lo.r + lo.g + lo.b < hi.r + hi.g + hi.b);
  CHECK(explain::colormap(-1) == lo);
  CHECK(explain::colormap(NAN) == lo);
}

// lib/model/predict: model directories and bare .onnx files as image classifiers, evaluation,
// PNG input. (Lives with the ONNX tests: its owner is the ONNX helper.)

#include "model/card.hpp"
#include "model/predict.hpp"
#include "onnx/writer.hpp"
#include "onnx_test_util.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <doctest/doctest.h>
#include <zlib.h>

using mlctl::Error;
using mlctl::model::Predictor;
using mlctl::nn::Activation;
using namespace mlctl::onnx::test;

namespace {

const std::filesystem::path k_torch =
    std::filesystem::path(MLCTL_SOURCE_DIR) / "tests" / "fixtures" / "torch";

// A minimal PNG encoder (one IDAT, filter 0 on every row) for 8-bit gray (colour type 0) or
// RGB (colour type 2) pixels.
std::string make_png(std::uint32_t width, std::uint32_t height, int color_type,
                     const std::vector<std::uint8_t>& pixels) {
  auto be32 = [](std::string& s, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8)
      s.push_back(static_cast<char>((v >> shift) & 0xff));
  };
  auto chunk = [&](std::string& out, const char* type, const std::string& data) {
    be32(out, static_cast<std::uint32_t>(data.size()));
    const std::string body = std::string(type, 4) + data;
    out += body;
    be32(out, static_cast<std::uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(body.data()),
                                               static_cast<uInt>(body.size()))));
  };
  const std::size_t channels = color_type == 2 ? 3 : color_type == 4 ? 2 : color_type == 6 ? 4 : 1;
  std::string raw;
  for (std::uint32_t y = 0; y < height; ++y) {
    raw.push_back('\0');
    raw.append(reinterpret_cast<const char*>(pixels.data()) + y * width * channels,
               width * channels);
  }
  uLongf size = compressBound(static_cast<uLong>(raw.size()));
  std::string z(size, '\0');
  REQUIRE(compress(reinterpret_cast<Bytef*>(z.data()), &size,
                   reinterpret_cast<const Bytef*>(raw.data()),
                   static_cast<uLong>(raw.size())) == Z_OK);
  z.resize(size);
  std::string ihdr;
  be32(ihdr, width);
  be32(ihdr, height);
  ihdr += std::string{'\x08', static_cast<char>(color_type), '\0', '\0', '\0'};
  std::string png = "\x89PNG\r\n\x1a\n";
  chunk(png, "IHDR", ihdr);
  chunk(png, "IDAT", z);
  chunk(png, "IEND", "");
  return png;
}

std::vector<std::uint8_t> digit_like(std::size_t count, std::uint32_t seed) {
  std::vector<std::uint8_t> x(count * 784);
  for (auto& v : x) {
    seed = seed * 1664525u + 1013904223u;
    v = static_cast<std::uint8_t>(seed >> 24);
  }
  return x;
}

// A model directory like `mlctl train` writes: model.onnx and a model.yaml with `labels`.
std::filesystem::path write_model_dir(const std::filesystem::path& dir, const mlctl::nn::Mlp& mlp,
                                      std::vector<std::string> labels) {
  mlctl::util::write_file_atomic(dir / "model.onnx",
                                 mlctl::onnx::export_classifier(mlp, {"test", ""}));
  mlctl::model::ModelCard card;
  card.name = "digits";
  card.contract = mlctl::model::classifier_contract(784, 10);
  card.contract.labels = std::move(labels);
  mlctl::util::write_file_atomic(dir / "model.yaml", mlctl::model::card_to_yaml(card));
  return dir;
}

} // namespace

TEST_CASE("a bare PyTorch .onnx with N×1×28×28 input classifies images") {
  const auto predictor = Predictor::open(k_torch / "sequential_logsoftmax.onnx");
  CHECK(predictor.pixels() == 784);
  CHECK(predictor.rows() == 28);
  CHECK(predictor.cols() == 28);
  CHECK(predictor.classes() == 10);
  CHECK(predictor.labels().front() == "0");
  CHECK(predictor.card().lineage.imported);
  const auto images = digit_like(300, 5); // more than one internal batch of 256
  const auto predictions = predictor.predict(images, 300);
  REQUIRE(predictions.size() == 300);
  for (const auto& p : predictions) {
    double sum = 0;
    for (const float v : p.probabilities)
      sum += v;
    CHECK(sum == doctest::Approx(1.0).epsilon(1e-5)); // log-probabilities turned into probabilities
    const auto best =
        std::max_element(p.probabilities.begin(), p.probabilities.end()) - p.probabilities.begin();
    CHECK(p.label_index == best);
  }
  CHECK_THROWS_WITH_AS(predictor.predict(images, 301),
                       ((k_torch / "sequential_logsoftmax.onnx").string() +
                        ": got 235200 pixels for 301 images of 784")
                           .c_str(),
                       Error);
}

TEST_CASE("a model directory takes its labels and scale from model.yaml") {
  mlctl::util::TempDir dir;
  const auto mlp = make_mlp({784, 16, 10}, Activation::relu, Activation::softmax);
  write_model_dir(dir.path(), mlp,
                  {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"});
  const auto predictor = Predictor::open(dir.path());
  CHECK(predictor.labels()[3] == "three");
  CHECK_FALSE(predictor.card().lineage.imported);
  const auto images = digit_like(4, 9);
  const auto predictions = predictor.predict(images, 4);
  // The reference: pixels / 255 through the network.
  std::vector<float> x(images.begin(), images.end());
  for (auto& v : x)
    v = v * static_cast<float>(1.0 / 255.0);
  const auto expected = reference_forward(mlp, x, 4);
  for (std::size_t i = 0; i < 4; ++i) {
    for (std::size_t c = 0; c < 10; ++c) {
      CHECK(predictions[i].probabilities[c] == doctest::Approx(expected[i * 10 + c]).epsilon(1e-5));
    }
  }
}

TEST_CASE("evaluate counts a confusion matrix and refuses foreign labels") {
  mlctl::util::TempDir dir;
  write_model_dir(dir.path(), make_mlp({784, 16, 10}, Activation::relu, Activation::softmax), {});
  const auto predictor = Predictor::open(dir.path());
  mlctl::data::LabeledImages split;
  split.count = 50;
  split.x = digit_like(50, 3);
  split.y.resize(50);
  const auto guesses = predictor.predict(split.x, 50);
  for (std::size_t i = 0; i < 50; ++i) {
    // Half the labels agree with the model, half are shifted by one.
    split.y[i] = static_cast<std::uint8_t>((guesses[i].label_index + (i % 2)) % 10);
  }
  const auto all = mlctl::model::evaluate(predictor, split, 0, {});
  CHECK(all.count == 50);
  CHECK(all.correct == 25);
  CHECK(all.accuracy == doctest::Approx(0.5));
  std::int64_t total = 0;
  std::int64_t diagonal = 0;
  for (std::size_t r = 0; r < 10; ++r) {
    for (std::size_t c = 0; c < 10; ++c) {
      total += all.confusion_matrix[r][c];
      diagonal += r == c ? all.confusion_matrix[r][c] : 0;
    }
  }
  CHECK(total == 50);
  CHECK(diagonal == 25);
  int progress_calls = 0;
  const auto first =
      mlctl::model::evaluate(predictor, split, 10, [&](const mlctl::util::Progress& p) {
        ++progress_calls;
        CHECK(p.done == 10);
      });
  CHECK(first.count == 10);
  CHECK(first.correct == 5);
  CHECK(progress_calls == 1);
  split.y[7] = 12;
  CHECK_THROWS_WITH_AS(mlctl::model::evaluate(predictor, split, 0, {}),
                       "label 12 of image 7 is outside the model's 10 classes", Error);
  split.rows = 14;
  split.cols = 14;
  CHECK_THROWS_WITH_AS(mlctl::model::evaluate(predictor, split, 0, {}),
                       "the images are 14×14 but the model takes 784 values per image", Error);
}

TEST_CASE("PNG input: transparent pixels show black, or the contrast of what is drawn") {
  using mlctl::model::Backdrop;
  // Black ink (opaque) on a transparent sheet, a half-transparent gray pixel, gray+alpha.
  const std::vector<std::uint8_t> ga = {0, 255, 0, 255, 77, 0, 200, 128};
  const auto png = make_png(2, 2, 4, ga);
  const auto on_black = mlctl::model::decode_picture(png, "ink.png").pixels;
  CHECK(std::vector<std::uint8_t>(on_black.begin(), on_black.begin() + 3) ==
        std::vector<std::uint8_t>{0, 0, 0});
  // The opaque pixels are dark: the sheet shows white.
  CHECK(mlctl::model::decode_picture(png, "ink.png", Backdrop::contrast).pixels ==
        std::vector<std::uint8_t>{0, 0, 255, 227});
  // Light strokes keep the black backdrop; a PNG without alpha is as it is (RGBA too).
  const std::vector<std::uint8_t> light = {255, 255, 0, 0};
  CHECK(mlctl::model::decode_picture(make_png(2, 1, 4, light), "chalk.png", Backdrop::contrast)
            .pixels == std::vector<std::uint8_t>{255, 0});
  const std::vector<std::uint8_t> rgba = {0, 0, 0, 255, 9, 9, 9, 0};
  CHECK(mlctl::model::decode_picture(make_png(2, 1, 6, rgba), "rgba.png", Backdrop::contrast)
            .pixels == std::vector<std::uint8_t>{0, 255});
}

TEST_CASE("open names what is missing") {
  mlctl::util::TempDir dir;
  CHECK_THROWS_WITH_AS(Predictor::open(dir.path()),
                       (dir.path().string() + ": not a model directory (no model.yaml)").c_str(),
                       Error);
  CHECK_THROWS_WITH_AS(
      Predictor::open(dir.path() / "nope.onnx"),
      ((dir.path() / "nope.onnx").string() + ": no such file or directory").c_str(), Error);
}

TEST_CASE("PNG input: gray and RGB decode to 8-bit gray, other bytes are refused") {
  std::vector<std::uint8_t> gray(28 * 28);
  for (std::size_t i = 0; i < gray.size(); ++i)
    gray[i] = static_cast<std::uint8_t>(i % 251);
  const auto g = mlctl::model::decode_picture(make_png(28, 28, 0, gray), "digit.png");
  CHECK(g.rows == 28);
  CHECK(g.cols == 28);
  CHECK(g.pixels == gray);

  std::vector<std::uint8_t> rgb(5 * 3 * 3);
  for (std::size_t i = 0; i < 15; ++i) {
    rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = static_cast<std::uint8_t>(i * 17); // gray in RGB
  }
  const auto c = mlctl::model::decode_picture(make_png(5, 3, 2, rgb), "colour.png");
  CHECK(c.rows == 3);
  CHECK(c.cols == 5);
  for (std::size_t i = 0; i < 15; ++i) {
    CHECK(std::abs(static_cast<int>(c.pixels[i]) - static_cast<int>(i * 17)) <= 1);
  }

  CHECK_THROWS_WITH_AS(mlctl::model::decode_picture("....", "x.png"),
                       "x.png: not a PNG or JPEG image (neither signature)", Error);
  CHECK_THROWS_WITH_AS(mlctl::model::decode_picture("GIF89a....", "x.png"),
                       "x.png: not a PNG or JPEG image: a GIF (convert it first, e.g. convert "
                       "picture.gif picture.png)",
                       Error);
  CHECK_THROWS_WITH_AS(
      mlctl::model::decode_picture(std::string_view("RIFF\x10\0\0\0WEBPVP8 ", 16), "x.webp"),
      doctest::Contains("x.webp: not a PNG or JPEG image: a WebP"), Error);
  auto truncated = make_png(28, 28, 0, gray);
  truncated.resize(truncated.size() - 30);
  CHECK_THROWS_AS(mlctl::model::decode_picture(truncated, "cut.png"), Error);

  mlctl::util::TempDir dir;
  write_model_dir(dir.path(), make_mlp({784, 8, 10}, Activation::relu, Activation::softmax), {});
  const auto predictor = Predictor::open(dir.path());
  const auto p = mlctl::model::classify_image(predictor, g, "digit.png");
  CHECK(p.probabilities.size() == 10);
  CHECK_THROWS_WITH_AS(mlctl::model::classify_image(predictor, c, "colour.png"),
                       "colour.png: the image is 5×3; the model takes 28×28 images", Error);
}

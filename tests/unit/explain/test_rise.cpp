#include "explain/rise.hpp"
#include "nn/mlp.hpp"
#include "onnx/runtime.hpp"
#include "onnx/writer.hpp"
#include "util/error.hpp"

#include <chrono>
#include <doctest/doctest.h>
#include <numeric>

using namespace mlctl;

namespace {

// A classifier 784 -> 10 (softmax) whose weights read only the left half of the 28×28 image
// (columns 0..13): class 3 gains from ink there, every class has some noise weights too.
onnx::Model left_half_model() {
  nn::Mlp mlp;
  nn::DenseLayer layer;
  layer.weight = Eigen::MatrixXf::Zero(10, 784);
  layer.bias = Eigen::VectorXf::Zero(10);
  layer.activation = nn::Activation::softmax;
  std::uint32_t state = 7;
  for (int k = 0; k < 10; ++k) {
    for (int r = 0; r < 28; ++r) {
      for (int c = 0; c < 14; ++c) {
        state = state * 1664525u + 1013904223u;
        const float noise =
            (static_cast<float>(state >> 8) / static_cast<float>(1u << 24) - 0.5f) * 0.02f;
        layer.weight(k, r * 28 + c) = noise + (k == 3 ? 0.015f : 0.0f);
      }
    }
  }
  mlp.layers.push_back(layer);
  return onnx::Model::load(onnx::export_classifier(mlp, {}), "left-half.onnx");
}

std::vector<float> test_image() {
  std::vector<float> image(784);
  std::uint32_t state = 99;
  for (auto& v : image) {
    state = state * 1664525u + 1013904223u;
    v = static_cast<float>(state >> 8) / static_cast<float>(1u << 24);
  }
  return image;
}

} // namespace

TEST_CASE("rise: a model that reads only the left half gets its saliency there") {
  const auto model = left_half_model();
  const auto image = test_image();
  explain::RiseOptions options;
  options.seed = 1;
  const auto s = explain::rise(explain::onnx_classifier(model), image, 28, 28, options);
  REQUIRE(s.classes == 10);
  CHECK(s.predicted == 3);
  CHECK(s.maps.size() == 10 * 784);
  const double left = explain::mass_share(s, static_cast<std::size_t>(s.predicted), 0, 14);
  MESSAGE("left-half share of the predicted class's saliency: " << left);
  CHECK(left > 0.8);
}

TEST_CASE("rise: deterministic for a seed, different for another") {
  const auto model = left_half_model();
  const auto image = test_image();
  explain::RiseOptions options;
  options.masks = 200;
  options.seed = 5;
  const auto classifier = explain::onnx_classifier(model);
  const auto a = explain::rise(classifier, image, 28, 28, options);
  const auto b = explain::rise(classifier, image, 28, 28, options);
  CHECK(a.maps == b.maps);
  options.seed = 6;
  const auto c = explain::rise(classifier, image, 28, 28, options);
  CHECK(a.maps != c.maps);
}

TEST_CASE("rise: masks are smooth values in [0, 1] kept with probability p") {
  explain::RiseOptions options;
  options.masks = 500;
  options.p = 0.3;
  const auto masks = explain::make_masks(28, 28, options);
  REQUIRE(masks.size() == 500 * 784);
  CHECK(*std::min_element(masks.begin(), masks.end()) >= 0.0f);
  CHECK(*std::max_element(masks.begin(), masks.end()) <= 1.0f);
  const double mean =
      std::accumulate(masks.begin(), masks.end(), 0.0) / static_cast<double>(masks.size());
  CHECK(mean == doctest::Approx(0.3).epsilon(0.1));
  // Upsampled, not binary: some values strictly between 0 and 1.
  CHECK(std::any_of(masks.begin(), masks.end(), [](float v) { return v > 0.05f && v < 0.95f; }));
}

TEST_CASE("rise: options are checked") {
  explain::RiseOptions options;
  options.masks = 0;
  CHECK_THROWS_WITH_AS(explain::validate(options), "masks: must be 1..100000, got 0", Error);
  options = {};
  options.grid = 1;
  CHECK_THROWS_WITH_AS(explain::validate(options), "grid: must be 2..28, got 1", Error);
  options = {};
  options.p = 1.5;
  CHECK_THROWS_WITH_AS(explain::validate(options), "p: must be in (0, 1), got 1.5", Error);
  const auto model = left_half_model();
  CHECK_THROWS_WITH_AS(
      explain::rise(explain::onnx_classifier(model), std::vector<float>(10), 28, 28, {}),
      "images: expected 1 × 784 values, got 10", Error);
}

TEST_CASE("rise: several images share the masks") {
  const auto model = left_half_model();
  auto images = test_image();
  const auto one = images;
  images.insert(images.end(), one.rbegin(), one.rend());
  explain::RiseOptions options;
  options.masks = 300;
  const auto classifier = explain::onnx_classifier(model);
  const auto both = explain::rise(classifier, images, 2, 28, 28, options);
  REQUIRE(both.size() == 2);
  const auto first = explain::rise(classifier, one, 28, 28, options);
  CHECK(both[0].maps == first.maps);
  CHECK(both[1].maps != first.maps);
}

#include "server/gateway.hpp"

#include <doctest/doctest.h>

#include <array>
#include <cmath>

using namespace mlctl::server;

namespace {

// A route whose stage 0 splits 30/30/40 (pick only looks at the cumulative weights).
std::unique_ptr<Route> split_route(std::uint64_t seed) {
  auto r = std::make_unique<Route>();
  r->name = "split";
  r->seed = seed;
  StageSlot stage;
  stage.cumulative = {{30, 0}, {60, 1}, {100, 2}};
  r->stages.push_back(std::move(stage));
  return r;
}

} // namespace

TEST_CASE("weighted routing: shares follow the weights within a few standard deviations") {
  const auto route = split_route(12345);
  std::array<int, 3> counts{};
  constexpr int n = 100000;
  for (int i = 0; i < n; ++i) {
    const double u = route->draw();
    REQUIRE(u >= 0.0);
    REQUIRE(u < 100.0);
    ++counts.at(route->pick(0, u));
  }
  // sd of a share over 100,000 draws is at most 0.16 pp: 1 pp is over 6 sd.
  CHECK(std::abs(counts[0] / double(n) - 0.30) < 0.01);
  CHECK(std::abs(counts[1] / double(n) - 0.30) < 0.01);
  CHECK(std::abs(counts[2] / double(n) - 0.40) < 0.01);
}

TEST_CASE("weighted routing is a seeded sequence: the same seed routes the same way") {
  const auto a = split_route(7);
  const auto b = split_route(7);
  const auto c = split_route(8);
  int differ = 0;
  for (int i = 0; i < 1000; ++i) {
    const double x = a->draw();
    CHECK(x == b->draw());
    differ += x != c->draw();
  }
  CHECK(differ > 990);
}

TEST_CASE("a zero-weight variant never takes traffic; the last boundary is exclusive") {
  Route r;
  r.seed = 1;
  StageSlot stage;
  stage.cumulative = {{0, 0}, {100, 1}};
  r.stages.push_back(std::move(stage));
  CHECK(r.pick(0, 0.0) == 1);
  CHECK(r.pick(0, 99.999) == 1);
  const auto split = split_route(1);
  CHECK(split->pick(0, 29.999) == 0);
  CHECK(split->pick(0, 30.0) == 1);
  CHECK(split->pick(0, 60.0) == 2);
}

TEST_CASE("classify: probabilities pass through, logits go through a softmax, no scores is false") {
  mlctl::onnx::Tensor probs{
      "probabilities", "FP32", {2, 3}, {0.1f, 0.7f, 0.2f, 0.5f, 0.25f, 0.25f}, {}};
  std::vector<std::int64_t> classes;
  std::vector<float> p;
  std::size_t n = 0;
  REQUIRE(classify({probs}, 2, classes, p, n));
  CHECK(n == 3);
  CHECK(classes == std::vector<std::int64_t>{1, 0});
  CHECK(p[1] == doctest::Approx(0.7f));

  mlctl::onnx::Tensor logits{"logits", "FP32", {1, 2}, {0.0f, std::log(3.0f)}, {}};
  mlctl::onnx::Tensor label{"class", "INT64", {1}, {}, {1}};
  REQUIRE(classify({label, logits}, 1, classes, p, n));
  CHECK(classes[0] == 1);
  CHECK(p[0] == doctest::Approx(0.25f));
  CHECK(p[1] == doctest::Approx(0.75f));

  CHECK_FALSE(classify({label}, 1, classes, p, n));
  CHECK_FALSE(classify({probs}, 3, classes, p, n)); // the batch does not match
}

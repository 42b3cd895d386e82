#include "nn/optimizer.hpp"
#include "util/error.hpp"

#include <cmath>
#include <doctest/doctest.h>
#include <vector>

using namespace mlctl::nn;

TEST_CASE("optimizer names round-trip and unknown names are refused") {
  for (const auto kind : {OptimizerKind::adam, OptimizerKind::sgd, OptimizerKind::adagrad}) {
    CHECK(optimizer_from_string(to_string(kind)) == kind);
  }
  CHECK_THROWS_WITH_AS(optimizer_from_string("rmsprop"),
                       "unknown optimizer 'rmsprop' (expected adam, sgd or adagrad)", mlctl::Error);
}

TEST_CASE("adam follows PyTorch's update rule") {
  OptimizerOptions o;
  o.learning_rate = 0.1F;
  Optimizer adam(o, 2);
  std::vector<float> p = {1.0F, -2.0F};
  const std::vector<float> g1 = {0.5F, -4.0F};
  adam.step(p, g1);
  // Step 1: m_hat = g, v_hat = g^2, so each parameter moves by lr * g / (|g| + eps).
  CHECK(p[0] == doctest::Approx(1.0 - 0.1).epsilon(1e-6));
  CHECK(p[1] == doctest::Approx(-2.0 + 0.1).epsilon(1e-6));
  const std::vector<float> g2 = {1.0F, 0.0F};
  adam.step(p, g2);
  // Step 2, reference computed in double from the definition.
  const double m = 0.9 * 0.1 * 0.5 + 0.1 * 1.0;
  const double v = 0.999 * 0.001 * 0.25 + 0.001 * 1.0;
  const double m_hat = m / (1 - 0.81);
  const double v_hat = v / (1 - 0.999 * 0.999);
  CHECK(p[0] == doctest::Approx(0.9 - 0.1 * m_hat / (std::sqrt(v_hat) + 1e-8)).epsilon(1e-5));
  CHECK(adam.steps() == 2);
}

TEST_CASE("sgd uses heavy-ball momentum") {
  OptimizerOptions o;
  o.kind = OptimizerKind::sgd;
  o.learning_rate = 0.5F;
  Optimizer sgd(o, 1);
  std::vector<float> p = {1.0F};
  const std::vector<float> g = {0.2F};
  sgd.step(p, g); // v = 0.2
  CHECK(p[0] == doctest::Approx(0.9));
  sgd.step(p, g); // v = 0.9*0.2 + 0.2 = 0.38
  CHECK(p[0] == doctest::Approx(0.9 - 0.5 * 0.38));
}

TEST_CASE("adagrad divides by the root of the summed squared gradients") {
  OptimizerOptions o;
  o.kind = OptimizerKind::adagrad;
  o.learning_rate = 0.1F;
  Optimizer adagrad(o, 1);
  std::vector<float> p = {0.0F};
  const std::vector<float> g = {3.0F};
  adagrad.step(p, g);
  CHECK(p[0] == doctest::Approx(-0.1));
  adagrad.step(p, g); // sum = 18
  CHECK(p[0] == doctest::Approx(-0.1 - 0.1 * 3.0 / std::sqrt(18.0)));
}

TEST_CASE("the optimizer refuses spans of the wrong size") {
  Optimizer adam(OptimizerOptions{}, 3);
  std::vector<float> p(2);
  const std::vector<float> g(2);
  CHECK_THROWS_AS(adam.step(p, g), mlctl::Error);
}

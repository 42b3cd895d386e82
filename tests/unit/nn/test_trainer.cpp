#include "nn/rng.hpp"
#include "nn/trainer.hpp"
#include "util/error.hpp"

#include <cmath>
#include <cstring>
#include <doctest/doctest.h>
#include <string>
#include <vector>

using namespace mlctl::nn;

namespace {

// `count` examples of 4 classes over 32 pixels: class c lights pixels 8c..8c+7 (value ~200),
// the rest is noise up to 60. Learnable by a linear model, not by chance.
struct Toy {
  std::vector<std::uint8_t> pixels;
  std::vector<std::uint8_t> labels;
  ImageSet set() const { return ImageSet{pixels, labels, 32}; }
};

Toy make_toy(std::size_t count, std::uint64_t seed) {
  Rng rng(seed);
  Toy toy;
  for (std::size_t i = 0; i < count; ++i) {
    const auto label = static_cast<std::uint8_t>(rng.below(4));
    toy.labels.push_back(label);
    for (int p = 0; p < 32; ++p) {
      const bool lit = p / 8 == label;
      toy.pixels.push_back(static_cast<std::uint8_t>(lit ? 160 + rng.below(96) : rng.below(60)));
    }
  }
  return toy;
}

TrainerOptions options(float lr, std::size_t batch, OptimizerKind kind = OptimizerKind::adam) {
  TrainerOptions o;
  o.optimizer.kind = kind;
  o.optimizer.learning_rate = lr;
  o.batch_size = batch;
  o.seed = 3;
  return o;
}

std::vector<float> flatten(const Mlp& mlp) {
  std::vector<float> v;
  for (const auto& layer : mlp.layers) {
    v.insert(v.end(), layer.weight.data(), layer.weight.data() + layer.weight.size());
    v.insert(v.end(), layer.bias.data(), layer.bias.data() + layer.bias.size());
  }
  return v;
}

double dot_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    s += d * d;
  }
  return s;
}

} // namespace

TEST_CASE("the classifier learns a separable problem") {
  const auto train = make_toy(512, 1);
  const auto test = make_toy(256, 2);
  Trainer trainer({32, 16, 4}, Objective::classify, options(0.01F, 32));
  const double before = trainer.evaluate(test.set()).loss;
  CHECK(before == doctest::Approx(std::log(4.0)).epsilon(0.5));
  EpochStats stats;
  for (int epoch = 0; epoch < 5; ++epoch) {
    stats = trainer.train_epoch(train.set());
  }
  CHECK(stats.steps == 16);
  CHECK(stats.examples == 512);
  CHECK(trainer.steps_done() == 80);
  const auto eval = trainer.evaluate(test.set());
  CHECK(eval.loss < before / 4);
  CHECK(eval.accuracy > 0.97);
  REQUIRE(eval.confusion.size() == 4);
  std::int64_t total = 0;
  for (int c = 0; c < 4; ++c) {
    for (int p = 0; p < 4; ++p) {
      total += eval.confusion[c][p];
    }
  }
  CHECK(total == 256);
}

TEST_CASE("the gradient matches the loss: one small SGD step lowers it by lr * |g|^2") {
  // Full-batch SGD without momentum: g = (p - p') / lr, and to first order
  // loss(p) - loss(p') = lr * |g|^2. A wrong backward pass breaks the equality.
  const auto data = make_toy(64, 9);
  for (const auto objective : {Objective::classify, Objective::reconstruct}) {
    CAPTURE(static_cast<int>(objective));
    auto o = options(0.02F, 64, OptimizerKind::sgd);
    o.optimizer.momentum = 0.0F;
    const std::vector<int> sizes = objective == Objective::classify
                                       ? std::vector<int>{32, 12, 8, 4}
                                       : std::vector<int>{32, 12, 6, 12, 32};
    Trainer trainer(sizes, objective, o);
    trainer.train_epoch(data.set()); // move off the initial point (dead units, zero biases)
    const auto before = flatten(trainer.to_mlp());
    const double loss_before = trainer.evaluate(data.set()).loss;
    trainer.train_epoch(data.set());
    const auto after = flatten(trainer.to_mlp());
    const double loss_after = trainer.evaluate(data.set()).loss;
    const double lr = 0.02;
    const double predicted = dot_diff(before, after) / lr; // lr * |g|^2
    const double actual = loss_before - loss_after;
    CHECK(predicted > 0);
    CHECK(actual == doctest::Approx(predicted).epsilon(0.05));
  }
}

TEST_CASE("training is deterministic for a seed and differs between seeds") {
  const auto data = make_toy(300, 4);
  auto run = [&](std::uint64_t seed) {
    auto o = options(0.01F, 50);
    o.seed = seed;
    Trainer trainer({32, 10, 4}, Objective::classify, o);
    trainer.train_epoch(data.set());
    trainer.train_epoch(data.set(), 3);
    return flatten(trainer.to_mlp());
  };
  const auto a = run(11);
  const auto b = run(11);
  const auto c = run(12);
  REQUIRE(a.size() == b.size());
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  CHECK(a != c);
}

TEST_CASE("max_steps stops an epoch early and a partial last batch is used") {
  const auto data = make_toy(100, 5);
  Trainer trainer({32, 4}, Objective::classify, options(0.01F, 30));
  CHECK(trainer.steps_per_epoch(100) == 4);
  const auto partial = trainer.train_epoch(data.set(), 2);
  CHECK(partial.steps == 2);
  CHECK(partial.examples == 60);
  const auto full = trainer.train_epoch(data.set());
  CHECK(full.steps == 4);
  CHECK(full.examples == 100);
  CHECK(trainer.steps_done() == 6);
}

TEST_CASE("the step callback reports running loss and accuracy") {
  const auto data = make_toy(128, 6);
  Trainer trainer({32, 4}, Objective::classify, options(0.01F, 32));
  std::vector<StepInfo> seen;
  trainer.train_epoch(data.set(), 0, [&](const StepInfo& s) { seen.push_back(s); });
  REQUIRE(seen.size() == 4);
  CHECK(seen.back().step == 4);
  CHECK(seen.back().steps == 4);
  CHECK(seen.back().total == 4);
  CHECK(seen.back().loss > 0);
  CHECK(seen.back().accuracy >= 0);
  CHECK(seen.back().accuracy <= 1);
}

TEST_CASE("the autoencoder lowers its reconstruction error and reports it per example") {
  const auto data = make_toy(256, 8);
  Trainer trainer({32, 16, 8, 16, 32}, Objective::reconstruct, options(0.01F, 32));
  const double before = trainer.evaluate(data.set()).loss;
  for (int epoch = 0; epoch < 20; ++epoch) {
    trainer.train_epoch(data.set());
  }
  const auto eval = trainer.evaluate(data.set());
  CHECK(eval.loss < before / 3);
  const auto errors = trainer.example_losses(data.set());
  REQUIRE(errors.size() == 256);
  double mean = 0;
  for (const float e : errors) {
    CHECK(e >= 0);
    mean += e;
  }
  CHECK(mean / 256 == doctest::Approx(eval.loss).epsilon(1e-4));
  const auto mlp = trainer.to_mlp();
  REQUIRE(mlp.layers.size() == 4);
  CHECK(mlp.layers.back().activation == Activation::sigmoid);
  CHECK(mlp.layers.front().activation == Activation::relu);
  CHECK(mlp.input_size() == 32);
  CHECK(mlp.output_size() == 32);
}

TEST_CASE("to_mlp exports out x in weights with relu hidden layers and a softmax output") {
  Trainer trainer({32, 10, 4}, Objective::classify, options(0.01F, 8));
  const auto mlp = trainer.to_mlp();
  REQUIRE(mlp.layers.size() == 2);
  CHECK(mlp.layers[0].weight.rows() == 10);
  CHECK(mlp.layers[0].weight.cols() == 32);
  CHECK(mlp.layers[0].bias.size() == 10);
  CHECK(mlp.layers[0].activation == Activation::relu);
  CHECK(mlp.layers[1].activation == Activation::softmax);
  // He-uniform bound of the first layer: sqrt(6 / 32).
  CHECK(mlp.layers[0].weight.cwiseAbs().maxCoeff() <= std::sqrt(6.0F / 32.0F));
  CHECK(mlp.layers[0].weight.cwiseAbs().maxCoeff() > 0.5F * std::sqrt(6.0F / 32.0F));
  CHECK(mlp.layers[0].bias.isZero());
}

TEST_CASE("a diverging run stops with the step and the loss") {
  const auto data = make_toy(256, 10);
  auto o = options(1e6F, 16, OptimizerKind::sgd);
  Trainer trainer({32, 16, 4}, Objective::classify, o);
  std::string message;
  try {
    for (int epoch = 0; epoch < 10; ++epoch) {
      trainer.train_epoch(data.set());
    }
  } catch (const mlctl::Error& e) {
    message = e.what();
    CHECK(e.kind() == mlctl::ErrorKind::invalid_input);
  }
  CHECK(message.starts_with("training diverged at step "));
  CHECK(message.ends_with("; lower --learning-rate"));
  CHECK(message.find("(loss ") != std::string::npos);
}

TEST_CASE("bad shapes, labels and options are refused") {
  const auto data = make_toy(10, 1);
  CHECK_THROWS_WITH_AS(Trainer({32}, Objective::classify, options(0.01F, 8)),
                       "a network needs an input and an output size", mlctl::Error);
  CHECK_THROWS_WITH_AS(Trainer({32, 0, 4}, Objective::classify, options(0.01F, 8)),
                       "layer sizes must be positive, got 0", mlctl::Error);
  CHECK_THROWS_WITH_AS(Trainer({32, 4}, Objective::classify, options(0.01F, 0)),
                       "batch size must be at least 1", mlctl::Error);
  CHECK_THROWS_AS(Trainer({32, 4, 16}, Objective::reconstruct, options(0.01F, 8)), mlctl::Error);
  Trainer small({16, 4}, Objective::classify, options(0.01F, 8));
  CHECK_THROWS_WITH_AS(small.train_epoch(data.set()),
                       "the images have 32 pixels but the network takes 16", mlctl::Error);
  Trainer two({32, 2}, Objective::classify, options(0.01F, 8));
  CHECK_THROWS_WITH_AS(two.evaluate(data.set()), doctest::Contains("is outside 0..1"),
                       mlctl::Error);
}

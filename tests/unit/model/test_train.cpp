#include "artifact/sha256.hpp"
#include "data/dataset.hpp"
#include "model/card.hpp"
#include "model/train.hpp"
#include "nn/rng.hpp"
#include "onnx/runtime.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <doctest/doctest.h>
#include <filesystem>
#include <string>

namespace fs = std::filesystem;
using namespace mlctl::model;
using mlctl::util::read_file;
using mlctl::util::TempDir;

namespace {

// 28×28 images whose class c lights rows 2c..2c+4 (plus noise): learnable, not trivially.
mlctl::data::LabeledImages make_split(std::size_t count, std::uint64_t seed) {
  mlctl::nn::Rng rng(seed);
  mlctl::data::LabeledImages s;
  s.count = count;
  for (std::size_t i = 0; i < count; ++i) {
    const auto label = static_cast<std::uint8_t>(rng.below(10));
    s.y.push_back(label);
    for (std::size_t p = 0; p < 784; ++p) {
      const std::size_t row = p / 28;
      const bool lit = row >= 2U * label + 2 && row < 2U * label + 7 && p % 28 > 4 && p % 28 < 23;
      s.x.push_back(static_cast<std::uint8_t>(lit ? 150 + rng.below(106) : rng.below(40)));
    }
  }
  return s;
}

fs::path make_dataset(const fs::path& dir) {
  mlctl::data::write_dataset(dir, make_split(600, 1), make_split(200, 2),
                             {{"name", "synthetic"}, {"seed", 1}});
  return dir;
}

TrainOptions small_options(const fs::path& data, const fs::path& out) {
  TrainOptions o;
  o.data_dir = data;
  o.out_dir = out;
  o.name = "toy";
  o.hidden = {32, 16};
  o.batch_size = 50;
  o.epochs = 3;
  o.ae_hidden = {32, 8, 32};
  o.ae_epochs = 2;
  return o;
}

} // namespace

TEST_CASE("train_model writes a complete model directory whose ONNX model agrees with the card") {
  TempDir tmp;
  const auto data = make_dataset(tmp.path() / "data");
  const auto out = tmp.path() / "models" / "toy";
  std::vector<std::string> logs;
  std::size_t progress_calls = 0;
  const auto result = train_model(
      small_options(data, out),
      [&](const mlctl::util::Progress& p) {
        ++progress_calls;
        CHECK(p.unit == "step");
      },
      [&](const std::string& line) { logs.push_back(line); });

  CHECK(result.model_dir == fs::absolute(out));
  for (const char* file : {"model.onnx", "autoencoder.onnx", "model.yaml", "profile.json"}) {
    CHECK_MESSAGE(fs::is_regular_file(out / file), file);
  }
  CHECK(progress_calls == 3 * 12 + 2 * 12);
  REQUIRE(logs.size() == 5);
  CHECK(logs[0].starts_with("epoch 1/3: loss "));
  CHECK(logs[4].starts_with("autoencoder epoch 2/2: reconstruction error "));

  const auto card = load_card(out / "model.yaml");
  CHECK(card == result.card);
  CHECK(card.name == "toy");
  const auto info = mlctl::data::read_dataset_info(data);
  REQUIRE(card.lineage.dataset.has_value());
  CHECK(card.lineage.dataset->digest == info["digest"].get<std::string>());
  CHECK(card.lineage.dataset->source == info["source"]);
  const auto& hp = *card.lineage.hyperparameters;
  CHECK(hp.hidden == std::vector<int>{32, 16});
  CHECK(hp.optimizer == "adam");
  CHECK(hp.steps == 36);
  CHECK(hp.epochs == 3);
  REQUIRE(hp.autoencoder.has_value());
  CHECK(hp.autoencoder->layers == std::vector<int>{784, 32, 8, 32, 784});
  CHECK(*card.lineage.seed == 42);
  CHECK(*card.lineage.threads == 1);
  CHECK(*card.lineage.training_seconds > 0);

  const auto& metrics = *card.metrics;
  REQUIRE(metrics.epochs.size() == 3);
  CHECK(metrics.test_accuracy > 0.9);
  CHECK(metrics.epochs.back().test_accuracy == doctest::Approx(metrics.test_accuracy));
  REQUIRE(metrics.confusion_matrix.size() == 10);
  std::int64_t total = 0;
  std::int64_t diagonal = 0;
  for (std::size_t i = 0; i < 10; ++i) {
    for (std::size_t j = 0; j < 10; ++j) {
      total += metrics.confusion_matrix[i][j];
    }
    diagonal += metrics.confusion_matrix[i][i];
  }
  CHECK(total == 200);
  CHECK(static_cast<double>(diagonal) / 200.0 == doctest::Approx(metrics.test_accuracy));

  REQUIRE(card.monitoring.has_value());
  const auto& r = card.monitoring->reconstruction;
  CHECK(r.p50 > 0);
  CHECK(r.p50 <= r.p90);
  CHECK(r.p90 <= r.p99);
  CHECK(r.p99 <= r.max);
  CHECK(r.threshold == r.p99);

  CHECK(nlohmann::json::parse(read_file(out / "profile.json")) == info["profile"]);

  // The exported classifier, run by the ONNX runtime, predicts what the trainer measured.
  const auto model = mlctl::onnx::Model::load_file(out / "model.onnx");
  const auto test = mlctl::data::read_dataset_split(data, "test");
  mlctl::onnx::Tensor input{"input", "FP32", {200, 784}, {}, {}};
  for (const auto px : test.x) {
    input.f32.push_back(static_cast<float>(px) * static_cast<float>(k_default_input_scale));
  }
  const auto outputs = model.run({input});
  REQUIRE(outputs.size() == 2);
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < 200; ++i) {
    correct += outputs[1].i64[i] == test.y[i] ? 1 : 0;
  }
  CHECK(static_cast<double>(correct) / 200.0 == doctest::Approx(metrics.test_accuracy));

  const auto ae = mlctl::onnx::Model::load_file(out / "autoencoder.onnx");
  CHECK(ae.outputs().at(0).name == "reconstruction");
}

TEST_CASE("train_model is deterministic and --no-autoencoder leaves the classifier unchanged") {
  TempDir tmp;
  const auto data = make_dataset(tmp.path() / "data");
  const auto a = train_model(small_options(data, tmp.path() / "a"), {}, {});
  const auto b = train_model(small_options(data, tmp.path() / "b"), {}, {});
  CHECK(read_file(tmp.path() / "a" / "model.onnx") == read_file(tmp.path() / "b" / "model.onnx"));
  CHECK(read_file(tmp.path() / "a" / "autoencoder.onnx") ==
        read_file(tmp.path() / "b" / "autoencoder.onnx"));
  CHECK(a.card.metrics->test_accuracy == b.card.metrics->test_accuracy);
  CHECK(a.card.metrics->confusion_matrix == b.card.metrics->confusion_matrix);
  CHECK(a.card.monitoring == b.card.monitoring);

  auto no_ae = small_options(data, tmp.path() / "c");
  no_ae.autoencoder = false;
  const auto c = train_model(no_ae, {}, {});
  CHECK_FALSE(fs::exists(tmp.path() / "c" / "autoencoder.onnx"));
  CHECK_FALSE(c.card.monitoring.has_value());
  CHECK_FALSE(c.card.lineage.hyperparameters->autoencoder.has_value());
  CHECK(read_file(tmp.path() / "a" / "model.onnx") == read_file(tmp.path() / "c" / "model.onnx"));

  auto other_seed = small_options(data, tmp.path() / "d");
  other_seed.seed = 43;
  other_seed.autoencoder = false;
  train_model(other_seed, {}, {});
  CHECK(read_file(tmp.path() / "a" / "model.onnx") != read_file(tmp.path() / "d" / "model.onnx"));
}

TEST_CASE("--steps counts optimizer steps and the last epoch may be partial") {
  TempDir tmp;
  const auto data = make_dataset(tmp.path() / "data");
  auto o = small_options(data, tmp.path() / "m");
  o.steps = 15; // 12 per epoch
  o.autoencoder = false;
  const auto result = train_model(o, {}, {});
  CHECK(result.card.lineage.hyperparameters->steps == 15);
  CHECK(result.card.lineage.hyperparameters->epochs == 2);
  CHECK(result.card.metrics->epochs.size() == 2);
}

TEST_CASE("a diverging run leaves no model directory and keeps an existing one") {
  TempDir tmp;
  const auto data = make_dataset(tmp.path() / "data");
  auto o = small_options(data, tmp.path() / "m");
  o.optimizer = mlctl::nn::OptimizerKind::sgd;
  o.learning_rate = 1e6;
  o.epochs = 20;
  CHECK_THROWS_WITH_AS(train_model(o, {}, {}), doctest::Contains("training diverged at step "),
                       mlctl::Error);
  CHECK_FALSE(fs::exists(tmp.path() / "m"));
  for (const auto& entry : fs::directory_iterator(tmp.path())) {
    CHECK(entry.path().filename() == "data"); // no staging directory left behind
  }
  mlctl::util::write_file_atomic(tmp.path() / "m" / "model.yaml", "old");
  CHECK_THROWS_AS(train_model(o, {}, {}), mlctl::Error);
  CHECK(read_file(tmp.path() / "m" / "model.yaml") == "old");
}

TEST_CASE("train_model refuses bad options and missing datasets") {
  TempDir tmp;
  auto o = small_options(tmp.path() / "nothing", tmp.path() / "m");
  CHECK_THROWS_WITH_AS(train_model(o, {}, {}), doctest::Contains("no such dataset directory"),
                       mlctl::Error);
  o.learning_rate = 0;
  CHECK_THROWS_WITH_AS(train_model(o, {}, {}), "learning rate must be a positive number, got 0",
                       mlctl::Error);
  o.learning_rate = 0.01;
  o.hidden = {};
  CHECK_THROWS_WITH_AS(train_model(o, {}, {}), "hidden: expected at least one hidden layer",
                       mlctl::Error);
}

TEST_CASE("model_dir_digest hashes the sorted sha256sum listing") {
  TempDir tmp;
  mlctl::util::write_file_atomic(tmp.path() / "b.txt", "bee");
  mlctl::util::write_file_atomic(tmp.path() / "a.txt", "ay");
  const std::string listing = mlctl::artifact::sha256_hex("ay") + "  a.txt\n" +
                              mlctl::artifact::sha256_hex("bee") + "  b.txt\n";
  CHECK(model_dir_digest(tmp.path()) == "sha256:" + mlctl::artifact::sha256_hex(listing));
  CHECK_THROWS_AS(model_dir_digest(tmp.path() / "missing"), mlctl::Error);
}

TEST_CASE("quantile interpolates like numpy") {
  const std::vector<float> v = {1, 2, 3, 4, 5};
  CHECK(quantile(v, 0.5) == 3.0);
  CHECK(quantile(v, 0.9) == doctest::Approx(4.6));
  CHECK(quantile(v, 1.0) == 5.0);
  CHECK(quantile(v, 0.0) == 1.0);
  CHECK(quantile({7.0F}, 0.99) == 7.0);
}

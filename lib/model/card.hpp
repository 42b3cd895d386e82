#pragma once
// The model card, `model.yaml` in a model directory: the contract clients code against
// (tensor names, datatypes, shapes, labels, preprocessing), the lineage that makes the model
// reproducible, the training metrics and the monitoring settings (the autoencoder and its
// reconstruction threshold). Kubernetes-style document: apiVersion mlctl/v1, kind Model.

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mlctl::onnx {
class Model;
}

namespace mlctl::model {

inline constexpr std::string_view k_card_api_version = "mlctl/v1";
inline constexpr std::string_view k_card_kind = "Model";
inline constexpr double k_default_input_scale = 1.0 / 255.0;

struct TensorSpec {
  std::string name;
  std::string datatype;            // "FP32", "INT64", ...
  std::vector<std::int64_t> shape; // -1 for the batch dimension
  bool operator==(const TensorSpec&) const = default;
};

struct Contract {
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  std::vector<std::string> labels;            // class index -> label
  double input_scale = k_default_input_scale; // uint8 pixel * input_scale -> float input
  bool operator==(const Contract&) const = default;
};

struct AutoencoderHyperparameters {
  std::vector<int> layers; // e.g. 784,128,32,128,784
  std::string optimizer;
  double learning_rate = 0;
  std::int64_t batch_size = 0;
  std::int64_t epochs = 0;
  bool operator==(const AutoencoderHyperparameters&) const = default;
};

struct Hyperparameters {
  std::vector<int> hidden;
  std::string optimizer;
  double learning_rate = 0;
  std::int64_t batch_size = 0;
  std::int64_t steps = 0;  // optimizer steps actually run
  std::int64_t epochs = 0; // passes over the training split (the last one may be partial)
  std::optional<AutoencoderHyperparameters> autoencoder;
  bool operator==(const Hyperparameters&) const = default;
};

struct DatasetRef {
  std::string digest;    // "sha256:..." of the dataset content
  nlohmann::json source; // dataset.json's `source`, as recorded there
  std::string path;      // the dataset directory given to `mlctl train`
  bool operator==(const DatasetRef&) const = default;
};

struct Lineage {
  bool imported = false; // true for a bare .onnx made elsewhere: nothing else is known
  std::optional<DatasetRef> dataset;
  std::optional<Hyperparameters> hyperparameters;
  std::optional<std::uint64_t> seed;
  std::optional<std::int64_t> threads;
  std::string mlctl_version;
  std::string git_commit;
  std::optional<double> training_seconds;
  bool operator==(const Lineage&) const = default;
};

struct EpochMetrics {
  std::int64_t epoch = 0;
  double train_loss = 0;
  double train_accuracy = 0;
  double test_loss = 0;
  double test_accuracy = 0;
  double seconds = 0; // wall time of the epoch's optimizer steps
  bool operator==(const EpochMetrics&) const = default;
};

struct Metrics {
  double train_accuracy = 0;
  double test_accuracy = 0;
  double test_loss = 0;
  std::vector<EpochMetrics> epochs;
  std::vector<std::vector<std::int64_t>> confusion_matrix; // [true class][predicted class]
  bool operator==(const Metrics&) const = default;
};

struct Reconstruction {
  double threshold = 0; // a request whose reconstruction error exceeds it counts as drift
  double p50 = 0;
  double p90 = 0;
  double p99 = 0;
  double max = 0;
  bool operator==(const Reconstruction&) const = default;
};

struct Monitoring {
  std::string autoencoder = "autoencoder.onnx"; // file in the model directory
  Reconstruction reconstruction;
  bool operator==(const Monitoring&) const = default;
};

struct ModelCard {
  std::string name;
  Contract contract;
  Lineage lineage;
  std::optional<Metrics> metrics;
  std::optional<Monitoring> monitoring; // absent without an autoencoder
  bool operator==(const ModelCard&) const = default;
};

// Returns the classifier contract mlctl trains: input `input` FP32 [-1, features], outputs
// `probabilities` FP32 [-1, classes] and `class` INT64 [-1], labels "0".."classes-1".
Contract classifier_contract(int features, int classes);

// Return the JSON forms of the card's sections (keys as in model.yaml), for `-o json` output.
nlohmann::json metrics_to_json(const Metrics& metrics);
nlohmann::json monitoring_to_json(const Monitoring& monitoring);

// Returns `card` as a model.yaml document (fields in a fixed order, floats in their shortest
// round-trip form). The same card gives the same bytes.
std::string card_to_yaml(const ModelCard& card);
// Parses a model.yaml document; `name` (usually the file name) starts every error message.
// Throws `Error{invalid_input}` naming the field: "model.yaml: spec.contract.inputs[0].shape:
// expected a list of integers", "model.yaml: apiVersion: expected mlctl/v1, got 'v2'".
ModelCard card_from_yaml(std::string_view text, std::string_view name);
// Reads and parses `model_yaml`; errors start with its file name. Throws like
// `card_from_yaml`, plus `Error{not_found}`/`Error{io}` from reading.
ModelCard load_card(const std::filesystem::path& model_yaml);
// Returns the card of a bare .onnx made elsewhere: the contract from the graph's inputs and
// outputs, labels "0".."N-1" where N is the last dimension of the first output (none when it
// is dynamic), `lineage.imported = true`, no metrics, no monitoring.
ModelCard card_from_onnx(const onnx::Model& model, std::string_view name);

} // namespace mlctl::model

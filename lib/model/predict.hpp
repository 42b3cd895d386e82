#pragma once
// Offline prediction on uint8 images: a model directory (model.yaml + model.onnx) or a bare
// .onnx exported elsewhere, its contract, a batch classifier, accuracy and confusion matrix on
// a labelled split; pictures as input come from picture.hpp.

#include "data/dataset.hpp"
#include "model/card.hpp"
#include "model/picture.hpp"
#include "onnx/runtime.hpp"
#include "util/progress.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace mlctl::model {

struct Prediction {
  std::int64_t label_index = 0;     // argmax of the scores
  std::vector<float> probabilities; // one per class, summing to 1
};

// A classifier ready to run on uint8 images: the image's pixels (C order) times
// `contract.input_scale`, as FP32, reshaped to the graph input's shape (N×784, N×28×28,
// N×1×28×28, ...); the class is the argmax of the first FP32 output. Outputs that are not
// already probabilities (logits, log-probabilities) go through a softmax for `probabilities`.
class Predictor {
public:
  // Opens a model directory (its model.yaml and model.onnx) or a bare .onnx file (contract
  // from the graph via `card_from_onnx`). Throws `Error{not_found}` "<path>: no such file or
  // directory" / "<dir>: not a model directory (no model.yaml)", the errors of `load_card` and
  // `onnx::Model::load_file`, and `Error{invalid_input}` when the model cannot classify images:
  // "<file>: input 'x' is INT64; images need an FP32 input", "<file>: model.yaml names input
  // 'x', which the graph does not have", no FP32 output, a batch dimension other than the first.
  static Predictor open(const std::filesystem::path& path);

  const ModelCard& card() const { return m_card; }
  const onnx::Model& model() const { return m_model; }
  // Values per image the model's input takes (e.g. 784).
  std::size_t pixels() const { return m_pixels; }
  // Image rows × columns the input implies: its last two dimensions, or 28×28 for 784 values.
  std::size_t rows() const { return m_rows; }
  std::size_t cols() const { return m_cols; }
  std::size_t classes() const { return m_classes; }
  // Class labels: the card's, or "0".."classes-1".
  const std::vector<std::string>& labels() const { return m_labels; }

  // Classifies `count` images of `pixels()` bytes each, in batches. Throws
  // `Error{invalid_input}` when `images` does not hold count × pixels() bytes, and the errors
  // of `onnx::Model::run`.
  std::vector<Prediction> predict(std::span<const std::uint8_t> images, std::size_t count) const;

private:
  Predictor(std::string name, onnx::Model model, ModelCard card);

  std::string m_name; // for messages: the file or directory name
  onnx::Model m_model;
  ModelCard m_card;
  std::string m_input;      // graph input fed with the images
  std::size_t m_output = 0; // index in model.outputs() of the scores
  bool m_batched = true;    // false: a static batch of one image per run
  std::size_t m_pixels = 0;
  std::size_t m_rows = 0;
  std::size_t m_cols = 0;
  std::size_t m_classes = 0;
  std::vector<std::string> m_labels;
};

struct Evaluation {
  std::size_t count = 0;
  std::size_t correct = 0;
  double accuracy = 0;                                     // correct / count, in [0, 1]
  std::vector<std::vector<std::int64_t>> confusion_matrix; // [true class][predicted class]
};

// Classifies the first `limit` images of `split` (all when `limit` is 0) and compares with
// the labels. Progress: stage "predict", unit "img". Throws `Error{invalid_input}` when the
// images do not have the model's `pixels()` or a label is not below `classes()`, and the
// errors of `Predictor::predict`.
Evaluation evaluate(const Predictor& predictor, const data::LabeledImages& split, std::size_t limit,
                    const util::ProgressFn& progress);

// The rows × cols of one image from the dims of a model input without its batch: the last two
// when both are above 1 (28×28, 1×28×28), 28×28 for a flat 784, else one row of all.
std::pair<std::size_t, std::size_t> image_dims(std::span<const std::int64_t> item);

// Classifies one image. Throws `Error{invalid_input}` "<name>: the image is 32×32; the model
// takes 28×28 images" when its size does not match `predictor.rows()` × `cols()`.
Prediction classify_image(const Predictor& predictor, const GrayImage& image,
                          std::string_view name);

} // namespace mlctl::model

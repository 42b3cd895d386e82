#include "model/predict.hpp"

#include "util/error.hpp"

#include <algorithm>
#include <cmath>
#include <tuple>

namespace mlctl::model {

namespace {

namespace fs = std::filesystem;

// Images per call of the runtime: large enough for the matrix kernel, small enough that the
// scratch memory of a wide model stays modest.
constexpr std::size_t k_batch = 256;

[[noreturn]] void refuse(const std::string& name, const std::string& what) {
  throw Error(ErrorKind::invalid_input, name + ": " + what);
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    s += (i ? "," : "") + std::to_string(shape[i]);
  }
  return s + "]";
}

// Returns true when `scores` already is a probability distribution (a Softmax output).
bool is_distribution(std::span<const float> scores) {
  double sum = 0;
  for (const float v : scores) {
    if (!(v >= 0.0f && v <= 1.0f)) {
      return false;
    }
    sum += v;
  }
  return std::fabs(sum - 1.0) <= 1e-3;
}

Prediction to_prediction(std::span<const float> scores) {
  Prediction p;
  p.label_index = std::max_element(scores.begin(), scores.end()) - scores.begin();
  if (is_distribution(scores)) {
    p.probabilities.assign(scores.begin(), scores.end());
    return p;
  }
  // Logits or log-probabilities: softmax gives the probabilities in both cases.
  const double max = scores[static_cast<std::size_t>(p.label_index)];
  std::vector<double> e(scores.size());
  double sum = 0;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    e[i] = std::exp(static_cast<double>(scores[i]) - max);
    sum += e[i];
  }
  p.probabilities.resize(scores.size());
  for (std::size_t i = 0; i < scores.size(); ++i) {
    p.probabilities[i] = static_cast<float>(e[i] / sum);
  }
  return p;
}

} // namespace

std::pair<std::size_t, std::size_t> image_dims(std::span<const std::int64_t> item) {
  if (item.size() >= 2 && item[item.size() - 2] > 1 && item.back() > 1) {
    return {static_cast<std::size_t>(item[item.size() - 2]), static_cast<std::size_t>(item.back())};
  }
  std::size_t pixels = 1;
  for (const auto d : item) {
    pixels *= static_cast<std::size_t>(std::max<std::int64_t>(d, 1));
  }
  return pixels == 784 ? std::pair<std::size_t, std::size_t>{28, 28}
                       : std::pair<std::size_t, std::size_t>{1, pixels};
}

Predictor::Predictor(std::string name, onnx::Model model, ModelCard card)
    : m_name(std::move(name)), m_model(std::move(model)), m_card(std::move(card)) {
  const auto& inputs = m_model.inputs();
  const std::string file = m_model.name();
  if (inputs.size() != 1) {
    refuse(file, "the model has " + std::to_string(inputs.size()) +
                     " inputs; classifying images needs exactly one");
  }
  m_input = inputs[0].name;
  if (!m_card.contract.inputs.empty() && m_card.contract.inputs[0].name != m_input) {
    refuse(m_name, "model.yaml names input '" + m_card.contract.inputs[0].name +
                       "', which the graph does not have");
  }
  if (inputs[0].datatype != "FP32") {
    refuse(file,
           "input '" + m_input + "' is " + inputs[0].datatype + "; images need an FP32 input");
  }
  const auto& shape = inputs[0].shape;
  const auto dynamic = std::count(shape.begin(), shape.end(), -1);
  if (shape.empty() || dynamic > 1 || (dynamic == 1 && shape[0] != -1)) {
    refuse(file, "input '" + m_input + "' has shape " + shape_text(shape) +
                     "; images need the batch dimension first");
  }
  m_batched = dynamic == 1;
  if (!m_batched && shape.size() >= 2 && shape[0] != 1) {
    refuse(file,
           "input '" + m_input + "' has a fixed batch of " + std::to_string(shape[0]) + " images");
  }
  // The dims of one image: all but a leading batch (or a leading static 1).
  const std::vector<std::int64_t> item(shape.begin() + (shape.size() >= 2 ? 1 : 0), shape.end());
  m_pixels = 1;
  for (const auto d : item) {
    m_pixels *= static_cast<std::size_t>(d);
  }
  std::tie(m_rows, m_cols) = image_dims(item);

  // The scores: the contract's first output, or the first FP32 output when that one is not.
  const auto& outputs = m_model.outputs();
  std::size_t chosen = outputs.size();
  if (!m_card.contract.outputs.empty()) {
    for (std::size_t i = 0; i < outputs.size(); ++i) {
      if (outputs[i].name == m_card.contract.outputs[0].name && outputs[i].datatype == "FP32") {
        chosen = i;
      }
    }
  }
  for (std::size_t i = 0; chosen == outputs.size() && i < outputs.size(); ++i) {
    if (outputs[i].datatype == "FP32") {
      chosen = i;
    }
  }
  if (chosen == outputs.size()) {
    refuse(file, "the model has no FP32 output to take class scores from");
  }
  m_output = chosen;
  const auto& out_shape = outputs[chosen].shape;
  m_classes = 1;
  for (std::size_t i = (out_shape.size() >= 2 ? 1 : 0); i < out_shape.size(); ++i) {
    if (out_shape[i] < 0) {
      refuse(file, "output '" + outputs[chosen].name + "' has shape " + shape_text(out_shape) +
                       "; class scores need a fixed number of classes");
    }
    m_classes *= static_cast<std::size_t>(out_shape[i]);
  }
  if (out_shape.size() < 2 && m_batched) {
    refuse(file, "output '" + outputs[chosen].name + "' has shape " + shape_text(out_shape) +
                     "; class scores need a class dimension");
  }
  if (m_card.contract.labels.size() == m_classes) {
    m_labels = m_card.contract.labels;
  } else {
    for (std::size_t i = 0; i < m_classes; ++i) {
      m_labels.push_back(std::to_string(i));
    }
  }
}

Predictor Predictor::open(const std::filesystem::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const auto yaml = path / "model.yaml";
    if (!fs::exists(yaml, ec)) {
      throw Error(ErrorKind::not_found, path.string() + ": not a model directory (no model.yaml)");
    }
    ModelCard card = load_card(yaml);
    onnx::Model model = onnx::Model::load_file(path / "model.onnx");
    return Predictor(path.string(), std::move(model), std::move(card));
  }
  if (!fs::exists(path, ec)) {
    throw Error(ErrorKind::not_found, path.string() + ": no such file or directory");
  }
  onnx::Model model = onnx::Model::load_file(path);
  ModelCard card = card_from_onnx(model, path.stem().string());
  return Predictor(path.string(), std::move(model), std::move(card));
}

std::vector<Prediction> Predictor::predict(std::span<const std::uint8_t> images,
                                           std::size_t count) const {
  if (images.size() != count * m_pixels) {
    refuse(m_name, "got " + std::to_string(images.size()) + " pixels for " + std::to_string(count) +
                       " images of " + std::to_string(m_pixels));
  }
  const float scale = static_cast<float>(m_card.contract.input_scale);
  const auto& shape = m_model.inputs()[0].shape;
  const std::size_t per_run = m_batched ? k_batch : 1;
  std::vector<Prediction> predictions;
  predictions.reserve(count);
  onnx::Tensor input;
  input.name = m_input;
  input.datatype = "FP32";
  for (std::size_t first = 0; first < count; first += per_run) {
    const std::size_t n = std::min(per_run, count - first);
    input.shape = shape;
    if (m_batched) {
      input.shape[0] = static_cast<std::int64_t>(n);
    }
    input.f32.resize(n * m_pixels);
    const std::uint8_t* src = images.data() + first * m_pixels;
    for (std::size_t i = 0; i < n * m_pixels; ++i) {
      input.f32[i] = static_cast<float>(src[i]) * scale;
    }
    const auto outputs = m_model.run({input});
    const auto& scores = outputs[m_output].f32;
    if (scores.size() != n * m_classes) {
      throw Error(ErrorKind::internal, m_name + ": the model returned " +
                                           std::to_string(scores.size()) + " scores for " +
                                           std::to_string(n) + " images");
    }
    for (std::size_t i = 0; i < n; ++i) {
      predictions.push_back(
          to_prediction(std::span<const float>(scores).subspan(i * m_classes, m_classes)));
    }
  }
  return predictions;
}

Evaluation evaluate(const Predictor& predictor, const data::LabeledImages& split, std::size_t limit,
                    const util::ProgressFn& progress) {
  const std::size_t pixels = split.rows * split.cols;
  if (pixels != predictor.pixels()) {
    throw Error(ErrorKind::invalid_input, "the images are " + std::to_string(split.rows) + "×" +
                                              std::to_string(split.cols) + " but the model takes " +
                                              std::to_string(predictor.pixels()) +
                                              " values per image");
  }
  Evaluation result;
  result.count = limit == 0 ? split.count : std::min(limit, split.count);
  const std::size_t classes = predictor.classes();
  result.confusion_matrix.assign(classes, std::vector<std::int64_t>(classes, 0));
  for (std::size_t i = 0; i < result.count; ++i) {
    if (split.y[i] >= classes) {
      throw Error(ErrorKind::invalid_input, "label " + std::to_string(split.y[i]) + " of image " +
                                                std::to_string(i) + " is outside the model's " +
                                                std::to_string(classes) + " classes");
    }
  }
  constexpr std::size_t k_chunk = 4096;
  for (std::size_t first = 0; first < result.count; first += k_chunk) {
    const std::size_t n = std::min(k_chunk, result.count - first);
    const auto predictions = predictor.predict(
        std::span<const std::uint8_t>(split.x).subspan(first * pixels, n * pixels), n);
    for (std::size_t i = 0; i < n; ++i) {
      const auto truth = split.y[first + i];
      const auto guess = static_cast<std::size_t>(predictions[i].label_index);
      ++result.confusion_matrix[truth][guess];
      result.correct += truth == guess ? 1 : 0;
    }
    if (progress) {
      progress({"predict", first + n, result.count, "img", ""});
    }
  }
  result.accuracy = result.count == 0
                        ? 0.0
                        : static_cast<double>(result.correct) / static_cast<double>(result.count);
  return result;
}

Prediction classify_image(const Predictor& predictor, const GrayImage& image,
                          std::string_view name) {
  if (image.rows * image.cols != predictor.pixels() ||
      (predictor.rows() > 1 && image.rows != predictor.rows())) {
    refuse(std::string(name), "the image is " + std::to_string(image.cols) + "×" +
                                  std::to_string(image.rows) + "; the model takes " +
                                  std::to_string(predictor.cols()) + "×" +
                                  std::to_string(predictor.rows()) + " images");
  }
  return predictor.predict(image.pixels, 1).front();
}

} // namespace mlctl::model

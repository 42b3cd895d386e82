#include "model/card.hpp"

#include "onnx/runtime.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/yaml_json.hpp"

#include <charconv>
#include <cmath>
#include <limits>
#include <yaml-cpp/yaml.h>

namespace mlctl::model {

namespace {

void emit_double(YAML::Emitter& out, double value) {
  out << util::format_yaml_double(value);
}

template <class T> void emit_flow_list(YAML::Emitter& out, const std::vector<T>& values) {
  out << YAML::Flow << YAML::BeginSeq;
  for (const auto& v : values) {
    out << v;
  }
  out << YAML::EndSeq;
}

void emit_tensors(YAML::Emitter& out, const std::vector<TensorSpec>& tensors) {
  out << YAML::BeginSeq;
  for (const auto& t : tensors) {
    out << YAML::Flow << YAML::BeginMap;
    out << YAML::Key << "name" << YAML::Value << t.name;
    out << YAML::Key << "datatype" << YAML::Value << t.datatype;
    out << YAML::Key << "shape" << YAML::Value;
    emit_flow_list(out, t.shape);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
}

void emit_contract(YAML::Emitter& out, const Contract& c) {
  out << YAML::BeginMap;
  out << YAML::Key << "inputs" << YAML::Value;
  emit_tensors(out, c.inputs);
  out << YAML::Key << "outputs" << YAML::Value;
  emit_tensors(out, c.outputs);
  out << YAML::Key << "labels" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const auto& label : c.labels) {
    out << YAML::DoubleQuoted << label;
  }
  out << YAML::EndSeq;
  out << YAML::Key << "preprocessing" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "input_scale" << YAML::Value;
  emit_double(out, c.input_scale);
  out << YAML::EndMap;
  out << YAML::EndMap;
}

void emit_hyperparameters(YAML::Emitter& out, const Hyperparameters& h) {
  out << YAML::BeginMap;
  out << YAML::Key << "hidden" << YAML::Value;
  emit_flow_list(out, h.hidden);
  out << YAML::Key << "optimizer" << YAML::Value << h.optimizer;
  out << YAML::Key << "learning_rate" << YAML::Value;
  emit_double(out, h.learning_rate);
  out << YAML::Key << "batch_size" << YAML::Value << h.batch_size;
  out << YAML::Key << "steps" << YAML::Value << h.steps;
  out << YAML::Key << "epochs" << YAML::Value << h.epochs;
  if (h.autoencoder) {
    const auto& a = *h.autoencoder;
    out << YAML::Key << "autoencoder" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "layers" << YAML::Value;
    emit_flow_list(out, a.layers);
    out << YAML::Key << "optimizer" << YAML::Value << a.optimizer;
    out << YAML::Key << "learning_rate" << YAML::Value;
    emit_double(out, a.learning_rate);
    out << YAML::Key << "batch_size" << YAML::Value << a.batch_size;
    out << YAML::Key << "epochs" << YAML::Value << a.epochs;
    out << YAML::EndMap;
  }
  out << YAML::EndMap;
}

void emit_lineage(YAML::Emitter& out, const Lineage& l) {
  out << YAML::BeginMap;
  out << YAML::Key << "imported" << YAML::Value << (l.imported ? "true" : "false");
  if (l.dataset) {
    out << YAML::Key << "dataset" << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "digest" << YAML::Value << YAML::DoubleQuoted << l.dataset->digest;
    out << YAML::Key << "source" << YAML::Value;
    util::emit_yaml(out, l.dataset->source);
    out << YAML::Key << "path" << YAML::Value << YAML::DoubleQuoted << l.dataset->path;
    out << YAML::EndMap;
  }
  if (l.hyperparameters) {
    out << YAML::Key << "hyperparameters" << YAML::Value;
    emit_hyperparameters(out, *l.hyperparameters);
  }
  if (l.seed) {
    out << YAML::Key << "seed" << YAML::Value << *l.seed;
  }
  if (l.threads) {
    out << YAML::Key << "threads" << YAML::Value << *l.threads;
  }
  out << YAML::Key << "mlctl_version" << YAML::Value << YAML::DoubleQuoted << l.mlctl_version;
  out << YAML::Key << "git_commit" << YAML::Value << YAML::DoubleQuoted << l.git_commit;
  if (l.training_seconds) {
    out << YAML::Key << "training_seconds" << YAML::Value;
    emit_double(out, *l.training_seconds);
  }
  out << YAML::EndMap;
}

void emit_metrics(YAML::Emitter& out, const Metrics& m) {
  out << YAML::BeginMap;
  out << YAML::Key << "train_accuracy" << YAML::Value;
  emit_double(out, m.train_accuracy);
  out << YAML::Key << "test_accuracy" << YAML::Value;
  emit_double(out, m.test_accuracy);
  out << YAML::Key << "test_loss" << YAML::Value;
  emit_double(out, m.test_loss);
  out << YAML::Key << "epochs" << YAML::Value << YAML::BeginSeq;
  for (const auto& e : m.epochs) {
    out << YAML::Flow << YAML::BeginMap;
    out << YAML::Key << "epoch" << YAML::Value << e.epoch;
    out << YAML::Key << "train_loss" << YAML::Value;
    emit_double(out, e.train_loss);
    out << YAML::Key << "train_accuracy" << YAML::Value;
    emit_double(out, e.train_accuracy);
    out << YAML::Key << "test_loss" << YAML::Value;
    emit_double(out, e.test_loss);
    out << YAML::Key << "test_accuracy" << YAML::Value;
    emit_double(out, e.test_accuracy);
    out << YAML::Key << "seconds" << YAML::Value;
    emit_double(out, e.seconds);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
  out << YAML::Key << "confusion_matrix" << YAML::Value << YAML::BeginSeq;
  for (const auto& row : m.confusion_matrix) {
    emit_flow_list(out, row);
  }
  out << YAML::EndSeq;
  out << YAML::EndMap;
}

void emit_monitoring(YAML::Emitter& out, const Monitoring& m) {
  const auto& r = m.reconstruction;
  out << YAML::BeginMap;
  out << YAML::Key << "autoencoder" << YAML::Value << m.autoencoder;
  out << YAML::Key << "reconstruction" << YAML::Value << YAML::BeginMap;
  const std::pair<const char*, double> fields[] = {
      {"threshold", r.threshold}, {"p50", r.p50}, {"p90", r.p90}, {"p99", r.p99}, {"max", r.max}};
  for (const auto& [key, value] : fields) {
    out << YAML::Key << key << YAML::Value;
    emit_double(out, value);
  }
  out << YAML::EndMap;
  out << YAML::EndMap;
}

// --- reading ----------------------------------------------------------------------------

// Reads typed values out of a YAML tree; every error names the document and the field path.
class Reader {
public:
  explicit Reader(std::string_view name) : m_name(name) {}

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw Error(ErrorKind::invalid_input, m_name + ": " + path + ": " + what);
  }

  YAML::Node require(const YAML::Node& parent, const std::string& path, const char* key) const {
    const YAML::Node node = parent[key];
    if (!node.IsDefined() || node.IsNull()) {
      fail(join(path, key), "missing");
    }
    return node;
  }

  static std::string join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }

  YAML::Node map(const YAML::Node& node, const std::string& path) const {
    if (!node.IsMap()) {
      fail(path, "expected a mapping");
    }
    return node;
  }

  std::string string(const YAML::Node& node, const std::string& path) const {
    if (!node.IsScalar()) {
      fail(path, "expected a string");
    }
    return node.Scalar();
  }

  double number(const YAML::Node& node, const std::string& path) const {
    if (node.IsScalar()) {
      const std::string& s = node.Scalar();
      if (s == ".nan" || s == ".NaN" || s == ".NAN") {
        return std::numeric_limits<double>::quiet_NaN();
      }
      if (s == ".inf" || s == "+.inf" || s == ".Inf") {
        return std::numeric_limits<double>::infinity();
      }
      if (s == "-.inf" || s == "-.Inf") {
        return -std::numeric_limits<double>::infinity();
      }
      double value = 0;
      const char* begin = s.data() + (s.starts_with('+') ? 1 : 0);
      const auto [end, ec] = std::from_chars(begin, s.data() + s.size(), value);
      if (ec == std::errc() && end == s.data() + s.size() && node.Tag() != "!") {
        return value;
      }
    }
    fail(path, "expected a number");
  }

  std::int64_t integer(const YAML::Node& node, const std::string& path) const {
    if (node.IsScalar() && node.Tag() != "!") {
      const std::string& s = node.Scalar();
      std::int64_t value = 0;
      const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
      if (ec == std::errc() && end == s.data() + s.size()) {
        return value;
      }
    }
    fail(path, "expected an integer");
  }

  bool boolean(const YAML::Node& node, const std::string& path) const {
    if (node.IsScalar() && node.Tag() != "!") {
      if (node.Scalar() == "true") {
        return true;
      }
      if (node.Scalar() == "false") {
        return false;
      }
    }
    fail(path, "expected true or false");
  }

  std::vector<std::int64_t> integers(const YAML::Node& node, const std::string& path) const {
    if (!node.IsSequence()) {
      fail(path, "expected a list of integers");
    }
    std::vector<std::int64_t> values;
    for (std::size_t i = 0; i < node.size(); ++i) {
      const YAML::Node item = node[i];
      if (!item.IsScalar()) {
        fail(path, "expected a list of integers");
      }
      std::int64_t value = 0;
      const std::string& s = item.Scalar();
      const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
      if (ec != std::errc() || end != s.data() + s.size() || item.Tag() == "!") {
        fail(path, "expected a list of integers");
      }
      values.push_back(value);
    }
    return values;
  }

  std::vector<int> ints(const YAML::Node& node, const std::string& path) const {
    std::vector<int> values;
    for (const auto v : integers(node, path)) {
      if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
        fail(path, "value out of range");
      }
      values.push_back(static_cast<int>(v));
    }
    return values;
  }

  YAML::Node sequence(const YAML::Node& node, const std::string& path) const {
    if (!node.IsSequence()) {
      fail(path, "expected a list");
    }
    return node;
  }

  nlohmann::json json(const YAML::Node& node) const { return util::yaml_to_json(node); }

private:
  std::string m_name;
};

std::vector<TensorSpec> read_tensors(const Reader& r, const YAML::Node& node,
                                     const std::string& path) {
  std::vector<TensorSpec> tensors;
  r.sequence(node, path);
  for (std::size_t i = 0; i < node.size(); ++i) {
    const std::string p = path + "[" + std::to_string(i) + "]";
    const YAML::Node t = r.map(node[i], p);
    TensorSpec spec;
    spec.name = r.string(r.require(t, p, "name"), p + ".name");
    spec.datatype = r.string(r.require(t, p, "datatype"), p + ".datatype");
    spec.shape = r.integers(r.require(t, p, "shape"), p + ".shape");
    tensors.push_back(std::move(spec));
  }
  return tensors;
}

Contract read_contract(const Reader& r, const YAML::Node& node, const std::string& path) {
  r.map(node, path);
  Contract c;
  c.inputs = read_tensors(r, r.require(node, path, "inputs"), path + ".inputs");
  c.outputs = read_tensors(r, r.require(node, path, "outputs"), path + ".outputs");
  if (c.inputs.empty()) {
    r.fail(path + ".inputs", "expected at least one input");
  }
  if (c.outputs.empty()) {
    r.fail(path + ".outputs", "expected at least one output");
  }
  if (node["labels"]) {
    const auto labels = r.sequence(node["labels"], path + ".labels");
    for (std::size_t i = 0; i < labels.size(); ++i) {
      c.labels.push_back(r.string(labels[i], path + ".labels[" + std::to_string(i) + "]"));
    }
  }
  if (node["preprocessing"]) {
    const std::string p = path + ".preprocessing";
    const auto pre = r.map(node["preprocessing"], p);
    if (pre["input_scale"]) {
      c.input_scale = r.number(pre["input_scale"], p + ".input_scale");
      if (!(c.input_scale > 0) || !std::isfinite(c.input_scale)) {
        r.fail(p + ".input_scale", "must be a positive number");
      }
    }
  }
  return c;
}

Hyperparameters read_hyperparameters(const Reader& r, const YAML::Node& node,
                                     const std::string& path) {
  r.map(node, path);
  Hyperparameters h;
  h.hidden = r.ints(r.require(node, path, "hidden"), path + ".hidden");
  h.optimizer = r.string(r.require(node, path, "optimizer"), path + ".optimizer");
  h.learning_rate = r.number(r.require(node, path, "learning_rate"), path + ".learning_rate");
  h.batch_size = r.integer(r.require(node, path, "batch_size"), path + ".batch_size");
  h.steps = r.integer(r.require(node, path, "steps"), path + ".steps");
  h.epochs = r.integer(r.require(node, path, "epochs"), path + ".epochs");
  if (node["autoencoder"]) {
    const std::string p = path + ".autoencoder";
    const auto a = r.map(node["autoencoder"], p);
    AutoencoderHyperparameters ae;
    ae.layers = r.ints(r.require(a, p, "layers"), p + ".layers");
    ae.optimizer = r.string(r.require(a, p, "optimizer"), p + ".optimizer");
    ae.learning_rate = r.number(r.require(a, p, "learning_rate"), p + ".learning_rate");
    ae.batch_size = r.integer(r.require(a, p, "batch_size"), p + ".batch_size");
    ae.epochs = r.integer(r.require(a, p, "epochs"), p + ".epochs");
    h.autoencoder = std::move(ae);
  }
  return h;
}

Lineage read_lineage(const Reader& r, const YAML::Node& node, const std::string& path) {
  r.map(node, path);
  Lineage l;
  if (node["imported"]) {
    l.imported = r.boolean(node["imported"], path + ".imported");
  }
  if (node["dataset"]) {
    const std::string p = path + ".dataset";
    const auto d = r.map(node["dataset"], p);
    DatasetRef ref;
    ref.digest = r.string(r.require(d, p, "digest"), p + ".digest");
    ref.source = d["source"] ? r.json(d["source"]) : nlohmann::json();
    if (d["path"]) {
      ref.path = r.string(d["path"], p + ".path");
    }
    l.dataset = std::move(ref);
  }
  if (node["hyperparameters"]) {
    l.hyperparameters = read_hyperparameters(r, node["hyperparameters"], path + ".hyperparameters");
  }
  if (node["seed"]) {
    // A uint64 (from_chars of an unsigned type rejects signs).
    const std::string s = r.string(node["seed"], path + ".seed");
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc() || end != s.data() + s.size() || node["seed"].Tag() == "!") {
      r.fail(path + ".seed", "expected a non-negative integer");
    }
    l.seed = value;
  }
  if (node["threads"]) {
    l.threads = r.integer(node["threads"], path + ".threads");
  }
  if (node["mlctl_version"]) {
    l.mlctl_version = r.string(node["mlctl_version"], path + ".mlctl_version");
  }
  if (node["git_commit"]) {
    l.git_commit = r.string(node["git_commit"], path + ".git_commit");
  }
  if (node["training_seconds"]) {
    l.training_seconds = r.number(node["training_seconds"], path + ".training_seconds");
  }
  return l;
}

double read_number(const Reader& r, const YAML::Node& node, const std::string& path,
                   const char* key) {
  return r.number(r.require(node, path, key), Reader::join(path, key));
}

Metrics read_metrics(const Reader& r, const YAML::Node& node, const std::string& path) {
  r.map(node, path);
  Metrics m;
  m.train_accuracy = read_number(r, node, path, "train_accuracy");
  m.test_accuracy = read_number(r, node, path, "test_accuracy");
  m.test_loss = read_number(r, node, path, "test_loss");
  if (node["epochs"]) {
    const auto epochs = r.sequence(node["epochs"], path + ".epochs");
    for (std::size_t i = 0; i < epochs.size(); ++i) {
      const std::string p = path + ".epochs[" + std::to_string(i) + "]";
      const auto e = r.map(epochs[i], p);
      EpochMetrics em;
      em.epoch = r.integer(r.require(e, p, "epoch"), p + ".epoch");
      em.train_loss = read_number(r, e, p, "train_loss");
      em.train_accuracy = read_number(r, e, p, "train_accuracy");
      em.test_loss = read_number(r, e, p, "test_loss");
      em.test_accuracy = read_number(r, e, p, "test_accuracy");
      if (e["seconds"]) {
        em.seconds = r.number(e["seconds"], p + ".seconds");
      }
      m.epochs.push_back(em);
    }
  }
  if (node["confusion_matrix"]) {
    const auto rows = r.sequence(node["confusion_matrix"], path + ".confusion_matrix");
    for (std::size_t i = 0; i < rows.size(); ++i) {
      m.confusion_matrix.push_back(
          r.integers(rows[i], path + ".confusion_matrix[" + std::to_string(i) + "]"));
    }
  }
  return m;
}

Monitoring read_monitoring(const Reader& r, const YAML::Node& node, const std::string& path) {
  r.map(node, path);
  Monitoring m;
  m.autoencoder = r.string(r.require(node, path, "autoencoder"), path + ".autoencoder");
  if (m.autoencoder.empty() || m.autoencoder.find('/') != std::string::npos ||
      m.autoencoder.find('\\') != std::string::npos || m.autoencoder == "." ||
      m.autoencoder == "..") {
    r.fail(path + ".autoencoder", "expected a file name in the model directory");
  }
  const std::string p = path + ".reconstruction";
  const auto rec = r.map(r.require(node, path, "reconstruction"), p);
  m.reconstruction.threshold = read_number(r, rec, p, "threshold");
  m.reconstruction.p50 = read_number(r, rec, p, "p50");
  m.reconstruction.p90 = read_number(r, rec, p, "p90");
  m.reconstruction.p99 = read_number(r, rec, p, "p99");
  m.reconstruction.max = read_number(r, rec, p, "max");
  if (!(m.reconstruction.threshold > 0) || !std::isfinite(m.reconstruction.threshold)) {
    r.fail(p + ".threshold", "must be a positive number");
  }
  return m;
}

} // namespace

Contract classifier_contract(int features, int classes) {
  Contract c;
  c.inputs = {{"input", "FP32", {-1, features}}};
  c.outputs = {{"probabilities", "FP32", {-1, classes}}, {"class", "INT64", {-1}}};
  for (int i = 0; i < classes; ++i) {
    c.labels.push_back(std::to_string(i));
  }
  return c;
}

nlohmann::json metrics_to_json(const Metrics& m) {
  auto epochs = nlohmann::json::array();
  for (const auto& e : m.epochs) {
    epochs.push_back({{"epoch", e.epoch},
                      {"train_loss", e.train_loss},
                      {"train_accuracy", e.train_accuracy},
                      {"test_loss", e.test_loss},
                      {"test_accuracy", e.test_accuracy},
                      {"seconds", e.seconds}});
  }
  return {{"train_accuracy", m.train_accuracy},
          {"test_accuracy", m.test_accuracy},
          {"test_loss", m.test_loss},
          {"epochs", epochs},
          {"confusion_matrix", m.confusion_matrix}};
}

nlohmann::json monitoring_to_json(const Monitoring& m) {
  const auto& r = m.reconstruction;
  return {{"autoencoder", m.autoencoder},
          {"reconstruction",
           {{"threshold", r.threshold},
            {"p50", r.p50},
            {"p90", r.p90},
            {"p99", r.p99},
            {"max", r.max}}}};
}

std::string card_to_yaml(const ModelCard& card) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "apiVersion" << YAML::Value << std::string(k_card_api_version);
  out << YAML::Key << "kind" << YAML::Value << std::string(k_card_kind);
  out << YAML::Key << "metadata" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << card.name;
  out << YAML::EndMap;
  out << YAML::Key << "spec" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "contract" << YAML::Value;
  emit_contract(out, card.contract);
  out << YAML::Key << "lineage" << YAML::Value;
  emit_lineage(out, card.lineage);
  if (card.metrics) {
    out << YAML::Key << "metrics" << YAML::Value;
    emit_metrics(out, *card.metrics);
  }
  if (card.monitoring) {
    out << YAML::Key << "monitoring" << YAML::Value;
    emit_monitoring(out, *card.monitoring);
  }
  out << YAML::EndMap;
  out << YAML::EndMap;
  if (!out.good()) {
    throw Error(ErrorKind::internal, "model.yaml: cannot emit: " + out.GetLastError());
  }
  return std::string(out.c_str()) + "\n";
}

ModelCard card_from_yaml(std::string_view text, std::string_view name) {
  const Reader r(name);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    throw Error(ErrorKind::invalid_input,
                std::string(name) + ": not valid YAML: " + util::yaml_error(e));
  }
  try {
    if (!root.IsMap()) {
      throw Error(ErrorKind::invalid_input, std::string(name) + ": expected a mapping");
    }
    const std::string api = r.string(r.require(root, "", "apiVersion"), "apiVersion");
    if (api != k_card_api_version) {
      r.fail("apiVersion", "expected " + std::string(k_card_api_version) + ", got '" + api + "'");
    }
    const std::string kind = r.string(r.require(root, "", "kind"), "kind");
    if (kind != k_card_kind) {
      r.fail("kind", "expected " + std::string(k_card_kind) + ", got '" + kind + "'");
    }
    ModelCard card;
    const auto metadata = r.map(r.require(root, "", "metadata"), "metadata");
    card.name = r.string(r.require(metadata, "metadata", "name"), "metadata.name");
    const auto spec = r.map(r.require(root, "", "spec"), "spec");
    card.contract = read_contract(r, r.require(spec, "spec", "contract"), "spec.contract");
    if (spec["lineage"]) {
      card.lineage = read_lineage(r, spec["lineage"], "spec.lineage");
    }
    if (spec["metrics"]) {
      card.metrics = read_metrics(r, spec["metrics"], "spec.metrics");
    }
    if (spec["monitoring"]) {
      card.monitoring = read_monitoring(r, spec["monitoring"], "spec.monitoring");
    }
    return card;
  } catch (const YAML::Exception& e) {
    throw Error(ErrorKind::invalid_input, std::string(name) + ": " + util::yaml_error(e));
  }
}

ModelCard load_card(const std::filesystem::path& model_yaml) {
  const std::string text = util::read_file(model_yaml);
  return card_from_yaml(text, model_yaml.filename().string());
}

ModelCard card_from_onnx(const onnx::Model& model, std::string_view name) {
  ModelCard card;
  card.name = std::string(name);
  for (const auto& t : model.inputs()) {
    card.contract.inputs.push_back({t.name, t.datatype, t.shape});
  }
  for (const auto& t : model.outputs()) {
    card.contract.outputs.push_back({t.name, t.datatype, t.shape});
  }
  if (!card.contract.outputs.empty() && !card.contract.outputs.front().shape.empty()) {
    // A dynamic (-1) or implausible class count gives no labels.
    constexpr std::int64_t k_max_labels = 1 << 16;
    const auto classes = card.contract.outputs.front().shape.back();
    for (std::int64_t i = 0; classes <= k_max_labels && i < classes; ++i) {
      card.contract.labels.push_back(std::to_string(i));
    }
  }
  card.lineage.imported = true;
  return card;
}

} // namespace mlctl::model

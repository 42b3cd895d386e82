#include "model/train.hpp"

#include "artifact/sha256.hpp"
#include "data/dataset.hpp"
#include "nn/trainer.hpp"
#include "onnx/writer.hpp"
#include "util/build_info.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/text.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

namespace mlctl::model {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view k_model_file = "model.onnx";
constexpr std::string_view k_autoencoder_file = "autoencoder.onnx";
constexpr std::string_view k_card_file = "model.yaml";
constexpr std::string_view k_profile_file = "profile.json";
// The autoencoder draws from its own stream so that --no-autoencoder leaves the classifier
// (and its bytes) unchanged.
constexpr std::uint64_t k_autoencoder_seed_salt = 0x6175746f656e636fULL; // "autoenco"

std::string fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void check_options(const TrainOptions& o) {
  auto fail = [](const std::string& message) { throw Error(ErrorKind::invalid_input, message); };
  if (!(o.learning_rate > 0) || !std::isfinite(o.learning_rate)) {
    fail("learning rate must be a positive number, got " + util::shortest_number(o.learning_rate));
  }
  if (!(o.ae_learning_rate > 0) || !std::isfinite(o.ae_learning_rate)) {
    fail("autoencoder learning rate must be a positive number, got " +
         util::shortest_number(o.ae_learning_rate));
  }
  if (o.batch_size == 0 || o.batch_size > 65536) {
    fail("batch size must be 1..65536, got " + std::to_string(o.batch_size));
  }
  if (o.steps == 0 && o.epochs == 0) {
    fail("epochs must be at least 1");
  }
  if (o.threads < 1 || o.threads > 1024) {
    fail("threads must be 1..1024, got " + std::to_string(o.threads));
  }
  if (o.hidden.empty()) {
    fail("hidden: expected at least one hidden layer");
  }
  for (const int size : o.hidden) {
    if (size < 1 || size > 65536) {
      fail("hidden: layer sizes must be 1..65536, got " + std::to_string(size));
    }
  }
  for (const int size : o.ae_hidden) {
    if (size < 1 || size > 65536) {
      fail("autoencoder layer sizes must be 1..65536, got " + std::to_string(size));
    }
  }
  if (o.autoencoder && (o.ae_epochs == 0 || o.ae_hidden.empty())) {
    fail("the autoencoder needs at least one epoch and one hidden layer");
  }
  if (o.name.empty()) {
    fail("the model name must not be empty");
  }
}

nn::ImageSet image_set(const data::LabeledImages& split) {
  nn::ImageSet set;
  set.pixels = split.x;
  set.labels = split.y;
  set.features = split.rows * split.cols;
  return set;
}

nn::TrainerOptions trainer_options(nn::OptimizerKind kind, double learning_rate, std::size_t batch,
                                   std::uint64_t seed, int threads) {
  nn::TrainerOptions t;
  t.optimizer.kind = kind;
  t.optimizer.learning_rate = static_cast<float>(learning_rate);
  t.batch_size = batch;
  t.seed = seed;
  t.threads = threads;
  return t;
}

// Calls `progress` for the steps of one epoch: stage "<prefix>epoch e/E", unit "step".
nn::StepFn epoch_progress(const util::ProgressFn& progress, const std::string& stage,
                          bool classify) {
  if (!progress) {
    return {};
  }
  return [&progress, stage, classify](const nn::StepInfo& s) {
    util::Progress p;
    p.stage = stage;
    p.done = s.step;
    p.total = s.steps;
    p.unit = "step";
    p.detail = "loss " + fixed(s.loss, 4) + (classify ? " acc " + fixed(s.accuracy, 4) : "");
    progress(p);
  };
}

std::vector<int> layer_sizes(int features, const std::vector<int>& hidden, int outputs) {
  std::vector<int> sizes{features};
  sizes.insert(sizes.end(), hidden.begin(), hidden.end());
  sizes.push_back(outputs);
  return sizes;
}

struct ClassifierRun {
  nn::Mlp mlp;
  Metrics metrics;
  std::uint64_t steps = 0;
  std::uint64_t epochs = 0;
};

ClassifierRun train_classifier(const TrainOptions& o, const nn::ImageSet& train,
                               const nn::ImageSet& test, int classes,
                               const util::ProgressFn& progress, const util::LogFn& log) {
  nn::Trainer trainer(
      layer_sizes(static_cast<int>(train.features), o.hidden, classes), nn::Objective::classify,
      trainer_options(o.optimizer, o.learning_rate, o.batch_size, o.seed, o.threads));
  const std::uint64_t per_epoch = trainer.steps_per_epoch(train.count());
  const std::uint64_t total_steps = o.steps != 0 ? o.steps : per_epoch * o.epochs;
  const std::uint64_t epochs = (total_steps + per_epoch - 1) / per_epoch;
  ClassifierRun run;
  for (std::uint64_t epoch = 1; epoch <= epochs; ++epoch) {
    const std::string stage = "epoch " + std::to_string(epoch) + "/" + std::to_string(epochs);
    const std::uint64_t remaining = total_steps - trainer.steps_done();
    const auto start = Clock::now();
    const auto stats =
        trainer.train_epoch(train, static_cast<std::size_t>(std::min(per_epoch, remaining)),
                            epoch_progress(progress, stage, true));
    EpochMetrics em;
    em.seconds = seconds_since(start);
    const auto eval = trainer.evaluate(test);
    em.epoch = static_cast<std::int64_t>(epoch);
    em.train_loss = stats.loss;
    em.train_accuracy = stats.accuracy;
    em.test_loss = eval.loss;
    em.test_accuracy = eval.accuracy;
    run.metrics.epochs.push_back(em);
    if (log) {
      log(stage + ": loss " + fixed(em.train_loss, 4) + " acc " + fixed(em.train_accuracy, 4) +
          ", test loss " + fixed(em.test_loss, 4) + " acc " + fixed(em.test_accuracy, 4) + " (" +
          fixed(em.seconds, 2) + " s)");
    }
  }
  run.steps = trainer.steps_done();
  run.epochs = epochs;
  const auto final_train = trainer.evaluate(train);
  const auto final_test = trainer.evaluate(test);
  run.metrics.train_accuracy = final_train.accuracy;
  run.metrics.test_accuracy = final_test.accuracy;
  run.metrics.test_loss = final_test.loss;
  run.metrics.confusion_matrix = final_test.confusion;
  run.mlp = trainer.to_mlp();
  return run;
}

struct AutoencoderRun {
  nn::Mlp mlp;
  Reconstruction reconstruction;
};

AutoencoderRun train_autoencoder(const TrainOptions& o, const nn::ImageSet& train,
                                 const util::ProgressFn& progress, const util::LogFn& log) {
  const int features = static_cast<int>(train.features);
  nn::Trainer trainer(layer_sizes(features, o.ae_hidden, features), nn::Objective::reconstruct,
                      trainer_options(nn::OptimizerKind::adam, o.ae_learning_rate, o.batch_size,
                                      o.seed ^ k_autoencoder_seed_salt, o.threads));
  for (std::uint64_t epoch = 1; epoch <= o.ae_epochs; ++epoch) {
    const std::string stage =
        "autoencoder epoch " + std::to_string(epoch) + "/" + std::to_string(o.ae_epochs);
    const auto start = Clock::now();
    const auto stats = trainer.train_epoch(train, 0, epoch_progress(progress, stage, false));
    if (log) {
      log(stage + ": reconstruction error " + fixed(stats.loss, 5) + " (" +
          fixed(seconds_since(start), 2) + " s)");
    }
  }
  auto errors = trainer.example_losses(train);
  std::sort(errors.begin(), errors.end());
  AutoencoderRun run;
  auto& r = run.reconstruction;
  r.p50 = quantile(errors, 0.50);
  r.p90 = quantile(errors, 0.90);
  r.p99 = quantile(errors, 0.99);
  r.max = static_cast<double>(errors.back());
  r.threshold = r.p99;
  run.mlp = trainer.to_mlp();
  return run;
}

std::string dataset_label(const nlohmann::json& info, const std::string& key) {
  const auto it = info.find(key);
  return it != info.end() && it->is_string() ? it->get<std::string>() : std::string();
}

void append_split(data::LabeledImages& to, const data::LabeledImages& from, const std::filesystem::path& file) {
  if (from.count > 0 && (from.rows != to.rows || from.cols != to.cols)) {
    throw Error(ErrorKind::invalid_input, file.string() + ": images are " + std::to_string(from.rows) + "x" +
                                              std::to_string(from.cols) + ", the other dataset's " +
                                              std::to_string(to.rows) + "x" + std::to_string(to.cols));
  }
  to.x.insert(to.x.end(), from.x.begin(), from.x.end());
  to.y.insert(to.y.end(), from.y.begin(), from.y.end());
  to.count += from.count;
}

// Joins the `merge_dirs` datasets into the splits of `data_dir`, and makes `info` describe the
// join: the digest of the joined content, the datasets it came from under `source.merged`.
void merge_datasets(const TrainOptions& options, nlohmann::json& info, data::LabeledImages& train,
                    data::LabeledImages& test) {
  nlohmann::json merged = nlohmann::json::array();
  const auto describe = [](const std::filesystem::path& dir, const nlohmann::json& dinfo,
                           const data::LabeledImages& tr, const data::LabeledImages& te) {
    return nlohmann::json{{"digest", dataset_label(dinfo, "digest")},
                          {"source", dinfo.contains("source") ? dinfo.at("source") : nlohmann::json()},
                          {"path", dir.string()},
                          {"counts", {{"train", tr.count}, {"test", te.count}}}};
  };
  merged.push_back(describe(options.data_dir, info, train, test));
  for (const auto& dir : options.merge_dirs) {
    const auto dinfo = data::read_dataset_info(dir);
    const auto tr = data::read_dataset_split(dir, "train");
    const auto te = data::read_dataset_split(dir, "test");
    merged.push_back(describe(dir, dinfo, tr, te));
    append_split(train, tr, dir / "train.npz");
    append_split(test, te, dir / "test.npz");
  }
  info["digest"] = data::dataset_digest(train, test);
  info["source"] = {{"name", "merged"}, {"merged", std::move(merged)}};
}

} // namespace

double quantile(const std::vector<float>& sorted, double p) {
  const double position = std::clamp(p, 0.0, 1.0) * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(position));
  const auto hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = position - static_cast<double>(lo);
  return static_cast<double>(sorted[lo]) +
         (static_cast<double>(sorted[hi]) - static_cast<double>(sorted[lo])) * frac;
}

TrainResult train_model(const TrainOptions& options, const util::ProgressFn& progress,
                        const util::LogFn& log) {
  check_options(options);
  auto info = data::read_dataset_info(options.data_dir);
  auto train_split = data::read_dataset_split(options.data_dir, "train");
  auto test_split = data::read_dataset_split(options.data_dir, "test");
  if (!options.merge_dirs.empty()) {
    merge_datasets(options, info, train_split, test_split);
  }
  if (train_split.count == 0) {
    throw Error(ErrorKind::invalid_input,
                (options.data_dir / "train.npz").string() + ": no images to train on");
  }
  if (train_split.rows != test_split.rows || train_split.cols != test_split.cols) {
    throw Error(ErrorKind::invalid_input,
                options.data_dir.string() + ": train and test images differ in shape");
  }
  const auto train = image_set(train_split);
  const auto test = image_set(test_split);
  const int classes = static_cast<int>(data::k_num_classes);
  const int features = static_cast<int>(train.features);

  const auto start = Clock::now();
  auto classifier = train_classifier(options, train, test, classes, progress, log);
  std::optional<AutoencoderRun> autoencoder;
  if (options.autoencoder) {
    autoencoder = train_autoencoder(options, train, progress, log);
  }
  const double training_seconds = seconds_since(start);

  const std::string dataset_digest = dataset_label(info, "digest");
  onnx::OnnxExportOptions export_options;
  export_options.producer_version = std::string(build::version());
  export_options.doc =
      "mlctl classifier '" + options.name + "' trained on dataset " + dataset_digest;
  const std::string model_bytes = onnx::export_classifier(classifier.mlp, export_options);
  std::string autoencoder_bytes;
  if (autoencoder) {
    export_options.doc =
        "mlctl monitoring autoencoder of '" + options.name + "' (dataset " + dataset_digest + ")";
    autoencoder_bytes = onnx::export_autoencoder(autoencoder->mlp, export_options);
  }

  ModelCard card;
  card.name = options.name;
  card.contract = classifier_contract(features, classes);
  auto& lineage = card.lineage;
  DatasetRef dataset;
  dataset.digest = dataset_digest;
  dataset.source = info.contains("source") ? info.at("source") : nlohmann::json();
  dataset.path = options.data_dir.string();
  lineage.dataset = std::move(dataset);
  Hyperparameters hp;
  hp.hidden = options.hidden;
  hp.optimizer = nn::to_string(options.optimizer);
  hp.learning_rate = options.learning_rate;
  hp.batch_size = static_cast<std::int64_t>(options.batch_size);
  hp.steps = static_cast<std::int64_t>(classifier.steps);
  hp.epochs = static_cast<std::int64_t>(classifier.epochs);
  if (autoencoder) {
    AutoencoderHyperparameters ae;
    ae.layers = layer_sizes(features, options.ae_hidden, features);
    ae.optimizer = "adam";
    ae.learning_rate = options.ae_learning_rate;
    ae.batch_size = static_cast<std::int64_t>(options.batch_size);
    ae.epochs = static_cast<std::int64_t>(options.ae_epochs);
    hp.autoencoder = std::move(ae);
  }
  lineage.hyperparameters = std::move(hp);
  lineage.seed = options.seed;
  lineage.threads = options.threads;
  lineage.mlctl_version = std::string(build::version());
  lineage.git_commit = std::string(build::git_commit());
  lineage.training_seconds = training_seconds;
  card.metrics = std::move(classifier.metrics);
  if (autoencoder) {
    Monitoring monitoring;
    monitoring.autoencoder = std::string(k_autoencoder_file);
    monitoring.reconstruction = autoencoder->reconstruction;
    card.monitoring = std::move(monitoring);
  }

  util::StagedDir staged(options.out_dir);
  util::write_file_atomic(staged.path() / k_model_file, model_bytes);
  if (autoencoder) {
    util::write_file_atomic(staged.path() / k_autoencoder_file, autoencoder_bytes);
  }
  util::write_file_atomic(staged.path() / k_card_file, card_to_yaml(card));
  const nlohmann::json profile =
      info.contains("profile") ? info.at("profile") : nlohmann::json::object();
  util::write_file_atomic(staged.path() / k_profile_file, profile.dump(1) + "\n");
  staged.commit();

  TrainResult result;
  result.model_dir = fs::absolute(options.out_dir);
  result.digest = model_dir_digest(options.out_dir);
  result.card = std::move(card);
  return result;
}

std::string model_dir_digest(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    throw Error(ec == std::errc::no_such_file_or_directory ? ErrorKind::not_found : ErrorKind::io,
                dir.string() + ": cannot list: " + ec.message());
  }
  for (const auto& entry : it) {
    if (entry.is_regular_file()) {
      names.push_back(entry.path().filename().string());
    }
  }
  std::sort(names.begin(), names.end());
  std::string listing;
  for (const auto& name : names) {
    listing += artifact::sha256_file(dir / name) + "  " + name + "\n";
  }
  return "sha256:" + artifact::sha256_hex(listing);
}

} // namespace mlctl::model

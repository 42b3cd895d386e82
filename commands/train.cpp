// mlctl train: a dataset directory in, a model directory (model.onnx, autoencoder.onnx,
// model.yaml, profile.json) out.

#include "model/train.hpp"
#include "commands/commands.hpp"
#include "commands/option_checks.hpp"
#include "commands/output.hpp"
#include "commands/step_cache.hpp"
#include "data/dataset.hpp"
#include "pipeline/steps.hpp"
#include "util/error.hpp"

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <unistd.h>

namespace mlctl::cli {

namespace {

struct TrainOptions {
  std::string data = "data/mnist";
  std::vector<std::string> merge;
  std::string out = "models/mnist";
  std::string name = "mnist";
  std::vector<int> hidden = {256, 64};
  std::string optimizer = "adam";
  double learning_rate = 0.01;
  std::size_t batch_size = 256;
  std::uint64_t steps = 0;
  std::uint64_t epochs = 0; // 0: not given (5, unless --steps)
  std::uint64_t seed = 42;
  int threads = 1;
  bool no_autoencoder = false;
  std::uint64_t ae_epochs = 10;
  std::string cache_dir;
  bool no_cache = false;
};

constexpr std::uint64_t k_default_epochs = 5;

int run_train(const TrainOptions& o, Context& ctx) {
  model::TrainOptions options;
  options.data_dir = o.data;
  options.merge_dirs.assign(o.merge.begin(), o.merge.end());
  options.out_dir = o.out;
  options.name = o.name;
  options.hidden = o.hidden;
  options.optimizer = nn::optimizer_from_string(o.optimizer);
  options.learning_rate = o.learning_rate;
  options.batch_size = o.batch_size;
  // --epochs wins over --steps/LEARNING_STEPS; neither: 5 epochs.
  options.steps = o.epochs != 0 ? 0 : o.steps;
  options.epochs = o.epochs != 0 ? o.epochs : k_default_epochs;
  options.seed = o.seed;
  options.threads = o.threads;
  options.autoencoder = !o.no_autoencoder;
  options.ae_epochs = o.ae_epochs;

  // A bar per epoch on a terminal; otherwise the per-epoch log lines are the progress.
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  const util::ProgressFn progress = tty ? ctx.progress() : util::ProgressFn{};
  // The dataset's own errors first ("not a dataset directory"), before hashing it for the key.
  data::read_dataset_info(options.data_dir);
  const auto step = run_cached_step(
      ctx, step_cache(o.cache_dir, o.no_cache), pipeline::train_step(options), [&] {
        const auto result = model::train_model(options, progress, ctx.log());
        const auto& card = result.card;
        const auto& hp = *card.lineage.hyperparameters;
        pipeline::StepOutcome outcome;
        outcome.result = {
            {"name", card.name},
            {"model_dir", result.model_dir.string()},
            {"digest", result.digest},
            {"dataset",
             {{"digest", card.lineage.dataset->digest}, {"path", card.lineage.dataset->path}}},
            {"steps", hp.steps},
            {"epochs", hp.epochs},
            {"training_seconds", *card.lineage.training_seconds},
            {"metrics", model::metrics_to_json(*card.metrics)},
            {"monitoring",
             card.monitoring ? model::monitoring_to_json(*card.monitoring) : nlohmann::json()},
        };
        outcome.outputs = {{"model", result.model_dir}};
        return outcome;
      });

  nlohmann::json out = step.result;
  out["cached"] = step.cached;
  print_result(ctx, out, [&] {
    const auto& metrics = out.at("metrics");
    const auto number = [](const nlohmann::json& j, const char* key) {
      return j.is_object() && j.contains(key) && j.at(key).is_number() ? j.at(key).get<double>()
                                                                       : 0.0;
    };
    std::vector<std::pair<std::string, std::string>> fields = {
        {"model", out.value("model_dir", std::string())},
        {"digest", out.value("digest", std::string())},
        {"steps", std::to_string(out.value("steps", std::int64_t{0})) + " (" +
                      std::to_string(out.value("epochs", std::int64_t{0})) + " epochs)"},
        {"train accuracy", format_fixed(number(metrics, "train_accuracy"), 4)},
        {"test accuracy", format_fixed(number(metrics, "test_accuracy"), 4)},
        {"test loss", format_fixed(number(metrics, "test_loss"), 4)},
    };
    const auto& monitoring = out.at("monitoring");
    if (monitoring.is_object() && monitoring.contains("reconstruction")) {
      fields.emplace_back("drift threshold",
                          format_fixed(number(monitoring.at("reconstruction"), "threshold"), 5) +
                              " (p99 of the training reconstruction error)");
    }
    fields.emplace_back("training time",
                        format_fixed(number(out, "training_seconds"), 1) + " s" +
                            (step.cached ? " (cached: not run again)" : ""));
    print_fields(fields);
  });
  return 0;
}

} // namespace

void register_train(CLI::App& parent, Dispatch& dispatch) {
  auto opts = std::make_shared<TrainOptions>();
  auto* cmd = parent.add_subcommand(
      "train", "Train the classifier and its monitoring autoencoder on a dataset directory");
  cmd->add_option("--data", opts->data, "Dataset directory (from fetch-mnist)")
      ->envname("MNIST_DATA_DIR")
      ->capture_default_str();
  cmd->add_option("--merge", opts->merge,
                  "Another dataset directory to join with --data (repeatable); the model's lineage "
                  "records every dataset")
      ->type_name("DIR")
      ->allow_extra_args(false);
  cmd->add_option("--out", opts->out, "Model directory to write (replaced atomically)")
      ->envname("MNIST_MODELS_DIR")
      ->capture_default_str();
  cmd->add_option("--name", opts->name, "Model name recorded in model.yaml")
      ->envname("MODEL_NAME")
      ->capture_default_str();
  cmd->add_option("--hidden", opts->hidden, "Hidden layer sizes, comma-separated (default 256,64)")
      ->delimiter(',');
  cmd->add_option("--optimizer", opts->optimizer, "Optimizer: adam, sgd (momentum 0.9) or adagrad")
      ->check(CLI::IsMember({"adam", "sgd", "adagrad"}))
      ->capture_default_str();
  cmd->add_option("--learning-rate", opts->learning_rate, "Learning rate")
      ->envname("LEARNING_RATE")
      ->capture_default_str();
  cmd->add_option("--batch-size", opts->batch_size, "Examples per optimizer step")
      ->envname("BATCH_SIZE")
      ->check(in_range(1, 65536))
      ->capture_default_str();
  auto* steps =
      cmd->add_option("--steps", opts->steps,
                      "Optimizer steps to run (instead of --epochs; the last epoch may be partial)")
          ->envname("LEARNING_STEPS")
          ->check(positive());
  auto* epochs =
      cmd->add_option("--epochs", opts->epochs,
                      "Passes over the training split (default 5; wins over LEARNING_STEPS)")
          ->check(positive());
  cmd->add_option("--seed", opts->seed, "Random seed (weights and batch order)")
      ->capture_default_str();
  cmd->add_option("--threads", opts->threads,
                  "Upper bound on training threads (this build trains on one: measured fastest "
                  "and steadiest on 2 shared cores)")
      ->check(in_range(1, 1024))
      ->capture_default_str();
  cmd->add_flag("--no-autoencoder", opts->no_autoencoder, "Skip the monitoring autoencoder");
  cmd->add_option("--ae-epochs", opts->ae_epochs,
                  "Autoencoder epochs (784-128-32-128-784, Adam 0.001)")
      ->check(positive())
      ->capture_default_str();
  add_cache_dir_option(*cmd, opts->cache_dir);
  add_no_cache_flag(*cmd, opts->no_cache);
  cmd->footer("Example:\n  mlctl train --data data/mnist --out models/mnist --epochs 5 -o json");
  cmd->callback([opts, steps, epochs, &dispatch] {
    const char* env_steps = std::getenv("LEARNING_STEPS");
    if (steps->count() > 0 && epochs->count() > 0 && (env_steps == nullptr || *env_steps == '\0')) {
      throw CLI::ValidationError("--steps and --epochs are mutually exclusive");
    }
    dispatch.run = [opts](Context& ctx) { return run_train(*opts, ctx); };
  });
}

} // namespace mlctl::cli

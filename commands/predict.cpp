// mlctl predict: offline prediction with a model directory or a bare .onnx file, on a
// labelled split (accuracy + confusion matrix) or on one PNG image (class + probabilities).

#include "model/predict.hpp"
#include "commands/commands.hpp"
#include "commands/output.hpp"
#include "data/dataset.hpp"
#include "util/error.hpp"

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <unistd.h>

namespace mlctl::cli {

namespace {

struct PredictOptions {
  std::string model;
  std::string data;  // a split .npz or a dataset directory (its test split)
  std::string image; // a PNG
  std::size_t limit = 0;
};

data::LabeledImages read_labeled(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return data::read_dataset_split(path, "test");
  }
  return data::read_split(path);
}

int run_predict_data(const PredictOptions& o, const model::Predictor& predictor, Context& ctx) {
  const auto split = read_labeled(o.data);
  // A bar on a terminal; a log line would only repeat the result here.
  const util::ProgressFn progress =
      ::isatty(STDERR_FILENO) != 0 ? ctx.progress() : util::ProgressFn{};
  const auto eval = with_context(std::filesystem::path(o.data).filename().string(), [&] {
    return model::evaluate(predictor, split, o.limit, progress);
  });
  nlohmann::json matrix = nlohmann::json::array();
  for (const auto& row : eval.confusion_matrix) {
    matrix.push_back(row);
  }
  const nlohmann::json out = {
      {"model", o.model},           {"data", o.data},
      {"count", eval.count},        {"correct", eval.correct},
      {"accuracy", eval.accuracy},  {"labels", predictor.labels()},
      {"confusion_matrix", matrix},
  };
  print_result(ctx, out, [&] {
    print_fields({
        {"model", o.model},
        {"data", o.data},
        {"images", std::to_string(eval.count)},
        {"accuracy", format_fixed(eval.accuracy, 4) + " (" + std::to_string(eval.correct) + "/" +
                         std::to_string(eval.count) + ")"},
    });
    std::cout << "\nconfusion matrix (rows: true label, columns: predicted label):\n";
    std::vector<std::string> headers = {"true\\pred"};
    for (const auto& label : predictor.labels()) {
      headers.push_back(label);
    }
    Table table(headers);
    for (std::size_t i = 0; i < eval.confusion_matrix.size(); ++i) {
      std::vector<std::string> row = {predictor.labels()[i]};
      for (const auto v : eval.confusion_matrix[i]) {
        row.push_back(std::to_string(v));
      }
      table.add(std::move(row));
    }
    table.print();
  });
  return 0;
}

int run_predict_image(const PredictOptions& o, const model::Predictor& predictor, Context& ctx) {
  const std::filesystem::path path(o.image);
  const auto image = model::read_png_gray(path);
  const auto prediction = model::classify_image(predictor, image, path.filename().string());
  const auto& label = predictor.labels()[static_cast<std::size_t>(prediction.label_index)];
  const nlohmann::json out = {
      {"model", o.model},
      {"image", o.image},
      {"class", prediction.label_index},
      {"label", label},
      {"probabilities", prediction.probabilities},
  };
  print_result(ctx, out, [&] {
    print_fields(
        {{"image", o.image}, {"class", std::to_string(prediction.label_index)}, {"label", label}});
    std::cout << '\n';
    Table table({"label", "probability"});
    for (std::size_t i = 0; i < prediction.probabilities.size(); ++i) {
      table.add({predictor.labels()[i], format_fixed(prediction.probabilities[i], 4)});
    }
    table.print();
  });
  return 0;
}

int run_predict(const PredictOptions& o, Context& ctx) {
  const auto predictor = model::Predictor::open(o.model);
  ctx.debug("model " + predictor.model().name() + ": input '" + predictor.model().inputs()[0].name +
            "', " + std::to_string(predictor.pixels()) + " values per image, " +
            std::to_string(predictor.classes()) + " classes");
  if (!o.data.empty()) {
    return run_predict_data(o, predictor, ctx);
  }
  return run_predict_image(o, predictor, ctx);
}

} // namespace

void register_predict(CLI::App& parent, Dispatch& dispatch) {
  auto opts = std::make_shared<PredictOptions>();
  auto* cmd = parent.add_subcommand(
      "predict", "Classify images offline with a model directory or an .onnx file (no server)");
  cmd->add_option(
         "--model", opts->model,
         "Model directory (model.yaml + model.onnx) or a bare .onnx file exported elsewhere")
      ->required();
  auto* data = cmd->add_option(
      "--data", opts->data,
      "Labelled images: a split .npz (x, y) or a dataset directory (its test split); "
      "prints accuracy and the confusion matrix");
  auto* image = cmd->add_option("--image", opts->image,
                                "A 28×28 grayscale PNG; prints its class and probabilities");
  data->excludes(image);
  cmd->add_option("--limit", opts->limit, "Use only the first N images of --data (0: all)")
      ->needs(data);
  cmd->footer("Example:\n  mlctl predict --model models/mnist --data data/mnist/test.npz --limit "
              "1000 -o json");
  cmd->callback([opts, data, image, &dispatch] {
    if (data->count() == 0 && image->count() == 0) {
      throw CLI::RequiredError("--data or --image");
    }
    dispatch.run = [opts](Context& ctx) { return run_predict(*opts, ctx); };
  });
}

} // namespace mlctl::cli

// mlctl predict: offline prediction with a model directory or a bare .onnx file, on a
// labelled split (accuracy + confusion matrix) or on one PNG or JPEG image (class + probabilities);
// or, with --app, through a live application's endpoint (class, probabilities, the version
// that answered and the trace id of each image). --fit brings a photo or drawing of a digit to
// the model's image form first.

#include "model/predict.hpp"
#include "api/names.hpp"
#include "api/requests.hpp"
#include "api/routes.hpp"
#include "client/inference_client.hpp"
#include "commands/commands.hpp"
#include "commands/image_input.hpp"
#include "commands/option_checks.hpp"
#include "commands/output.hpp"
#include "commands/remote.hpp"
#include "data/dataset.hpp"
#include "util/error.hpp"

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <optional>
#include <unistd.h>

namespace mlctl::cli {

namespace {

struct PredictOptions {
  std::string model;
  std::string app;   // a live application instead of --model
  std::vector<std::size_t> indices;
  std::size_t batch_size = 64;
  std::string data;  // a split .npz or a dataset directory (its test split)
  std::string image; // a PNG or JPEG
  bool fit = false;  // --image is any picture of a digit: fit it to the model's images
  std::optional<std::size_t> limit; // --limit; 0: all (not given: all, or 10 with --app)
  bool feedback = false; // with --app and --data: send the labels as ground truth
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
    return model::evaluate(predictor, split, o.limit.value_or(0), progress);
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
  const auto input = read_image_input(o.image, o.fit, predictor.rows(), predictor.cols());
  const auto& image = input.image;
  const auto prediction = [&] {
    try {
      return model::classify_image(predictor, image, o.image);
    } catch (const Error& e) {
      if (o.fit || e.kind() != ErrorKind::invalid_input) {
        throw;
      }
      throw Error(e.kind(), e.what() + std::string(k_fit_hint));
    }
  }();
  const auto& label = predictor.labels()[static_cast<std::size_t>(prediction.label_index)];
  nlohmann::json out = {
      {"model", o.model},
      {"image", o.image},
      {"class", prediction.label_index},
      {"label", label},
      {"probabilities", prediction.probabilities},
  };
  if (o.fit) {
    out["fit"] = input.fit;
  }
  print_result(ctx, out, [&] {
    std::vector<std::pair<std::string, std::string>> fields = {{"image", o.image}};
    if (o.fit) {
      fields.emplace_back("fit", fit_text(input));
    }
    fields.emplace_back("class", std::to_string(prediction.label_index));
    fields.emplace_back("label", label);
    print_fields(fields);
    std::cout << '\n';
    Table table({"label", "probability"});
    for (std::size_t i = 0; i < prediction.probabilities.size(); ++i) {
      table.add({predictor.labels()[i], format_fixed(prediction.probabilities[i], 4)});
    }
    table.print();
  });
  return 0;
}

// Sends the chosen images to the application in batches; prints one row per image.
int run_predict_remote(const PredictOptions& o, Context& ctx) {
  api::validate_name(o.app, "application name");
  client::InferenceClient inference(api_client_options(ctx));
  std::vector<std::uint8_t> pixels;
  std::vector<std::size_t> indices;
  std::vector<int> labels; // -1: unknown
  std::size_t per_image = 0;
  std::string source;
  std::string image_size; // of --image, named when the application refuses it
  ImageInput input;       // --image
  if (!o.data.empty()) {
    const auto split = read_labeled(o.data);
    per_image = split.rows * split.cols;
    source = o.data;
    if (!o.indices.empty()) {
      indices = o.indices;
    } else {
      const auto asked = o.limit.value_or(10);
      const auto n = asked == 0 ? split.count : std::min(split.count, asked);
      for (std::size_t i = 0; i < n; ++i) {
        indices.push_back(i);
      }
    }
    for (const auto i : indices) {
      if (i >= split.count) {
        throw Error(ErrorKind::invalid_input, "--indices " + std::to_string(i) + ": " + o.data + " has " +
                                                  std::to_string(split.count) + " images");
      }
      pixels.insert(pixels.end(), split.x.begin() + static_cast<std::ptrdiff_t>(i * per_image),
                    split.x.begin() + static_cast<std::ptrdiff_t>((i + 1) * per_image));
      labels.push_back(split.y[i]);
    }
  } else {
    input = read_image_input_for(ctx, o.app, o.image, o.fit);
    const auto& image = input.image;
    per_image = image.pixels.size();
    image_size = refused_size_note(o.image, input, o.fit);
    source = o.image;
    pixels = image.pixels;
    indices.push_back(0);
    labels.push_back(-1);
  }
  nlohmann::json predictions = nlohmann::json::array();
  std::size_t correct = 0;
  std::size_t labelled = 0;
  // --feedback: the labels join the stored requests by trace id, as production ground truth
  // would (mlctl feedback), sent in batches as the answers come.
  std::optional<client::ApiClient> feedback_client;
  std::vector<api::FeedbackItem> pending;
  api::FeedbackResult sent;
  const auto feedback_path =
      api::routes::feedback() + api::routes::query({{"application", o.app}});
  const auto send_feedback = [&] {
    if (pending.empty()) {
      return;
    }
    if (!feedback_client) {
      feedback_client.emplace(api_client(ctx));
    }
    const auto part = api::from_json_value<api::FeedbackResult>(
        feedback_client->call("POST", feedback_path, nlohmann::json(pending), true),
        feedback_path, ErrorKind::corrupt);
    sent.received += part.received;
    sent.matched += part.matched;
    pending.clear();
  };
  for (std::size_t start = 0; start < indices.size(); start += o.batch_size) {
    const auto count = std::min(o.batch_size, indices.size() - start);
    const auto reply = inference.predict(
        o.app, std::span<const std::uint8_t>(pixels.data() + start * per_image, count * per_image), per_image);
    if (reply.status != 200) {
      throw Error(reply.status == 404 ? ErrorKind::not_found
                  : reply.status >= 500
                      ? (reply.status == 503 ? ErrorKind::unavailable : ErrorKind::internal)
                      : ErrorKind::invalid_input,
                  "application " + o.app + ": HTTP " + std::to_string(reply.status) +
                      (reply.error.empty() ? "" : ": " + reply.error) +
                      (reply.status == 400 ? image_size : ""));
    }
    for (std::size_t k = 0; k < count; ++k) {
      const auto label = labels[start + k];
      nlohmann::json p = {{"index", indices[start + k]},
                          {"class", reply.classes[k]},
                          {"probabilities", reply.probabilities[k]},
                          {"label", label >= 0 ? nlohmann::json(label) : nlohmann::json(nullptr)},
                          {"model", reply.model},
                          {"variant", reply.variant},
                          {"trace_id", reply.trace_id}};
      if (label >= 0) {
        ++labelled;
        correct += reply.classes[k] == label ? 1 : 0;
        if (o.feedback) {
          pending.push_back({reply.trace_id, label, static_cast<std::int64_t>(k)});
        }
      }
      predictions.push_back(std::move(p));
    }
    if (pending.size() >= 256) {
      send_feedback();
    }
  }
  send_feedback();
  nlohmann::json out = {{"application", o.app}, {"source", source}, {"predictions", predictions}};
  if (labelled > 0) {
    out["accuracy"] = static_cast<double>(correct) / static_cast<double>(labelled);
  }
  if (o.feedback) {
    out["feedback"] = {{"sent", sent.received}, {"matched", sent.matched}};
  }
  if (o.fit) {
    out["fit"] = input.fit;
  }
  print_result(ctx, out, [&] {
    if (!o.image.empty()) {
      const auto& p = predictions.front();
      std::vector<std::pair<std::string, std::string>> fields = {{"image", o.image}};
      if (o.fit) {
        fields.emplace_back("fit", fit_text(input));
      }
      fields.emplace_back("class", std::to_string(p["class"].get<std::int64_t>()));
      fields.emplace_back("model", p["model"].get<std::string>());
      fields.emplace_back("trace id", p["trace_id"].get<std::string>());
      print_fields(fields);
      std::cout << '\n';
      Table table({"class", "probability"});
      const auto probabilities = p["probabilities"].get<std::vector<float>>();
      for (std::size_t i = 0; i < probabilities.size(); ++i) {
        table.add({std::to_string(i), format_fixed(probabilities[i], 4)});
      }
      table.print();
      return;
    }
    Table table({"INDEX", "CLASS", "PROBABILITY", "LABEL", "MODEL", "TRACE ID"});
    for (const auto& p : predictions) {
      const auto cls = p["class"].get<std::int64_t>();
      const auto probabilities = p["probabilities"].get<std::vector<float>>();
      const double prob = cls >= 0 && static_cast<std::size_t>(cls) < probabilities.size()
                              ? probabilities[static_cast<std::size_t>(cls)]
                              : 0.0;
      table.add({std::to_string(p["index"].get<std::size_t>()), std::to_string(cls), format_fixed(prob, 4),
                 p["label"].is_null() ? "-" : std::to_string(p["label"].get<int>()), p["model"].get<std::string>(),
                 p["trace_id"].get<std::string>()});
    }
    table.print();
    if (labelled > 0) {
      std::cout << "\naccuracy " << format_fixed(static_cast<double>(correct) / static_cast<double>(labelled), 4)
                << " (" << correct << "/" << labelled << ")\n";
    }
    if (o.feedback) {
      std::cout << "feedback: " << sent.received << " labels sent, " << sent.matched
                << " joined stored requests\n";
    }
  });
  return 0;
}

int run_predict(const PredictOptions& o, Context& ctx) {
  if (!o.app.empty()) {
    return run_predict_remote(o, ctx);
  }
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
      "predict", "Classify images with a model directory or an .onnx file, or through a live application (--app)");
  auto* model = cmd->add_option(
      "--model", opts->model,
      "Model directory (model.yaml + model.onnx) or a bare .onnx file exported elsewhere");
  auto* app = cmd->add_option("--app", opts->app,
                              "Instead of --model: a live application; prints class, probabilities, the "
                              "version that answered and the trace id of each image")
                  ->type_name("APP");
  model->excludes(app);
  auto* data = cmd->add_option(
      "--data", opts->data,
      "Labelled images: a split .npz (x, y) or a dataset directory (its test split); "
      "prints accuracy and the confusion matrix");
  auto* image =
      cmd->add_option("--image", opts->image,
                      "A PNG or JPEG of the model's image size (28×28 for MNIST), gray or colour; "
                      "prints its class and probabilities");
  data->excludes(image);
  cmd->add_flag("--fit", opts->fit,
                "With --image: take any picture of one digit (a photo or a drawing, dark ink on "
                "light or light on dark, any size) and bring it to the MNIST form first: light "
                "on black, its box scaled into 20×20, centred by mass in 28×28")
      ->needs(image);
  auto* limit =
      cmd->add_option(
             "--limit", opts->limit,
             "Use only the first N images of --data (0: all; default: all, or 10 with --app)")
          ->needs(data);
  cmd->add_option("--indices", opts->indices, "With --app: these images of --data (0-based, comma separated)")
      ->delimiter(',')
      ->needs(data)
      ->needs(app)
      ->excludes(limit);
  cmd->add_option("--batch-size", opts->batch_size, "With --app: images per request")
      ->capture_default_str()
      ->check(in_range(std::size_t{1}, std::size_t{1} << 16))
      ->needs(app);
  cmd->add_flag("--feedback", opts->feedback,
                "With --app and --data: also send each image's label as ground truth (as mlctl "
                "feedback does), so the platform measures accuracy on this traffic")
      ->needs(app)
      ->needs(data);
  cmd->footer("Examples:\n  mlctl predict --model models/mnist --data data/mnist/test.npz --limit "
              "1000 -o json\n  mlctl predict --app mnist-app --image photo-of-a-7.png --fit");
  cmd->callback([opts, data, image, model, app, &dispatch] {
    if (data->count() == 0 && image->count() == 0) {
      throw CLI::RequiredError("--data or --image");
    }
    if (model->count() == 0 && app->count() == 0) {
      throw CLI::RequiredError("--model or --app");
    }
    dispatch.run = [opts](Context& ctx) { return run_predict(*opts, ctx); };
  });
}

} // namespace mlctl::cli

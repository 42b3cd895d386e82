// mlctl explain: RISE saliency maps of an application's model for a few test images, computed
// by the server, drawn as one grid picture (rows: images, columns: classes).

#include "api/monitor_routes.hpp"
#include "api/names.hpp"
#include "commands/commands.hpp"
#include "commands/image_input.hpp"
#include "commands/option_checks.hpp"
#include "commands/output.hpp"
#include "commands/remote.hpp"
#include "data/dataset.hpp"
#include "explain/png.hpp"
#include "util/error.hpp"
#include "util/text.hpp"

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <memory>

namespace mlctl::cli {

namespace {

struct ExplainOptions {
  std::string app;
  std::string data;
  std::vector<std::size_t> indices = {0, 1, 2};
  std::string image; // instead of --data: one PNG or JPEG, no label
  bool fit = false;  // --image is any picture of a digit
  std::string out = "rise.png";
  std::size_t masks = 2000;
  int grid = 7;
  double p = 0.5;
  std::uint64_t seed = 0;
  std::string model;
};

// The images to explain: --indices of --data with their labels, or --image (label -1).
struct Inputs {
  std::size_t pixels = 0;
  std::vector<std::uint8_t> x; // one image after another
  std::vector<int> labels;
  std::vector<std::string> names; // "#3" or the file's name: the picture's captions
  ImageInput image;               // --image as read (and fitted)
};

Inputs read_inputs(const ExplainOptions& o, const Context& ctx) {
  Inputs in;
  if (!o.image.empty()) {
    in.image = read_image_input_for(ctx, o.app, o.image, o.fit);
    in.pixels = in.image.image.pixels.size();
    in.x = in.image.image.pixels;
    in.labels = {-1};
    in.names = {std::filesystem::path(o.image).filename().string()};
    return in;
  }
  const std::filesystem::path data(o.data);
  const auto split = std::filesystem::is_directory(data) ? data::read_dataset_split(data, "test")
                                                         : data::read_split(data);
  if (o.indices.empty()) {
    throw Error(ErrorKind::invalid_input, "--indices: give at least one image index");
  }
  in.pixels = split.rows * split.cols;
  for (const auto i : o.indices) {
    if (i >= split.count) {
      throw Error(ErrorKind::invalid_input, "--indices: " + std::to_string(i) +
                                                " is past the last image of " + o.data + " (" +
                                                std::to_string(split.count) + " images)");
    }
    in.x.insert(in.x.end(), split.x.begin() + static_cast<std::ptrdiff_t>(i * in.pixels),
                split.x.begin() + static_cast<std::ptrdiff_t>((i + 1) * in.pixels));
    in.labels.push_back(split.y[i]);
    in.names.push_back("#" + std::to_string(i));
  }
  return in;
}

int run_explain(const ExplainOptions& o, Context& ctx) {
  api::validate_name(o.app, "application name");
  // Checked before the server works: the picture is a PNG whatever the name says.
  if (!o.out.empty() && !util::iequals(std::filesystem::path(o.out).extension().string(), ".png")) {
    throw Error(ErrorKind::invalid_input,
                "--out " + o.out + ": the picture is written as PNG: give a name ending in .png");
  }
  const auto in = read_inputs(o, ctx);
  const auto pixels = in.pixels;
  const auto count = in.labels.size();
  nlohmann::json images = nlohmann::json::array();
  for (std::size_t k = 0; k < count; ++k) {
    images.push_back(
        std::vector<int>(in.x.begin() + static_cast<std::ptrdiff_t>(k * pixels),
                         in.x.begin() + static_cast<std::ptrdiff_t>((k + 1) * pixels)));
  }
  nlohmann::json body = {{"images", std::move(images)},
                         {"masks", o.masks},
                         {"grid", o.grid},
                         {"p", o.p},
                         {"seed", o.seed}};
  if (!o.model.empty()) {
    body["model"] = o.model;
  }
  auto client = api_client(ctx);
  const auto answer = [&] {
    try {
      return client.call("POST", api::routes::application_explain(o.app), body, true);
    } catch (const Error& e) {
      if (o.image.empty() || e.kind() != ErrorKind::invalid_input) {
        throw;
      }
      throw Error(e.kind(), e.what() + refused_size_note(o.image, in.image, o.fit));
    }
  }();

  std::vector<explain::ExplainedImage> rows;
  const auto& results = answer.at("results");
  nlohmann::json out_images = nlohmann::json::array();
  for (std::size_t k = 0; k < count && k < results.size(); ++k) {
    const auto& r = results[k];
    const auto label = in.labels[k];
    explain::ExplainedImage row;
    row.image.resize(pixels);
    for (std::size_t j = 0; j < pixels; ++j) {
      row.image[j] = static_cast<float>(in.x[k * pixels + j]) / 255.0f;
    }
    row.true_class = label;
    row.caption = in.names[k];
    auto& s = row.saliency;
    s.rows = answer.at("rows").get<std::size_t>();
    s.cols = answer.at("cols").get<std::size_t>();
    s.predicted = r.at("predicted").get<std::int64_t>();
    s.probabilities = r.at("probabilities").get<std::vector<float>>();
    s.baseline = r.value("baseline", std::vector<float>{});
    const auto& maps = r.at("saliency");
    s.classes = maps.size();
    for (const auto& m : maps) {
      const auto v = m.get<std::vector<float>>();
      s.maps.insert(s.maps.end(), v.begin(), v.end());
    }
    nlohmann::json item = {{"predicted", s.predicted},
                           {"probabilities", r.at("probabilities")},
                           {"baseline", r.value("baseline", nlohmann::json::array())},
                           {"saliency", maps}};
    if (label >= 0) {
      item["index"] = o.indices[k];
      item["label"] = label;
      item["correct"] = s.predicted == label;
    } else {
      item["image"] = o.image;
      if (o.fit) {
        item["fit"] = in.image.fit;
      }
    }
    out_images.push_back(std::move(item));
    rows.push_back(std::move(row));
  }
  const auto labels = answer.value("labels", std::vector<std::string>{});
  if (!o.out.empty()) {
    explain::write_png(o.out, explain::draw_rise_grid(rows, labels));
  }
  nlohmann::json result = {{"application", o.app},
                           {"model", answer.at("ref")},
                           {"masks", answer.at("masks")},
                           {"grid", answer.at("grid")},
                           {"p", answer.at("p")},
                           {"seed", answer.at("seed")},
                           {"seconds", answer.at("seconds")},
                           {"picture", o.out.empty() ? nlohmann::json() : nlohmann::json(o.out)},
                           {"images", std::move(out_images)}};
  print_result(ctx, result, [&] {
    Table table({"IMAGE", "LABEL", "PREDICTED", "PROBABILITY", "CORRECT"});
    std::size_t k = 0;
    for (const auto& im : result["images"]) {
      const auto predicted = im["predicted"].get<std::int64_t>();
      const bool labelled = im.contains("label");
      table.add(
          {labelled ? in.names[k] : o.image,
           labelled ? std::to_string(im["label"].get<int>()) : "-", std::to_string(predicted),
           format_fixed(im["probabilities"][static_cast<std::size_t>(predicted)].get<double>(), 3),
           labelled ? (im["correct"].get<bool>() ? "yes" : "no") : "-"});
      ++k;
    }
    if (o.fit) {
      std::cout << "fit: " << fit_text(in.image) << "\n\n";
    }
    table.print();
    std::cout << "\nRISE of " << answer.at("ref").get<std::string>() << " (" << o.masks
              << " masks, grid " << o.grid << "x" << o.grid << ", p " << o.p << ", seed " << o.seed
              << ") in " << format_fixed(answer.at("seconds").get<double>(), 2) << " s";
    if (!o.out.empty()) {
      std::cout << "; picture: " << o.out;
    }
    std::cout << "\n";
  });
  return 0;
}

} // namespace

void register_explain(CLI::App& parent, Dispatch& dispatch) {
  auto opts = std::make_shared<ExplainOptions>();
  auto* cmd = parent.add_subcommand(
      "explain",
      "Explain an application's predictions with RISE saliency maps (a picture per class)");
  cmd->add_option("--app", opts->app, "Application name")
      ->required()
      ->envname("APPLICATION_NAME")
      ->type_name("APP");
  auto* data = cmd->add_option(
      "--data", opts->data,
      "Images with labels: a split .npz (x, y) or a dataset directory (its test split)");
  cmd->add_option("--indices", opts->indices, "Image indices of --data, comma-separated")
      ->delimiter(',')
      ->capture_default_str()
      ->needs(data);
  auto* image =
      cmd->add_option("--image", opts->image,
                      "Instead of --data: one PNG or JPEG of the model's image size (no label)");
  data->excludes(image);
  cmd->add_flag("--fit", opts->fit,
                "With --image: take any picture of one digit and bring it to the MNIST form "
                "first (as predict --fit)")
      ->needs(image);
  cmd->add_option("--out", opts->out, "PNG file to write, NAME.png (empty: none)")
      ->capture_default_str();
  cmd->add_option("--masks", opts->masks, "Random masks (N)")
      ->check(in_range(1, 100000))
      ->capture_default_str();
  cmd->add_option("--grid", opts->grid, "Mask grid cells per side")
      ->check(in_range(2, 28))
      ->capture_default_str();
  cmd->add_option("--p", opts->p, "Probability that a grid cell is kept")
      ->check(fraction(false))
      ->capture_default_str();
  cmd->add_option("--seed", opts->seed, "Random seed (the same seed gives the same maps)")
      ->capture_default_str();
  cmd->add_option("--model", opts->model,
                  "Served version to explain, NAME:VERSION (default: the primary)");
  cmd->footer("Examples:\n  mlctl explain --app mnist-app --data data/mnist/test.npz --indices "
              "0,1,2 --out rise.png\n  mlctl explain --app mnist-app --image photo-of-a-7.png "
              "--fit --out seven.png");
  cmd->callback([opts, data, image, &dispatch] {
    if (data->count() == 0 && image->count() == 0) {
      throw CLI::RequiredError("--data or --image");
    }
    dispatch.run = [opts](Context& ctx) { return run_explain(*opts, ctx); };
  });
}

} // namespace mlctl::cli

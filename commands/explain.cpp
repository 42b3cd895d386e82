// mlctl explain: RISE saliency maps of an application's model for a few test images, computed
// by the server, drawn as one grid picture (rows: images, columns: classes).

#include "api/monitor_routes.hpp"
#include "api/names.hpp"
#include "commands/commands.hpp"
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
  std::string out = "rise.png";
  std::size_t masks = 2000;
  int grid = 7;
  double p = 0.5;
  std::uint64_t seed = 0;
  std::string model;
};

int run_explain(const ExplainOptions& o, Context& ctx) {
  api::validate_name(o.app, "application name");
  const std::filesystem::path data(o.data);
  const auto split = std::filesystem::is_directory(data) ? data::read_dataset_split(data, "test")
                                                         : data::read_split(data);
  if (o.indices.empty()) {
    throw Error(ErrorKind::invalid_input, "--indices: give at least one image index");
  }
  // Checked before the server works: the picture is a PNG whatever the name says.
  if (!o.out.empty() && !util::iequals(std::filesystem::path(o.out).extension().string(), ".png")) {
    throw Error(ErrorKind::invalid_input,
                "--out " + o.out + ": the picture is written as PNG: give a name ending in .png");
  }
  const std::size_t pixels = split.rows * split.cols;
  nlohmann::json images = nlohmann::json::array();
  for (const auto i : o.indices) {
    if (i >= split.count) {
      throw Error(ErrorKind::invalid_input, "--indices: " + std::to_string(i) +
                                                " is past the last image of " + o.data + " (" +
                                                std::to_string(split.count) + " images)");
    }
    images.push_back(
        std::vector<int>(split.x.begin() + static_cast<std::ptrdiff_t>(i * pixels),
                         split.x.begin() + static_cast<std::ptrdiff_t>((i + 1) * pixels)));
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
  const auto answer = client.call("POST", api::routes::application_explain(o.app), body, true);

  std::vector<explain::ExplainedImage> rows;
  const auto& results = answer.at("results");
  nlohmann::json out_images = nlohmann::json::array();
  for (std::size_t k = 0; k < o.indices.size() && k < results.size(); ++k) {
    const auto i = o.indices[k];
    const auto& r = results[k];
    explain::ExplainedImage row;
    row.image.resize(pixels);
    for (std::size_t j = 0; j < pixels; ++j) {
      row.image[j] = static_cast<float>(split.x[i * pixels + j]) / 255.0f;
    }
    row.true_class = split.y[i];
    row.caption = "#" + std::to_string(i);
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
    out_images.push_back({{"index", i},
                          {"label", split.y[i]},
                          {"predicted", s.predicted},
                          {"correct", s.predicted == split.y[i]},
                          {"probabilities", r.at("probabilities")},
                          {"baseline", r.value("baseline", nlohmann::json::array())},
                          {"saliency", maps}});
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
    Table table({"INDEX", "LABEL", "PREDICTED", "PROBABILITY", "CORRECT"});
    for (const auto& im : result["images"]) {
      const auto predicted = im["predicted"].get<std::int64_t>();
      table.add(
          {std::to_string(im["index"].get<std::size_t>()), std::to_string(im["label"].get<int>()),
           std::to_string(predicted),
           format_fixed(im["probabilities"][static_cast<std::size_t>(predicted)].get<double>(), 3),
           im["correct"].get<bool>() ? "yes" : "no"});
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
  cmd->add_option("--data", opts->data,
                  "Images with labels: a split .npz (x, y) or a dataset directory (its test split)")
      ->required();
  cmd->add_option("--indices", opts->indices, "Image indices, comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--out", opts->out, "PNG file to write, NAME.png (empty: none)")
      ->capture_default_str();
  cmd->add_option("--masks", opts->masks, "Random masks (N)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->add_option("--grid", opts->grid, "Mask grid cells per side")
      ->check(CLI::Range(2, 28))
      ->capture_default_str();
  cmd->add_option("--p", opts->p, "Probability that a grid cell is kept")->capture_default_str();
  cmd->add_option("--seed", opts->seed, "Random seed (the same seed gives the same maps)")
      ->capture_default_str();
  cmd->add_option("--model", opts->model,
                  "Served version to explain, NAME:VERSION (default: the primary)");
  cmd->footer("Example:\n  mlctl explain --app mnist-app --data data/mnist/test.npz --indices "
              "0,1,2 --out rise.png");
  cmd->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_explain(*opts, ctx); };
  });
}

} // namespace mlctl::cli

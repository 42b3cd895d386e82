// `mlctl data describe DIR`: the summary of a dataset directory (shared with fetch-mnist).
#include "commands/data.hpp"

#include "commands/commands.hpp"
#include "commands/output.hpp"
#include "data/dataset.hpp"
#include "util/error.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>
#include <memory>

namespace mlctl::cli {

namespace {

struct DataDescribeOptions {
  std::string dir;
};

// A JSON number or array of numbers read leniently: dataset.json is ours, but an older or
// hand-edited file should still print.
std::string number_text(const nlohmann::json& v, int decimals) {
  if (v.is_number_integer() || v.is_number_unsigned()) {
    return v.dump();
  }
  if (v.is_number()) {
    return format_fixed(v.get<double>(), decimals);
  }
  return "-";
}

std::string source_text(const nlohmann::json& source) {
  if (!source.is_object()) {
    return source.is_string() ? source.get<std::string>() : source.dump();
  }
  std::string out;
  std::string detail;
  if (source.contains("application")) { // mlctl subsample: stored production requests
    out = "requests of application " + source.value("application", std::string("?")) + " at " +
          source.value("server", std::string("?"));
    detail = source.value("strategy", std::string("?")) + ", " +
             (source.value("labeled", std::string()) == "only" ? "labelled only" : "any") + ", ";
  } else {
    const std::string location = source.value("location", std::string());
    out = source.value("kind", std::string("?")) + (location.empty() ? "" : " " + location);
  }
  if (source.contains("test_fraction")) {
    detail += "test fraction " + number_text(source["test_fraction"], 2);
  }
  return detail.empty() ? out : out + " (" + detail + ")";
}

int run_data_describe(const DataDescribeOptions& opts, Context& ctx) {
  const nlohmann::json summary = data::read_dataset_info(opts.dir);
  print_dataset_summary(ctx, opts.dir, summary);
  return 0;
}

} // namespace

nlohmann::json dataset_view(const std::string& dir, const nlohmann::json& summary) {
  nlohmann::json view = summary;
  view["path"] = dir;
  if (view.contains("profile") && view["profile"].is_object()) {
    nlohmann::json& profile = view["profile"];
    const auto extreme = [&](const char* key, bool lowest) -> nlohmann::json {
      if (!profile.contains(key) || !profile[key].is_array() || profile[key].empty()) {
        return nullptr;
      }
      const auto values = profile[key].get<std::vector<double>>();
      const double v = lowest ? *std::min_element(values.begin(), values.end())
                              : *std::max_element(values.begin(), values.end());
      return static_cast<std::int64_t>(v);
    };
    profile["min"] = extreme("pixel_min", true);
    profile["max"] = extreme("pixel_max", false);
    for (const char* key : {"pixel_mean", "pixel_std", "pixel_min", "pixel_max"}) {
      profile.erase(key);
    }
  }
  return view;
}

void print_dataset_summary(const Context& ctx, const std::string& dir,
                           const nlohmann::json& summary) {
  const nlohmann::json view = dataset_view(dir, summary);
  print_result(ctx, view, [&] {
    const nlohmann::json counts = view.value("counts", nlohmann::json::object());
    const nlohmann::json shape = view.value("shape", nlohmann::json::array());
    const nlohmann::json profile = view.value("profile", nlohmann::json::object());
    std::string shape_text;
    for (const auto& d : shape) {
      shape_text += (shape_text.empty() ? "" : "x") + number_text(d, 0);
    }
    print_fields({
        {"dataset", dir},
        {"source", source_text(view.value("source", nlohmann::json()))},
        {"digest", view.value("digest", std::string("-"))},
        {"images", (shape_text.empty() ? std::string("?") : shape_text) + " uint8"},
        {"train", number_text(counts.value("train", nlohmann::json()), 0) + " images"},
        {"test", number_text(counts.value("test", nlohmann::json()), 0) + " images"},
        {"pixels (train)", "mean " + number_text(profile.value("mean", nlohmann::json()), 2) +
                               ", std " + number_text(profile.value("std", nlohmann::json()), 2) +
                               ", min " + number_text(profile.value("min", nlohmann::json()), 0) +
                               ", max " + number_text(profile.value("max", nlohmann::json()), 0)},
    });
    std::cout << '\n';
    const nlohmann::json hist = view.value("class_histogram", nlohmann::json::object());
    const nlohmann::json train = hist.value("train", nlohmann::json::array());
    const nlohmann::json test = hist.value("test", nlohmann::json::array());
    Table table({"CLASS", "TRAIN", "TEST"});
    const std::size_t classes = std::max(train.size(), test.size());
    for (std::size_t c = 0; c < classes; ++c) {
      table.add({std::to_string(c), c < train.size() ? number_text(train[c], 0) : "-",
                 c < test.size() ? number_text(test[c], 0) : "-"});
    }
    table.print();
  });
}

void register_data(CLI::App& parent, Dispatch& dispatch) {
  auto* data = parent.add_subcommand("data", "Inspect dataset directories");
  data->require_subcommand(1);
  data->footer("Example:\n  mlctl data describe data/mnist");

  auto opts = std::make_shared<DataDescribeOptions>();
  auto* describe = data->add_subcommand(
      "describe", "Print the summary of a dataset directory (source, digest, counts, classes)");
  describe->add_option("dir", opts->dir, "The dataset directory (written by fetch-mnist)")
      ->required()
      ->type_name("DIR");
  describe->footer("Example:\n  mlctl data describe data/mnist -o json");
  describe->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_data_describe(*opts, ctx); };
  });
}

} // namespace mlctl::cli

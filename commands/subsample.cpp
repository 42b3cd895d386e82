// mlctl subsample: a representative sample of an application's stored production requests,
// written as a dataset directory (the fetch-mnist format) to retrain on.

#include "api/base64.hpp"
#include "api/monitor_routes.hpp"
#include "api/names.hpp"
#include "commands/commands.hpp"
#include "commands/output.hpp"
#include "commands/remote.hpp"
#include "data/dataset.hpp"
#include "nn/rng.hpp"
#include "util/error.hpp"

#include <CLI/CLI.hpp>
#include <memory>
#include <numeric>

namespace mlctl::cli {

namespace {

struct SubsampleOptions {
  std::string app;
  std::size_t n = 1000;
  std::string out;
  std::string labeled; // default: only (any with --pseudo-label)
  bool pseudo_label = false;
  std::string strategy = "reservoir";
  std::string since;
  std::string until;
  std::uint64_t seed = 42;
  double test_fraction = 0.25;
};

std::string query_value(const std::string& v) {
  std::string out;
  for (const char c : v) {
    if (c == '+') {
      out += "%2B";
    } else if (c == ':') {
      out += "%3A";
    } else {
      out += c;
    }
  }
  return out;
}

int run_subsample(const SubsampleOptions& o, Context& ctx) {
  api::validate_name(o.app, "application name");
  const std::string labeled = !o.labeled.empty() ? o.labeled : (o.pseudo_label ? "any" : "only");
  if (o.test_fraction < 0 || o.test_fraction >= 1) {
    throw Error(ErrorKind::invalid_input, "--test-fraction: must be in [0, 1)");
  }
  std::string query = "?n=" + std::to_string(o.n) + "&strategy=" + o.strategy +
                      "&labeled=" + labeled + "&seed=" + std::to_string(o.seed);
  if (!o.since.empty()) {
    query += "&since=" + query_value(o.since);
  }
  if (!o.until.empty()) {
    query += "&until=" + query_value(o.until);
  }
  auto client = api_client(ctx);
  const auto sample = client.call("GET", api::routes::application_subsample(o.app) + query);

  // Rows with a label (or, with --pseudo-label, the served prediction).
  std::vector<std::size_t> keep;
  std::size_t pseudo = 0;
  std::size_t unlabelled = 0;
  const auto& rows = sample.at("rows");
  std::string first_time;
  std::string last_time;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    if (!r.at("input").is_string()) {
      continue;
    }
    if (r.at("label").is_null()) {
      if (!o.pseudo_label) {
        ++unlabelled;
        continue;
      }
      ++pseudo;
    }
    keep.push_back(i);
    const auto t = r.at("time").get<std::string>();
    first_time = first_time.empty() || t < first_time ? t : first_time;
    last_time = std::max(last_time, t);
  }
  if (keep.empty()) {
    throw Error(ErrorKind::not_found,
                "application '" + o.app + "': no stored " +
                    (labeled == "only" ? std::string("labelled ") : std::string()) +
                    "requests match (send feedback, or use --labeled any --pseudo-label)");
  }
  if (unlabelled > 0) {
    ctx.log()("skipped " + std::to_string(unlabelled) +
              " unlabelled request(s) (add --pseudo-label to keep them)");
  }
  // A seeded shuffle, then the 75/25 split of the original tutorial (configurable).
  nn::Rng rng(o.seed);
  std::vector<std::uint32_t> order(keep.size());
  std::iota(order.begin(), order.end(), 0u);
  rng.shuffle(order);
  std::size_t n_test =
      static_cast<std::size_t>(static_cast<double>(keep.size()) * o.test_fraction + 0.5);
  if (o.test_fraction > 0 && keep.size() >= 2) {
    n_test = std::clamp<std::size_t>(n_test, 1, keep.size() - 1);
  }
  data::LabeledImages train;
  data::LabeledImages test;
  for (std::size_t k = 0; k < order.size(); ++k) {
    const auto& r = rows[keep[order[k]]];
    auto& split = k < n_test ? test : train;
    const auto pixels = api::base64_decode(r.at("input").get<std::string>(), "rows[].input");
    if (pixels.size() != 784) {
      throw Error(ErrorKind::corrupt, "subsample: a row has " + std::to_string(pixels.size()) +
                                          " pixels, expected 784");
    }
    split.x.insert(split.x.end(), pixels.begin(), pixels.end());
    const auto label =
        r.at("label").is_null() ? r.at("predicted").get<int>() : r.at("label").get<int>();
    split.y.push_back(static_cast<std::uint8_t>(label));
    split.count += 1;
  }
  const nlohmann::json source = {
      {"name", "production-subsample"},
      {"application", o.app},
      {"server", client.server()},
      {"strategy", o.strategy},
      {"labeled", labeled},
      {"pseudo_label", o.pseudo_label},
      {"pseudo_labelled", pseudo},
      {"seed", o.seed},
      {"requested", o.n},
      {"scanned", sample.at("scanned")},
      {"production_class_counts", sample.at("class_counts")},
      {"since", o.since.empty() ? nlohmann::json() : nlohmann::json(o.since)},
      {"until", o.until.empty() ? nlohmann::json() : nlohmann::json(o.until)},
      {"time_range", {{"first", first_time}, {"last", last_time}}},
      {"test_fraction", o.test_fraction},
  };
  const auto summary = data::write_dataset(o.out, train, test, source);
  const nlohmann::json result = {{"application", o.app},
                                 {"out", o.out},
                                 {"digest", summary.at("digest")},
                                 {"train", train.count},
                                 {"test", test.count},
                                 {"pseudo_labelled", pseudo},
                                 {"scanned", sample.at("scanned")},
                                 {"strategy", o.strategy},
                                 {"source", source}};
  print_result(ctx, result, [&] {
    print_fields(
        {{"dataset", o.out},
         {"digest", summary.at("digest").get<std::string>()},
         {"images",
          std::to_string(train.count) + " train, " + std::to_string(test.count) + " test"},
         {"sampled from", std::to_string(sample.at("scanned").get<std::int64_t>()) +
                              " stored requests (" + o.strategy + ", labeled " + labeled + ")"},
         {"time range", first_time + " .. " + last_time},
         {"labels", pseudo > 0
                        ? std::to_string(pseudo) + " pseudo-labels from the served predictions"
                        : std::string("ground truth (feedback)")}});
  });
  return 0;
}

} // namespace

void register_subsample(CLI::App& parent, Dispatch& dispatch) {
  auto opts = std::make_shared<SubsampleOptions>();
  auto* cmd = parent.add_subcommand(
      "subsample",
      "Write a representative sample of stored production requests as a dataset directory");
  cmd->add_option("--app", opts->app, "Application name")->required()->envname("APPLICATION_NAME");
  cmd->add_option("-n", opts->n, "Images to sample")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->add_option("--out", opts->out, "Dataset directory to write (replaced atomically)")
      ->required();
  cmd->add_option("--labeled", opts->labeled,
                  "Which requests: only those with feedback labels, or any (default only; any with "
                  "--pseudo-label)")
      ->check(CLI::IsMember({"only", "any"}));
  cmd->add_flag(
      "--pseudo-label", opts->pseudo_label,
      "Label requests without feedback with the served prediction (recorded in dataset.json)");
  cmd->add_option("--strategy", opts->strategy,
                  "reservoir (uniform) or stratified (keeps the production class proportions)")
      ->check(CLI::IsMember({"reservoir", "stratified"}))
      ->capture_default_str();
  cmd->add_option("--since", opts->since, "Requests from: an age (7d, 10m) or an RFC 3339 time");
  cmd->add_option("--until", opts->until, "Requests before: an age or an RFC 3339 time");
  cmd->add_option("--seed", opts->seed, "Random seed of the sample and the split")
      ->capture_default_str();
  cmd->add_option("--test-fraction", opts->test_fraction, "Share of the sample in test.npz")
      ->capture_default_str();
  cmd->footer("Example:\n  mlctl subsample --app mnist-app -n 1000 --out data/retrain");
  cmd->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_subsample(*opts, ctx); };
  });
}

} // namespace mlctl::cli

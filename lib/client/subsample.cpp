#include "client/subsample.hpp"

#include "api/base64.hpp"
#include "api/monitor_routes.hpp"
#include "api/routes.hpp"
#include "data/dataset.hpp"
#include "nn/rng.hpp"
#include "util/error.hpp"

#include <algorithm>
#include <numeric>

namespace mlctl::client {

nlohmann::json write_subsample(ApiClient& client, const SubsampleRequest& o,
                               const std::filesystem::path& out, const util::LogFn& log) {
  if (o.test_fraction < 0 || o.test_fraction >= 1) {
    throw Error(ErrorKind::invalid_input, "--test-fraction: must be in [0, 1)");
  }
  std::vector<std::pair<std::string, std::string>> params = {{"n", std::to_string(o.n)},
                                                             {"strategy", o.strategy},
                                                             {"labeled", o.labeled},
                                                             {"seed", std::to_string(o.seed)}};
  if (!o.since.empty()) {
    params.emplace_back("since", o.since);
  }
  if (!o.until.empty()) {
    params.emplace_back("until", o.until);
  }
  const auto sample =
      client.call("GET", api::routes::application_subsample(o.application) + api::routes::query(params));

  // Rows with a label (or, with pseudo-labels, the served prediction).
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
                "application '" + o.application + "': no stored " +
                    (o.labeled == "only" ? std::string("labelled ") : std::string()) +
                    "requests match (send feedback, or use --labelled any --pseudo-label)");
  }
  if (unlabelled > 0 && log) {
    log("skipped " + std::to_string(unlabelled) +
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
  const auto opt_text = [](const std::string& v) {
    return v.empty() ? nlohmann::json() : nlohmann::json(v);
  };
  const nlohmann::json source = {
      {"name", "production-subsample"},
      {"application", o.application},
      {"server", client.server()},
      {"strategy", o.strategy},
      {"labeled", o.labeled},
      {"pseudo_label", o.pseudo_label},
      {"pseudo_labelled", pseudo},
      {"seed", o.seed},
      {"requested", o.n},
      {"scanned", sample.at("scanned")},
      {"production_class_counts", sample.at("class_counts")},
      // As the server applied it (it fixes an open end), so the window can be taken again.
      {"window", {{"since", sample.value("since", opt_text(o.since))},
                  {"until", sample.value("until", opt_text(o.until))}}},
      {"time_range", {{"first", first_time}, {"last", last_time}}},
      {"test_fraction", o.test_fraction},
  };
  const auto summary = data::write_dataset(out, train, test, source);
  return {{"application", o.application},
          {"out", out.string()},
          {"digest", summary.at("digest")},
          {"train", train.count},
          {"test", test.count},
          {"pseudo_labelled", pseudo},
          {"scanned", sample.at("scanned")},
          {"strategy", o.strategy},
          {"source", source}};
}

std::optional<SubsampleRequest> subsample_request_from_source(const nlohmann::json& source) {
  if (!source.is_object() || source.value("name", std::string()) != "production-subsample" ||
      !source.contains("window") || !source["window"].is_object()) {
    return std::nullopt;
  }
  const auto text = [](const nlohmann::json& v) {
    return v.is_string() ? v.get<std::string>() : std::string();
  };
  SubsampleRequest r;
  r.application = source.value("application", std::string());
  r.n = source.value("requested", std::size_t{1000});
  r.labeled = source.value("labeled", std::string("only"));
  r.pseudo_label = source.value("pseudo_label", false);
  r.strategy = source.value("strategy", std::string("reservoir"));
  r.since = text(source["window"].value("since", nlohmann::json()));
  r.until = text(source["window"].value("until", nlohmann::json()));
  r.seed = source.value("seed", std::uint64_t{42});
  r.test_fraction = source.value("test_fraction", 0.25);
  if (r.application.empty() || r.until.empty()) {
    return std::nullopt;
  }
  return r;
}

} // namespace mlctl::client

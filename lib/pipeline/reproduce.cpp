#include "pipeline/reproduce.hpp"

#include "util/error.hpp"

namespace mlctl::pipeline {

std::optional<RefetchSource> refetch_source(const nlohmann::json& source) {
  if (!source.is_object()) {
    return std::nullopt;
  }
  const auto kind = source.value("kind", std::string());
  const auto location = source.value("location", std::string());
  if (location.empty() ||
      (kind != "http" && kind != "directory" && kind != "npz" && kind != "npm")) {
    return std::nullopt;
  }
  RefetchSource out;
  out.source = location;
  if (const auto it = source.find("test_fraction"); it != source.end() && it->is_number()) {
    out.test_fraction = it->get<double>();
  }
  return out;
}

model::TrainOptions retrain_options(const model::ModelCard& card, const std::string& ref,
                                    const std::filesystem::path& data_dir,
                                    const std::filesystem::path& out_dir) {
  const auto& l = card.lineage;
  if (l.imported) {
    throw Error(ErrorKind::invalid_input,
                ref + ": an imported model (no lineage): there is nothing to retrain from");
  }
  if (!l.hyperparameters || !l.seed) {
    throw Error(ErrorKind::invalid_input,
                ref + ": the lineage has no " + (l.seed ? "hyper-parameters" : "seed") +
                    ": there is nothing to retrain from");
  }
  const auto& hp = *l.hyperparameters;
  model::TrainOptions o;
  o.data_dir = data_dir;
  o.out_dir = out_dir;
  o.name = card.name;
  o.hidden = hp.hidden;
  o.optimizer = nn::optimizer_from_string(hp.optimizer);
  o.learning_rate = hp.learning_rate;
  if (hp.batch_size <= 0 || hp.steps <= 0) {
    throw Error(ErrorKind::invalid_input,
                ref + ": the lineage records no batch size or step count to retrain with");
  }
  o.batch_size = static_cast<std::size_t>(hp.batch_size);
  // The exact number of optimizer steps run: --epochs E and --steps E*per_epoch train alike.
  o.steps = static_cast<std::uint64_t>(hp.steps);
  o.epochs = 0;
  o.seed = *l.seed;
  o.threads = l.threads ? static_cast<int>(*l.threads) : 1;
  o.autoencoder = hp.autoencoder.has_value();
  if (hp.autoencoder) {
    const auto& ae = *hp.autoencoder;
    if (ae.layers.size() < 3 || ae.epochs <= 0) {
      throw Error(ErrorKind::invalid_input,
                  ref + ": the lineage's autoencoder needs layers (input, hidden..., output) "
                        "and epochs");
    }
    o.ae_hidden.assign(ae.layers.begin() + 1, ae.layers.end() - 1);
    o.ae_epochs = static_cast<std::uint64_t>(ae.epochs);
    o.ae_learning_rate = ae.learning_rate;
  }
  return o;
}

std::vector<Difference> lineage_differences(const model::Lineage& recorded,
                                            const std::string& data_digest, int threads,
                                            const std::string& mlctl_version,
                                            const std::string& git_commit) {
  std::vector<Difference> out;
  const std::string recorded_digest = recorded.dataset ? recorded.dataset->digest : "";
  if (recorded_digest != data_digest) {
    out.push_back({"data digest", recorded_digest.empty() ? "-" : recorded_digest, data_digest});
  }
  if (recorded.mlctl_version != mlctl_version) {
    out.push_back({"mlctl version", recorded.mlctl_version.empty() ? "-" : recorded.mlctl_version,
                   mlctl_version});
  }
  if (recorded.git_commit != git_commit) {
    out.push_back(
        {"git commit", recorded.git_commit.empty() ? "-" : recorded.git_commit, git_commit});
  }
  const std::int64_t recorded_threads = recorded.threads.value_or(1);
  if (recorded_threads != threads) {
    out.push_back({"threads", std::to_string(recorded_threads), std::to_string(threads)});
  }
  return out;
}

} // namespace mlctl::pipeline

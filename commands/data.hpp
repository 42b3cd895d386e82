#pragma once
// The dataset summary as `fetch-mnist` and `data describe` print it (implemented in data.cpp).

#include "commands/context.hpp"

#include <nlohmann/json.hpp>
#include <string>

namespace mlctl::cli {

// Returns what `-o json|yaml` prints for the dataset at `dir` whose dataset.json is `summary`:
// the summary with `path` added and the four 784-long `profile.pixel_*` arrays replaced by
// the overall `profile.min`/`profile.max` (`profile.mean`/`profile.std` are kept):
// {"path", "format", "source", "digest", "shape", "counts": {"train", "test"},
//  "class_histogram": {"train": [10], "test": [10]},
//  "profile": {"mean", "std", "min", "max", "intensity_histogram": [256]}}.
nlohmann::json dataset_view(const std::string& dir, const nlohmann::json& summary);

// Prints the dataset summary: `dataset_view` as JSON/YAML, or fields and a class table.
void print_dataset_summary(const Context& ctx, const std::string& dir,
                           const nlohmann::json& summary);

} // namespace mlctl::cli

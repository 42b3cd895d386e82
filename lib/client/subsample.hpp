#pragma once
// A subsample of an application's stored production requests, written as a dataset directory
// (the fetch-mnist format): what `mlctl subsample` does, and what `mlctl reproduce` does again
// for a model trained on one. The window is absolute ([since, until) as RFC 3339 times; the
// server fixes an open end just past), and recorded in dataset.json with the seed, so the same
// request against the same store takes the same sample.

#include "client/api_client.hpp"
#include "util/progress.hpp"

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace mlctl::client {

struct SubsampleRequest {
  std::string application;
  std::size_t n = 1000;
  std::string labeled = "only"; // only | any
  bool pseudo_label = false;    // unlabelled rows take the served prediction
  std::string strategy = "reservoir";
  std::string since; // RFC 3339 (inclusive) or empty: from the first stored request
  std::string until; // RFC 3339 (exclusive) or empty: the server's now (the answer waits 250 ms for
                     // requests still in flight)
  std::uint64_t seed = 42;
  double test_fraction = 0.25;
};

// Fetches the sample from the platform and writes it to `out` (replaced atomically); returns
// the summary {application, out, digest, train, test, pseudo_labelled, scanned, strategy,
// source} where `source` is what dataset.json records. Throws `Error{not_found}` when no stored
// request matches, `Error{invalid_input}` for a bad request, and the client's errors.
nlohmann::json write_subsample(ApiClient& client, const SubsampleRequest& request,
                               const std::filesystem::path& out, const util::LogFn& log);

// Returns the request that took the sample a dataset.json `source` describes
// ({"name": "production-subsample", ...}), or nothing when it is not one, or one written before
// the window was recorded (no `window`).
std::optional<SubsampleRequest> subsample_request_from_source(const nlohmann::json& source);

} // namespace mlctl::client

#pragma once
// The integration test of a live application (`mlctl test`): a labelled golden set through
// the real endpoint (accuracy, latency p50/p99), then edge cases every gateway must get
// right: all-zero and all-one images are answered; a wrong shape, a NaN, an empty batch and
// a batch over the server's limit are refused with 400 (413 also for the last). The verdict
// is a return value; JUnit XML for CI.

#include "client/inference_client.hpp"
#include "data/dataset.hpp"
#include "util/progress.hpp"

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mlctl::client {

struct AppTestOptions {
  std::string application;
  std::size_t samples = 1000;  // first N images of the golden set (0: all)
  std::size_t batch_size = 1;  // images per request
  double min_accuracy = 0.9;   // pass when accuracy >= this
  std::size_t max_batch = 256; // the server's `--max-batch`: the over-limit case sends one more
  bool edge_cases = true;
};

struct AppTestCase {
  std::string name; // e.g. "golden set accuracy", "all-zero image is answered"
  bool passed = false;
  std::string message; // why it failed, or what it measured
  double seconds = 0;
};

struct AppTestReport {
  std::string application;
  std::size_t images = 0; // golden images answered
  std::size_t correct = 0;
  std::size_t requests = 0; // golden requests sent
  std::size_t failed_requests = 0;
  double accuracy = 0;
  double min_accuracy = 0;
  double latency_p50_ms = 0; // per request, round trip
  double latency_p99_ms = 0;
  std::map<std::string, std::size_t> answered_by; // "mnist:3" -> images
  std::vector<AppTestCase> cases;
  bool passed = false;
  double seconds = 0;
};

// Runs the test against `options.application` with `golden` (its first `samples` images).
// Throws `Error{invalid_input}` for an empty golden set or a batch size of 0, `Error{unavailable}`
// when the server cannot be reached; HTTP answers, even 5xx, are results.
AppTestReport run_app_test(InferenceClient& client, const data::LabeledImages& golden,
                           const AppTestOptions& options, const util::ProgressFn& progress = {});

// Returns the report as JUnit XML (one <testsuite>, one <testcase> per case).
std::string junit_xml(const AppTestReport& report);

// Returns the report as JSON (the `-o json` contract of `mlctl test`).
nlohmann::json to_json(const AppTestReport& report);

// Returns the `q` quantile (0..1) of `values` by the nearest-rank method (0 when empty).
double percentile(std::vector<double> values, double q);

} // namespace mlctl::client

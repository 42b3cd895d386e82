#pragma once
// Monitoring of served versions (an `InferenceSink`): per (application, model, version,
// variant) request and error counters, a latency histogram, predicted-class counts, the
// reconstruction score (mean squared error of the version's autoencoder on each request
// image), accuracy over labelled requests, a time series in fixed steps, and the health of
// each version (rolling reconstruction mean over a window of scored images against the
// threshold; optional minimum accuracy) whose changes are events.
//
// Off the request thread: `on_inference` only counts and queues the images to score (bounded;
// a token bucket caps the images scored per second so the monitors stay a small, fixed share of
// the CPU under load; what is skipped is counted). One worker thread runs the autoencoders in
// batches, updates the rolling windows, polls accuracy and evaluates health.

#include "server/inference.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mlctl::onnx {
class Model;
}

namespace mlctl::server {

// What the monitors need to know about one served version of an application.
struct MonitorTarget {
  std::shared_ptr<const void> keep_alive;   // holds `autoencoder` alive
  const onnx::Model* autoencoder = nullptr; // none: no reconstruction score
  double input_scale = 1.0;                 // unused for records (inputs are already in [0, 1])
  std::optional<double> threshold;          // reconstruction threshold (manifest override or card)
  std::optional<double> min_accuracy;       // from spec.monitoring.min_accuracy
  std::size_t window = 100;                 // spec.monitoring.window

  // Scored images the reconstruction monitor waits for before it judges a version.
  std::size_t samples_needed() const {
    return std::min<std::size_t>(std::max<std::size_t>(1, window), 10);
  }
};

// Returns the target of (application, model, version), or nothing when it is not served.
using TargetLookup = std::function<std::optional<MonitorTarget>(
    const std::string& application, const std::string& model, std::int64_t version)>;

// Rolling accuracy of the versions of one application: (model, version) -> (labelled, correct).
using AccuracySource =
    std::function<std::map<std::pair<std::string, std::int64_t>,
                           std::pair<std::int64_t, std::int64_t>>(const std::string& application)>;

// A change of a version's health.
struct HealthEvent {
  std::int64_t id = 0; // set once stored
  std::string time;    // RFC 3339
  std::string application;
  std::string model;
  std::int64_t version = 0;
  std::string from; // "healthy" | "unhealthy" | "unknown"
  std::string to;
  std::string monitor; // "reconstruction" | "accuracy" (the one that decided)
  double value = 0;    // the rolling value then
  double threshold = 0;
};

// Returns the JSON form of an event: {id, time, application, model, version, ref, from, to,
// monitor, value, threshold}.
nlohmann::json to_json(const HealthEvent& event);

struct MetricsOptions {
  std::chrono::seconds step{10};       // time-series resolution
  std::size_t steps = 720;             // time-series length per series (2 hours of 10 s)
  std::size_t queue_capacity = 4096;   // images waiting to be scored; more are skipped
  double max_scored_per_second = 4000; // token bucket on reconstruction scoring (0: no cap)
  std::chrono::milliseconds accuracy_poll{1000};
  std::function<std::chrono::system_clock::time_point()> clock; // default: system clock
};

// The latency histogram's upper bounds, in seconds (the Prometheus `le` labels, +Inf implied).
const std::vector<double>& latency_buckets();

// Returns the `q` quantile (seconds) of a latency histogram (`counts` per bucket of
// `latency_buckets()`, the +Inf bucket last), interpolating linearly inside the bucket, as
// Prometheus' histogram_quantile does; nothing when it is empty.
std::optional<double> latency_quantile(std::span<const std::uint64_t> counts, double q);

// The cumulative counters of one series (application, model, version, variant) since the
// server started; differences of two readings give what happened in between.
struct SeriesTotals {
  std::uint64_t requests = 0;
  std::uint64_t errors = 0;
  std::uint64_t images = 0;
  double latency_sum = 0;              // seconds
  std::vector<std::uint64_t> latency;  // per bucket of `latency_buckets()`, +Inf last
  double recon_sum = 0;                // reconstruction scores of scored images
  std::uint64_t recon_count = 0;
  std::optional<double> threshold;     // the version's reconstruction threshold, once known
};

class Metrics final : public InferenceSink {
public:
  // `lookup` finds the autoencoder and thresholds of a version (called on the worker thread,
  // cached per version until `invalidate()`); `accuracy` (may be empty) is polled every
  // `accuracy_poll`; `on_event` (may be empty) receives every health change on the worker
  // thread. Starts the worker.
  Metrics(MetricsOptions options, TargetLookup lookup, AccuracySource accuracy,
          std::function<void(const HealthEvent&)> on_event);
  // Stops the worker (queued images are dropped).
  ~Metrics() override;
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Counts `record` and queues its images for scoring; never blocks, never throws.
  void on_inference(const std::shared_ptr<const InferenceRecord>& record) noexcept override;

  // Forgets cached targets (call after an application changed: thresholds, versions).
  void invalidate();
  // Waits until every image queued before the call is scored and health re-evaluated; returns
  // false when `timeout` passed first (for tests and the explain of a settled state).
  bool flush(std::chrono::milliseconds timeout);
  // Stops the worker; idempotent.
  void stop();

  // Returns the Prometheus text exposition (format 0.0.4) of every series; `extra` is
  // appended as is (other components' metrics, already formatted).
  std::string prometheus(const std::string& extra = {}) const;
  // Returns the time series of `application` from `since` in steps of `step` (a multiple of
  // the resolution) as JSON: {application, step_seconds, since, until, series: [{model,
  // version, ref, variant, points: [{time, requests, errors, latency_mean_seconds,
  // latency_p50_seconds, latency_p99_seconds, reconstruction, scored, predictions}], totals}]}.
  // Throws `Error{invalid_input}` for a step that is not a positive multiple of the resolution.
  nlohmann::json series_json(const std::string& application,
                             std::chrono::system_clock::time_point since,
                             std::chrono::seconds step) const;
  // Returns the health of every version of `application` seen so far: {application, state
  // (worst of the versions: "unhealthy" > "unknown" > "healthy"), versions: [{model, version,
  // ref, state, reconstruction: {mean, threshold, window, scored}, accuracy: {value,
  // min_accuracy, labelled}, since}]}; null when no version of it was seen.
  nlohmann::json health_json(const std::string& application) const;
  // Returns the counters of one series (zeros, and a zero histogram, when it was not seen).
  SeriesTotals totals(const std::string& application, const std::string& model,
                      std::int64_t version, const std::string& variant) const;
  // Returns the state of one version ("healthy", "unhealthy" or "unknown").
  std::string state(const std::string& application, const std::string& model,
                    std::int64_t version) const;

  struct Counters {
    std::uint64_t scored = 0;  // images scored by an autoencoder
    std::uint64_t skipped = 0; // images not scored (queue full or over the rate cap)
  };
  Counters counters() const;

private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

// Computes the per-image mean squared error of `autoencoder` on `images` (n × pixels floats).
// Throws the runtime's `Error` when the autoencoder does not take that shape.
std::vector<double> reconstruction_errors(const onnx::Model& autoencoder,
                                          const std::vector<float>& images, std::size_t n);

} // namespace mlctl::server

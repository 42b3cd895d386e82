#include "server/metrics.hpp"

#include "nn/mlp.hpp"
#include "onnx/runtime.hpp"
#include "onnx/writer.hpp"
#include "util/error.hpp"

#include <doctest/doctest.h>
#include <mutex>

using namespace mlctl;
using namespace std::chrono_literals;

namespace {

// An "autoencoder" of 4-pixel images that always reconstructs 0.5: its error on an image is
// the mean of (x - 0.5)^2, so 0 for a grey image and 0.25 for a white one.
std::shared_ptr<onnx::Model> grey_autoencoder() {
  nn::Mlp mlp;
  nn::DenseLayer layer;
  layer.weight = Eigen::MatrixXf::Zero(4, 4);
  layer.bias = Eigen::VectorXf::Constant(4, 0.5f);
  mlp.layers.push_back(layer);
  return std::make_shared<onnx::Model>(
      onnx::Model::load(onnx::export_autoencoder(mlp, {}), "ae.onnx"));
}

std::shared_ptr<const server::InferenceRecord> record(float pixel, std::size_t batch = 1,
                                                      int status = 200, double latency = 0.002,
                                                      std::string variant = "primary") {
  auto r = std::make_shared<server::InferenceRecord>();
  r->trace_id = std::string(32, 'a');
  r->application = "app";
  r->model = "m";
  r->version = 1;
  r->variant = std::move(variant);
  r->status = status;
  r->latency_seconds = latency;
  r->batch = batch;
  if (status == 200) {
    r->input.assign(batch * 4, pixel);
    r->classes.assign(batch, 3);
  }
  return r;
}

struct Fixture {
  std::shared_ptr<onnx::Model> ae = grey_autoencoder();
  std::mutex mutex;
  std::vector<server::HealthEvent> events;
  server::Metrics metrics;

  explicit Fixture(server::MetricsOptions options = {})
      : metrics(
            std::move(options),
            [this](const std::string& app, const std::string& model, std::int64_t version) {
              server::MonitorTarget t;
              if (app != "app" || model != "m" || version != 1) {
                return std::optional<server::MonitorTarget>();
              }
              t.keep_alive = ae;
              t.autoencoder = ae.get();
              t.threshold = 0.1;
              t.window = 20;
              return std::optional<server::MonitorTarget>(t);
            },
            {},
            [this](const server::HealthEvent& e) {
              const std::lock_guard lock(mutex);
              events.push_back(e);
            }) {}

  void send(float pixel, int n) {
    for (int i = 0; i < n; ++i) {
      metrics.on_inference(record(pixel));
    }
    REQUIRE(metrics.flush(5s));
  }
};

} // namespace

TEST_CASE("metrics: the reconstruction window turns a version unhealthy and back, as events") {
  server::MetricsOptions options;
  options.max_scored_per_second = 0;
  Fixture f(options);
  f.send(0.5f, 30);
  CHECK(f.metrics.state("app", "m", 1) == "healthy");
  CHECK(f.events.empty()); // settling in from unknown is not an event
  f.send(1.0f, 30);
  CHECK(f.metrics.state("app", "m", 1) == "unhealthy");
  f.send(0.5f, 30);
  CHECK(f.metrics.state("app", "m", 1) == "healthy");
  const std::lock_guard lock(f.mutex);
  REQUIRE(f.events.size() == 2);
  CHECK(f.events[0].from == "healthy");
  CHECK(f.events[0].to == "unhealthy");
  CHECK(f.events[0].monitor == "reconstruction");
  CHECK(f.events[0].value > 0.1);
  CHECK(f.events[0].threshold == doctest::Approx(0.1));
  CHECK(f.events[1].to == "healthy");
  CHECK(f.events[1].value <= 0.1);
  const auto health = f.metrics.health_json("app");
  CHECK(health["state"] == "healthy");
  CHECK(health["versions"][0]["ref"] == "m:1");
  CHECK(health["versions"][0]["reconstruction"]["samples"] == 20);
  CHECK(f.metrics.health_json("other").is_null());
}

TEST_CASE("metrics: Prometheus exposition with counters, histogram and gauges") {
  server::MetricsOptions options;
  options.max_scored_per_second = 0;
  Fixture f(options);
  f.metrics.on_inference(record(1.0f, 2, 200, 0.003));
  f.metrics.on_inference(record(0.0f, 1, 400, 0.0001));
  f.metrics.on_inference(record(1.0f, 1, 200, 0.2, "canary"));
  REQUIRE(f.metrics.flush(5s));
  const auto text = f.metrics.prometheus("mlctl_extra_total 1\n");
  const std::string labels = R"(application="app",model="m",version="1",variant="primary")";
  CHECK(text.find("# TYPE mlctl_requests_total counter\n") != std::string::npos);
  CHECK(text.find("mlctl_requests_total{" + labels + "} 2\n") != std::string::npos);
  CHECK(text.find("mlctl_request_errors_total{" + labels + "} 1\n") != std::string::npos);
  CHECK(text.find("mlctl_request_duration_seconds_bucket{" + labels + ",le=\"0.0005\"} 1\n") !=
        std::string::npos);
  CHECK(text.find("mlctl_request_duration_seconds_bucket{" + labels + ",le=\"0.005\"} 2\n") !=
        std::string::npos);
  CHECK(text.find("mlctl_request_duration_seconds_bucket{" + labels + ",le=\"+Inf\"} 2\n") !=
        std::string::npos);
  CHECK(text.find("mlctl_request_duration_seconds_count{" + labels + "} 2\n") != std::string::npos);
  CHECK(text.find("mlctl_predictions_total{" + labels + ",class=\"3\"} 2\n") != std::string::npos);
  CHECK(text.find("mlctl_reconstruction_score{" + labels + "} 0.25\n") != std::string::npos);
  CHECK(text.find("variant=\"canary\"") != std::string::npos);
  CHECK(text.find("mlctl_extra_total 1\n") != std::string::npos);
}

TEST_CASE("metrics: the time series counts requests per step") {
  auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
  std::mutex clock_mutex;
  server::MetricsOptions options;
  options.max_scored_per_second = 0;
  options.clock = [&] {
    const std::lock_guard lock(clock_mutex);
    return now;
  };
  Fixture f(options);
  f.send(0.5f, 3);
  {
    const std::lock_guard lock(clock_mutex);
    now += 25s;
  }
  f.send(1.0f, 2);
  const auto j = f.metrics.series_json("app", now - 60s, 10s);
  REQUIRE(j["series"].size() == 1);
  const auto& points = j["series"][0]["points"];
  REQUIRE(points.size() == 7);
  CHECK(points[1]["requests"] == 0);
  CHECK(points[4]["requests"] == 3);
  CHECK(points[4]["reconstruction"].get<double>() == doctest::Approx(0.0));
  CHECK(points[6]["requests"] == 2);
  CHECK(points[6]["reconstruction"].get<double>() == doctest::Approx(0.25));
  CHECK(j["series"][0]["totals"]["requests"] == 5);
  CHECK_THROWS_WITH_AS(f.metrics.series_json("app", now, 15s),
                       "step: must be a positive multiple of 10s, got 15s", Error);
}

TEST_CASE("metrics: scoring is capped per second and the rest is counted as skipped") {
  server::MetricsOptions options;
  options.max_scored_per_second = 10;
  Fixture f(options);
  for (int i = 0; i < 50; ++i) {
    f.metrics.on_inference(record(0.5f));
  }
  REQUIRE(f.metrics.flush(5s));
  const auto c = f.metrics.counters();
  CHECK(c.scored + c.skipped == 50);
  CHECK(c.scored <= 12);
  CHECK(c.skipped >= 38);
}

#pragma once
// The inference gateway's core, without HTTP: the model pool (each registry version loaded
// once, shared read-only by every application and request that uses it), the routing table
// of live applications (swapped atomically: a request keeps the `Route` it started with, so
// in-flight requests finish on the old models), weighted routing with a seeded generator,
// stage chaining, shadow variants run off the request path, and the `InferenceRecord`s handed
// to the sinks.

#include "manifest/application.hpp"
#include "model/card.hpp"
#include "onnx/runtime.hpp"
#include "server/inference.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace mlctl::server {

class Registry;

// One model version, loaded from its registry artifact.
struct LoadedModel {
  std::string name;
  std::int64_t version = 0;
  std::string sha256;
  onnx::Model model;
  std::optional<onnx::Model> autoencoder; // the card's monitoring autoencoder, when present
  model::ModelCard card;
  // For images (the simple form and the records): the graph input fed with them, the values
  // per image and the per-image dims of that input ("" when the model does not take images).
  std::string image_input;
  std::size_t pixels = 0;
  std::vector<std::int64_t> image_dims;
  double input_scale = model::k_default_input_scale;

  // Returns `name:version`.
  std::string ref() const { return name + ":" + std::to_string(version); }
};

// Reads `model.onnx`, `model.yaml` and the autoencoder the card names from the artifact
// `tgz` of `name:version` and loads them. Throws `Error{invalid_input}`/`Error{corrupt}` naming
// `name:version` and the file.
std::shared_ptr<const LoadedModel> load_model_artifact(const std::filesystem::path& tgz,
                                                       std::string_view name, std::int64_t version,
                                                       std::string_view sha256);

class ModelPool {
public:
  explicit ModelPool(Registry& registry) : m_registry(registry) {}
  // Returns `name:version`, loading it from the registry unless someone still holds it.
  // Throws `Error{not_found}` for a missing version and the errors of `load_model_artifact`.
  std::shared_ptr<const LoadedModel> get(std::string_view name, std::int64_t version);

private:
  Registry& m_registry;
  std::mutex m_mutex;
  std::map<std::string, std::weak_ptr<const LoadedModel>> m_loaded;
};

// One variant of a live stage, with counters since its application's revision went live.
struct VariantSlot {
  std::shared_ptr<const LoadedModel> model;
  std::string requested; // as written in the manifest (`mnist@production`)
  int weight = 0;
  std::optional<double> shadow; // percent
  std::string role;             // "primary" | "canary" | "shadow"
  mutable std::atomic<std::uint64_t> requests{0};
  mutable std::atomic<std::uint64_t> errors{0};
  mutable std::atomic<std::uint64_t> latency_ns{0}; // sum over `requests`
};

struct StageSlot {
  std::vector<std::unique_ptr<VariantSlot>> variants;
  std::vector<std::pair<int, std::size_t>>
      cumulative; // (running weight sum, variant) of weighted variants
};

// One application as it is served: built whole by `make_route`, never changed afterwards
// (except its counters), replaced as a whole by the next revision.
struct Route {
  std::string name;
  std::int64_t revision = 0;
  manifest::Application application;
  std::vector<StageSlot> stages;
  std::uint64_t seed = 0;
  mutable std::atomic<std::uint64_t> draws{0};

  // Returns a uniform number in [0, 100) from the route's seeded sequence (thread-safe).
  double draw() const;
  // Returns the variant of `stage` that takes the next request: the one whose version is
  // pinned (a variant of the stage serving `pinned`, "name:version"), else by weight.
  std::size_t pick(std::size_t stage, double u) const;
};

// Builds the route of `app` with `models[stage][variant]` (already loaded) and checks that
// the stages fit: every variant of a stage takes the same inputs, each stage's inputs are
// outputs of every variant of the stage before, and the last stage's variants give the same
// outputs. Throws `Error{invalid_input}` "spec.stages[1].variants[0].model: ...".
std::shared_ptr<Route>
make_route(const manifest::Application& app, std::int64_t revision,
           std::vector<std::vector<std::shared_ptr<const LoadedModel>>> models,
           const std::vector<std::vector<std::string>>& requested);

// One inference request through an application, decoded.
struct InferCall {
  std::vector<onnx::Tensor> inputs; // stage-0 inputs
  std::string pinned;               // x-mlctl-variant ("name:version"), or empty
  std::string trace_id;
  std::size_t batch = 0;
  std::vector<float> images; // batch × pixels in [0, 1] when the inputs are images (for records)
};

struct InferAnswer {
  std::vector<onnx::Tensor> outputs;        // the last stage's outputs
  std::shared_ptr<const LoadedModel> model; // the last stage's variant that answered
  std::string role;                         // its role
};

class Gateway {
public:
  // `sinks` (the platform's `inference_sinks`) must outlive the gateway; `shadow_queue` bounds
  // the shadow calls waiting (more are dropped and counted).
  Gateway(const std::vector<InferenceSink*>& sinks, std::size_t shadow_queue = 1024);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Returns the live route of `name`, or null.
  std::shared_ptr<const Route> find(std::string_view name) const;
  // Returns every live route, by name.
  std::vector<std::shared_ptr<const Route>> routes() const;
  // Makes `route` the live one of its application (atomically).
  void install(std::shared_ptr<const Route> route);
  void remove(std::string_view name);

  // Runs `call` through `route`'s stages. Throws `Error{invalid_input}` when the pinned
  // variant is not served or the models refuse the inputs; the failed variant's counters and
  // record say so.
  InferAnswer infer(const std::shared_ptr<const Route>& route, InferCall& call);

  // Records a request of `route` refused before any model ran (bad input, a version the route
  // does not serve): its status and message, no model, variant or image. The request store
  // keeps it under the request's trace id; variant counters and monitors leave it out.
  void refused(const Route& route, const std::string& trace_id, int status,
               const std::string& message);

  // Shadow calls dropped because the queue was full.
  std::uint64_t shadow_dropped() const { return m_shadow_dropped.load(); }
  // Blocks until the shadow queue is empty and no shadow call runs (for tests and shutdown).
  void drain_shadows();
  // Stops the shadow worker (waiting shadow calls are dropped); idempotent. The destructor
  // calls it; the server calls it once the listener is done, before the sinks go.
  void stop();

private:
  struct ShadowJob {
    std::shared_ptr<const Route> route;
    std::size_t stage = 0;
    std::size_t variant = 0;
    std::vector<onnx::Tensor> inputs;
    std::string trace_id;
    std::string time;
    std::size_t batch = 0;
    std::shared_ptr<std::vector<float>> images;
  };
  void shadow_loop();
  // Hands `record` to every sink.
  void publish(std::shared_ptr<const InferenceRecord> record);
  void emit(const Route& route, std::size_t stage, const VariantSlot& slot,
            const std::string& trace_id, const std::string& time, double seconds, int status,
            const std::string& error, std::size_t batch,
            const std::shared_ptr<std::vector<float>>& images, bool last_use,
            const std::vector<onnx::Tensor>* outputs);
  // `last_use`: no later call of this request needs `images`, so the record may take them
  // when nobody else holds them.
  std::vector<onnx::Tensor> run_variant(const Route& route, std::size_t stage, std::size_t variant,
                                        const std::vector<onnx::Tensor>& inputs,
                                        const std::string& trace_id, const std::string& time,
                                        std::size_t batch,
                                        const std::shared_ptr<std::vector<float>>& images,
                                        bool last_use);

  using Table = std::map<std::string, std::shared_ptr<const Route>, std::less<>>;
  const std::vector<InferenceSink*>& m_sinks;
  // Copy-on-write: a change publishes a new table and bumps the generation; request threads
  // keep a thread-local copy of the pointer and take the lock only when it is stale.
  const std::uint64_t m_id;
  mutable std::mutex m_table_mutex;
  std::shared_ptr<const Table> m_table;
  std::atomic<std::uint64_t> m_generation{1};

  std::size_t m_shadow_capacity;
  std::mutex m_shadow_mutex;
  std::condition_variable m_shadow_cv;
  std::condition_variable m_shadow_idle;
  std::deque<ShadowJob> m_shadow_jobs;
  bool m_shadow_busy = false;
  bool m_stopping = false;
  std::atomic<std::uint64_t> m_shadow_dropped{0};
  std::thread m_shadow_thread;
};

// Finds the classification in `outputs` (the output named "probabilities", else the first FP32
// output of shape [N, C]) and returns per image the class (argmax) and probabilities (a
// softmax when the scores are not a distribution already). Returns false when none fits.
bool classify(const std::vector<onnx::Tensor>& outputs, std::size_t batch,
              std::vector<std::int64_t>& classes, std::vector<float>& probabilities,
              std::size_t& class_count);

} // namespace mlctl::server

#include "server/gateway.hpp"

#include "api/time.hpp"
#include "artifact/tar.hpp"
#include "server/registry.hpp"
#include "util/error.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>
#include <utility>

namespace mlctl::server {

namespace {

std::string describe_tensors(const std::vector<onnx::TensorInfo>& list) {
  std::string out;
  for (const auto& t : list) {
    std::string shape;
    for (const auto d : t.shape) {
      shape += (shape.empty() ? "" : ",") + std::to_string(d);
    }
    out += (out.empty() ? "" : ", ") + t.name + " " + t.datatype + " [" + shape + "]";
  }
  return out.empty() ? "none" : out;
}

bool same_tensors(const std::vector<onnx::TensorInfo>& a, const std::vector<onnx::TensorInfo>& b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](const auto& x, const auto& y) {
           return x.name == y.name && x.datatype == y.datatype && x.shape == y.shape;
         });
}

std::string variant_path(const manifest::Application& app, std::size_t stage, std::size_t variant) {
  if (app.singular) {
    return "spec.singular.model";
  }
  return "spec.stages[" + std::to_string(stage) + "].variants[" + std::to_string(variant) +
         "].model";
}

bool is_distribution(const float* scores, std::size_t n) {
  double sum = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!(scores[i] >= 0.0f && scores[i] <= 1.0f)) {
      return false;
    }
    sum += scores[i];
  }
  return std::fabs(sum - 1.0) <= 1e-3;
}

int status_of(const Error& e) {
  return e.kind() == ErrorKind::invalid_input ? 400
                                              : (e.kind() == ErrorKind::unavailable ? 503 : 500);
}

} // namespace

std::shared_ptr<const LoadedModel> load_model_artifact(const std::filesystem::path& tgz,
                                                       std::string_view name, std::int64_t version,
                                                       std::string_view sha256) {
  const auto ref = std::string(name) + ":" + std::to_string(version);
  std::map<std::string, std::string> files;
  with_context(ref, [&] {
    artifact::for_each_tar_entry(tgz, [&](const artifact::TarEntry& entry, std::string_view data) {
      if (entry.path == "model.yaml" || entry.path.ends_with(".onnx")) {
        files.emplace(entry.path, std::string(data));
      }
      return true;
    });
  });
  const auto need = [&](const std::string& file) -> const std::string& {
    const auto it = files.find(file);
    if (it == files.end()) {
      throw Error(ErrorKind::corrupt, ref + ": the artifact has no " + file);
    }
    return it->second;
  };
  auto card = model::card_from_yaml(need("model.yaml"), ref + "/model.yaml");
  auto graph = onnx::Model::load(need("model.onnx"), ref + "/model.onnx");
  std::optional<onnx::Model> autoencoder;
  if (card.monitoring && files.count(card.monitoring->autoencoder) != 0) {
    autoencoder = onnx::Model::load(files[card.monitoring->autoencoder],
                                    ref + "/" + card.monitoring->autoencoder);
  }
  // Images feed a single FP32 input whose first dimension is the batch and whose other
  // dimensions are fixed (N×784, N×28×28, N×1×28×28).
  std::string image_input;
  std::size_t pixels = 0;
  std::vector<std::int64_t> image_dims;
  if (graph.inputs().size() == 1) {
    const auto& in = graph.inputs()[0];
    const bool fixed =
        in.shape.size() >= 2 && in.shape[0] == -1 &&
        std::all_of(in.shape.begin() + 1, in.shape.end(), [](std::int64_t d) { return d > 0; });
    if (in.datatype == "FP32" && fixed) {
      image_input = in.name;
      image_dims.assign(in.shape.begin() + 1, in.shape.end());
      pixels = 1;
      for (const auto d : image_dims) {
        pixels *= static_cast<std::size_t>(d);
      }
    }
  }
  const double scale = card.contract.input_scale;
  return std::make_shared<const LoadedModel>(LoadedModel{
      std::string(name), version, std::string(sha256), std::move(graph), std::move(autoencoder),
      std::move(card), std::move(image_input), pixels, std::move(image_dims), scale});
}

std::shared_ptr<const LoadedModel> ModelPool::get(std::string_view name, std::int64_t version) {
  const auto key = std::string(name) + ":" + std::to_string(version);
  // One lock for lookups and loads: loads happen on apply and at start, never per request.
  const std::lock_guard lock(m_mutex);
  if (const auto it = m_loaded.find(key); it != m_loaded.end()) {
    if (auto alive = it->second.lock()) {
      return alive;
    }
  }
  const auto art = m_registry.artifact(name, api::VersionSelector{version, {}});
  if (std::error_code ec; !std::filesystem::exists(art.path, ec)) {
    // 409, not 500: nothing a retry changes, until the bytes are back.
    throw Error(ErrorKind::conflict,
                "its artifact file is missing from the data directory (" + art.path.string() +
                    "); upload the same model again to restore it (mlctl catalog "
                    "upload DIR), then apply again");
  }
  auto loaded = load_model_artifact(art.path, name, version, art.sha256);
  m_loaded[key] = loaded;
  // Forget entries nobody holds any more.
  std::erase_if(m_loaded, [](const auto& kv) { return kv.second.expired(); });
  return loaded;
}

double Route::draw() const {
  // splitmix64 over a counter: a seeded sequence that threads share without a lock.
  std::uint64_t z =
      seed + 0x9e3779b97f4a7c15ull * (draws.fetch_add(1, std::memory_order_relaxed) + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53 * 100.0;
}

std::size_t Route::pick(std::size_t stage, double u) const {
  const auto& cumulative = stages.at(stage).cumulative;
  for (const auto& [sum, index] : cumulative) {
    if (u < sum) {
      return index;
    }
  }
  return cumulative.back().second;
}

std::shared_ptr<Route>
make_route(const manifest::Application& app, std::int64_t revision,
           std::vector<std::vector<std::shared_ptr<const LoadedModel>>> models,
           const std::vector<std::vector<std::string>>& requested) {
  auto route = std::make_shared<Route>();
  route->name = app.name;
  route->revision = revision;
  route->application = app;
  // The same application and revision route the same way on every replica and restart.
  route->seed = std::hash<std::string>{}(app.name) ^
                (static_cast<std::uint64_t>(revision) * 0x100000001b3ull);
  for (std::size_t s = 0; s < app.stages.size(); ++s) {
    const auto& stage = app.stages[s];
    StageSlot slot;
    int sum = 0;
    for (std::size_t v = 0; v < stage.variants.size(); ++v) {
      const auto& model = models.at(s).at(v);
      const auto path = variant_path(app, s, v);
      // Every variant of a stage must accept whatever the stage receives.
      const auto& first = models[s][0];
      if (v > 0 && !same_tensors(model->model.inputs(), first->model.inputs())) {
        throw Error(ErrorKind::invalid_input, path + ": " + model->ref() + " takes inputs (" +
                                                  describe_tensors(model->model.inputs()) +
                                                  ") unlike " + first->ref() + " (" +
                                                  describe_tensors(first->model.inputs()) + ")");
      }
      if (s > 0) {
        for (const auto& in : model->model.inputs()) {
          for (const auto& before : models[s - 1]) {
            const auto& outs = before->model.outputs();
            const auto it = std::find_if(outs.begin(), outs.end(),
                                         [&](const auto& o) { return o.name == in.name; });
            if (it == outs.end() || it->datatype != in.datatype) {
              throw Error(ErrorKind::invalid_input,
                          path + ": " + model->ref() + " takes input '" + in.name + "' (" +
                              in.datatype + "), which " + before->ref() + " in stage " +
                              std::to_string(s - 1) + " does not produce (it gives " +
                              describe_tensors(outs) + ")");
            }
          }
        }
      }
      if (s + 1 == app.stages.size() && v > 0 && !stage.variants[v].shadow) {
        const auto& a = model->model.outputs();
        const auto& b = first->model.outputs();
        const bool same_names =
            a.size() == b.size() &&
            std::equal(a.begin(), a.end(), b.begin(), [](const auto& x, const auto& y) {
              return x.name == y.name && x.datatype == y.datatype;
            });
        if (!same_names) {
          throw Error(ErrorKind::invalid_input,
                      path + ": " + model->ref() + " gives outputs (" + describe_tensors(a) +
                          ") unlike " + first->ref() + " (" + describe_tensors(b) +
                          "); the answers of a stage's variants must have one shape");
        }
      }
      auto vs = std::make_unique<VariantSlot>();
      vs->model = model;
      vs->requested = requested.at(s).at(v);
      vs->weight = stage.variants[v].weight;
      vs->shadow = stage.variants[v].shadow;
      vs->role = std::string(manifest::variant_role(stage, v));
      if (!vs->shadow) {
        sum += vs->weight;
        slot.cumulative.emplace_back(sum, v);
      }
      slot.variants.push_back(std::move(vs));
    }
    route->stages.push_back(std::move(slot));
  }
  return route;
}

bool classify(const std::vector<onnx::Tensor>& outputs, std::size_t batch,
              std::vector<std::int64_t>& classes, std::vector<float>& probabilities,
              std::size_t& class_count) {
  const onnx::Tensor* scores = nullptr;
  const auto fits = [&](const onnx::Tensor& t) {
    return t.datatype == "FP32" && t.shape.size() == 2 &&
           t.shape[0] == static_cast<std::int64_t>(batch) && t.shape[1] > 0 &&
           t.f32.size() == batch * static_cast<std::size_t>(t.shape[1]);
  };
  for (const auto& t : outputs) {
    if (t.name == "probabilities" && fits(t)) {
      scores = &t;
      break;
    }
  }
  if (scores == nullptr) {
    for (const auto& t : outputs) {
      if (fits(t)) {
        scores = &t;
        break;
      }
    }
  }
  if (scores == nullptr) {
    return false;
  }
  const auto n = static_cast<std::size_t>(scores->shape[1]);
  class_count = n;
  classes.resize(batch);
  probabilities.resize(batch * n);
  for (std::size_t i = 0; i < batch; ++i) {
    const float* row = scores->f32.data() + i * n;
    float* out = probabilities.data() + i * n;
    classes[i] = std::max_element(row, row + n) - row;
    if (is_distribution(row, n)) {
      std::copy(row, row + n, out);
      continue;
    }
    // Logits or log-probabilities: a softmax gives the probabilities in both cases.
    const double max = row[classes[i]];
    double sum = 0;
    for (std::size_t k = 0; k < n; ++k) {
      sum += std::exp(static_cast<double>(row[k]) - max);
    }
    for (std::size_t k = 0; k < n; ++k) {
      out[k] = static_cast<float>(std::exp(static_cast<double>(row[k]) - max) / sum);
    }
  }
  return true;
}

namespace {
std::atomic<std::uint64_t> g_gateway_ids{0};
} // namespace

Gateway::Gateway(const std::vector<InferenceSink*>& sinks, std::size_t shadow_queue)
    : m_sinks(sinks), m_id(++g_gateway_ids), m_table(std::make_shared<const Table>()),
      m_shadow_capacity(shadow_queue), m_shadow_thread([this] { shadow_loop(); }) {}

Gateway::~Gateway() {
  stop();
}

void Gateway::stop() {
  {
    const std::lock_guard lock(m_shadow_mutex);
    m_stopping = true;
  }
  m_shadow_cv.notify_all();
  if (m_shadow_thread.joinable()) {
    m_shadow_thread.join();
  }
}

std::shared_ptr<const Route> Gateway::find(std::string_view name) const {
  // The hot path: no lock unless the table changed since this thread last looked.
  struct Cache {
    std::uint64_t id = 0;
    std::uint64_t generation = 0;
    std::shared_ptr<const Table> table;
  };
  thread_local Cache cache;
  const auto generation = m_generation.load(std::memory_order_acquire);
  if (cache.id != m_id || cache.generation != generation) {
    const std::lock_guard lock(m_table_mutex);
    cache.table = m_table;
    cache.generation = m_generation.load(std::memory_order_relaxed);
    cache.id = m_id;
  }
  const auto it = cache.table->find(name);
  return it == cache.table->end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<const Route>> Gateway::routes() const {
  const std::lock_guard lock(m_table_mutex);
  std::vector<std::shared_ptr<const Route>> out;
  for (const auto& [name, route] : *m_table) {
    out.push_back(route);
  }
  return out;
}

void Gateway::install(std::shared_ptr<const Route> route) {
  std::shared_ptr<const Table> old;
  {
    const std::lock_guard lock(m_table_mutex);
    auto next = std::make_shared<Table>(*m_table);
    (*next)[route->name] = std::move(route);
    old = std::exchange(m_table, std::move(next));
    m_generation.fetch_add(1, std::memory_order_release);
  }
  // The old table (and models only it held) goes once the last request that uses it is done
  // and every request thread has looked again.
}

void Gateway::remove(std::string_view name) {
  std::shared_ptr<const Table> old;
  const std::lock_guard lock(m_table_mutex);
  if (m_table->find(name) == m_table->end()) {
    return;
  }
  auto next = std::make_shared<Table>(*m_table);
  next->erase(next->find(name));
  old = std::exchange(m_table, std::move(next));
  m_generation.fetch_add(1, std::memory_order_release);
}

void Gateway::publish(std::shared_ptr<const InferenceRecord> record) {
  for (auto* sink : m_sinks) {
    sink->on_inference(record);
  }
}

void Gateway::emit(const Route& route, std::size_t stage, const VariantSlot& slot,
                   const std::string& trace_id, const std::string& time, double seconds, int status,
                   const std::string& error, std::size_t batch,
                   const std::shared_ptr<std::vector<float>>& images, bool last_use,
                   const std::vector<onnx::Tensor>* outputs) {
  if (m_sinks.empty()) {
    return;
  }
  auto r = std::make_shared<InferenceRecord>();
  r->trace_id = trace_id;
  r->application = route.name;
  r->stage = static_cast<int>(stage);
  r->model = slot.model->name;
  r->version = slot.model->version;
  r->variant = slot.role;
  r->time = time;
  r->latency_seconds = seconds;
  r->status = status;
  r->error = error;
  r->batch = batch;
  if (images) {
    // The images of a request are a few KB per record: the last call that needs them gives
    // them to the record rather than copying them, unless a shadow call still holds them.
    if (last_use && images.use_count() == 1) {
      // Pairs with the release of the other holders' references (a shadow call's copy).
      std::atomic_thread_fence(std::memory_order_acquire);
      r->input = std::move(*images);
    } else {
      r->input = *images;
    }
  }
  if (outputs != nullptr) {
    std::size_t classes = 0;
    classify(*outputs, batch, r->classes, r->probabilities, classes);
  }
  r->capture_sample = route.application.capture_sample;
  publish(std::move(r));
}

void Gateway::refused(const Route& route, const std::string& trace_id, int status,
                      const std::string& message) {
  if (m_sinks.empty()) {
    return;
  }
  auto r = std::make_shared<InferenceRecord>();
  r->trace_id = trace_id;
  r->application = route.name;
  r->time = api::format_time(std::chrono::system_clock::now());
  r->status = status;
  r->error = message;
  r->capture_sample = route.application.capture_sample;
  publish(std::move(r));
}

std::vector<onnx::Tensor>
Gateway::run_variant(const Route& route, std::size_t stage, std::size_t variant,
                     const std::vector<onnx::Tensor>& inputs, const std::string& trace_id,
                     const std::string& time, std::size_t batch,
                     const std::shared_ptr<std::vector<float>>& images, bool last_use) {
  const auto& slot = *route.stages[stage].variants[variant];
  const auto t0 = std::chrono::steady_clock::now();
  const auto elapsed = [&] { return std::chrono::steady_clock::now() - t0; };
  try {
    auto outputs = slot.model->model.run(inputs);
    const auto dt = elapsed();
    slot.requests.fetch_add(1, std::memory_order_relaxed);
    slot.latency_ns.fetch_add(static_cast<std::uint64_t>(
                                  std::chrono::duration_cast<std::chrono::nanoseconds>(dt).count()),
                              std::memory_order_relaxed);
    emit(route, stage, slot, trace_id, time, std::chrono::duration<double>(dt).count(), 200, {},
         batch, images, last_use, &outputs);
    return outputs;
  } catch (const Error& e) {
    slot.requests.fetch_add(1, std::memory_order_relaxed);
    slot.errors.fetch_add(1, std::memory_order_relaxed);
    emit(route, stage, slot, trace_id, time, std::chrono::duration<double>(elapsed()).count(),
         status_of(e), e.what(), batch, images, last_use, nullptr);
    throw;
  }
}

InferAnswer Gateway::infer(const std::shared_ptr<const Route>& route, InferCall& call) {
  const bool recording = !m_sinks.empty();
  const std::string time =
      recording ? api::format_time(std::chrono::system_clock::now()) : std::string();
  std::shared_ptr<std::vector<float>> images;
  if (recording && !call.images.empty()) {
    images = std::make_shared<std::vector<float>>(std::move(call.images));
  }
  // A pinned version must be served by some stage; the stages that serve it use it.
  std::vector<std::optional<std::size_t>> pinned(route->stages.size());
  if (!call.pinned.empty()) {
    bool found = false;
    for (std::size_t s = 0; s < route->stages.size(); ++s) {
      const auto& vars = route->stages[s].variants;
      for (std::size_t v = 0; v < vars.size(); ++v) {
        if (vars[v]->model->ref() == call.pinned || vars[v]->requested == call.pinned) {
          pinned[s] = v;
          found = true;
        }
      }
    }
    if (!found) {
      const Error e(ErrorKind::invalid_input, "x-mlctl-variant '" + call.pinned.substr(0, 80) +
                                                  "': application '" + route->name +
                                                  "' does not serve it");
      refused(*route, call.trace_id, 400, e.what());
      throw e;
    }
  }
  InferAnswer answer;
  std::vector<onnx::Tensor> current;
  for (std::size_t s = 0; s < route->stages.size(); ++s) {
    const auto& stage = route->stages[s];
    const std::size_t chosen = pinned[s] ? *pinned[s] : route->pick(s, route->draw());
    const auto select_inputs = [&](const LoadedModel& m) {
      if (s == 0) {
        return call.inputs;
      }
      std::vector<onnx::Tensor> in;
      for (const auto& info : m.model.inputs()) {
        const auto it = std::find_if(current.begin(), current.end(),
                                     [&](const auto& t) { return t.name == info.name; });
        if (it != current.end()) {
          in.push_back(*it);
        }
      }
      return in;
    };
    for (std::size_t v = 0; v < stage.variants.size(); ++v) {
      const auto& slot = *stage.variants[v];
      if (!slot.shadow || v == chosen || route->draw() >= *slot.shadow) {
        continue;
      }
      ShadowJob job{route,         s,    v,          select_inputs(*slot.model),
                    call.trace_id, time, call.batch, images};
      const std::lock_guard lock(m_shadow_mutex);
      if (m_shadow_jobs.size() >= m_shadow_capacity) {
        m_shadow_dropped.fetch_add(1);
        continue;
      }
      m_shadow_jobs.push_back(std::move(job));
      m_shadow_cv.notify_one();
    }
    const auto& slot = *stage.variants[chosen];
    const bool last = s + 1 == route->stages.size();
    auto outputs = s == 0 ? run_variant(*route, s, chosen, call.inputs, call.trace_id, time,
                                        call.batch, images, last)
                          : run_variant(*route, s, chosen, select_inputs(*slot.model),
                                        call.trace_id, time, call.batch, images, last);
    current = std::move(outputs);
    answer.model = slot.model;
    answer.role = slot.role;
  }
  answer.outputs = std::move(current);
  return answer;
}

void Gateway::shadow_loop() {
  std::unique_lock lock(m_shadow_mutex);
  for (;;) {
    m_shadow_cv.wait(lock, [&] { return m_stopping || !m_shadow_jobs.empty(); });
    if (m_stopping) {
      m_shadow_jobs.clear();
      m_shadow_idle.notify_all();
      return;
    }
    auto job = std::move(m_shadow_jobs.front());
    m_shadow_jobs.pop_front();
    m_shadow_busy = true;
    lock.unlock();
    try {
      (void)run_variant(*job.route, job.stage, job.variant, job.inputs, job.trace_id, job.time,
                        job.batch, job.images, true);
    } catch (const std::exception&) { // NOLINT(bugprone-empty-catch): counted in the slot, never
                                      // returned
    }
    job = ShadowJob{};
    lock.lock();
    m_shadow_busy = false;
    if (m_shadow_jobs.empty()) {
      m_shadow_idle.notify_all();
    }
  }
}

void Gateway::drain_shadows() {
  std::unique_lock lock(m_shadow_mutex);
  m_shadow_idle.wait(lock, [&] { return m_stopping || (m_shadow_jobs.empty() && !m_shadow_busy); });
}

} // namespace mlctl::server

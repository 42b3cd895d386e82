#include "server/metrics.hpp"

#include "api/time.hpp"
#include "onnx/runtime.hpp"
#include "util/error.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <sstream>
#include <thread>

namespace mlctl::server {

namespace {

constexpr std::size_t k_buckets = 15; // latency_buckets() + the +Inf bucket

// One time step of one series.
struct Step {
  std::int64_t slot = -1; // seconds since the epoch / step; -1: unused
  std::uint64_t requests = 0;
  std::uint64_t errors = 0;
  std::uint64_t images = 0;
  double latency_sum = 0;
  std::array<std::uint64_t, k_buckets> latency{};
  double recon_sum = 0;
  std::uint64_t recon_count = 0;
  std::vector<std::uint64_t> predictions;
};

struct Series {
  std::string application;
  std::string model;
  std::int64_t version = 0;
  std::string variant;
  std::string version_key; // application \0 model \0 version

  mutable std::mutex mutex;
  std::uint64_t requests = 0;
  std::uint64_t errors = 0;
  std::uint64_t images = 0;
  double latency_sum = 0;
  std::array<std::uint64_t, k_buckets> latency{};
  std::vector<std::uint64_t> predictions;
  double recon_sum = 0;
  std::uint64_t recon_count = 0;
  std::vector<Step> ring;
};

// Health state of one served version (all its variants): owned by the worker, read under
// `state_mutex` by the routes.
struct VersionState {
  std::string application;
  std::string model;
  std::int64_t version = 0;
  bool looked_up = false;
  std::optional<MonitorTarget> target;
  std::deque<double> window;
  double window_sum = 0;
  std::uint64_t scored = 0;
  std::optional<std::pair<std::int64_t, std::int64_t>> accuracy; // labelled, correct
  std::string state = "unknown";
  std::string since;
};

struct Job {
  Series* series;
  std::shared_ptr<const InferenceRecord> record;
};

std::string version_key(std::string_view app, std::string_view model, std::int64_t version) {
  std::string k(app);
  k += '\0';
  k += model;
  k += '\0';
  k += std::to_string(version);
  return k;
}

std::string escape_label(std::string_view v) {
  std::string out;
  for (const char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string number(double v) {
  if (std::isnan(v)) {
    return "NaN";
  }
  if (std::isinf(v)) {
    return v > 0 ? "+Inf" : "-Inf";
  }
  std::ostringstream s;
  s.precision(12);
  s << v;
  return s.str();
}

std::size_t bucket_of(double seconds) {
  const auto& b = latency_buckets();
  return static_cast<std::size_t>(std::lower_bound(b.begin(), b.end(), seconds) - b.begin());
}

nlohmann::json opt(const std::optional<double>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json();
}

} // namespace

const std::vector<double>& latency_buckets() {
  static const std::vector<double> k_bounds{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                            0.025,  0.05,    0.1,    0.25,  0.5,    1.0,   2.5};
  return k_bounds;
}

std::optional<double> latency_quantile(std::span<const std::uint64_t> counts, double q) {
  std::uint64_t total = 0;
  for (const auto c : counts) {
    total += c;
  }
  if (total == 0) {
    return std::nullopt;
  }
  const auto& bounds = latency_buckets();
  const double rank = q * static_cast<double>(total);
  double seen = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    const double next = seen + static_cast<double>(counts[i]);
    if (next >= rank && counts[i] > 0) {
      if (i >= bounds.size()) {
        return bounds.back();
      }
      const double lo = i == 0 ? 0.0 : bounds[i - 1];
      const double hi = bounds[i];
      return lo + (hi - lo) * (rank - seen) / static_cast<double>(counts[i]);
    }
    seen = next;
  }
  return bounds.back();
}

nlohmann::json to_json(const HealthEvent& e) {
  return {{"id", e.id},
          {"time", e.time},
          {"application", e.application},
          {"model", e.model},
          {"version", e.version},
          {"ref", e.model + ":" + std::to_string(e.version)},
          {"from", e.from},
          {"to", e.to},
          {"monitor", e.monitor},
          {"value", e.value},
          {"threshold", e.threshold}};
}

std::vector<double> reconstruction_errors(const onnx::Model& autoencoder,
                                          const std::vector<float>& images, std::size_t n) {
  std::vector<double> out(n, 0.0);
  if (n == 0) {
    return out;
  }
  const std::size_t pixels = images.size() / n;
  onnx::Tensor input;
  input.datatype = "FP32";
  input.shape = {static_cast<std::int64_t>(n), static_cast<std::int64_t>(pixels)};
  input.f32 = images;
  const auto result = autoencoder.run({std::move(input)});
  const auto& rec = result.at(0).f32;
  if (rec.size() != images.size()) {
    throw Error(ErrorKind::invalid_input, autoencoder.name() + ": reconstruction has " +
                                              std::to_string(rec.size()) + " values for " +
                                              std::to_string(images.size()) + " inputs");
  }
  for (std::size_t i = 0; i < n; ++i) {
    double sum = 0;
    for (std::size_t k = i * pixels; k < (i + 1) * pixels; ++k) {
      const double d = static_cast<double>(rec[k]) - static_cast<double>(images[k]);
      sum += d * d;
    }
    out[i] = sum / static_cast<double>(pixels);
  }
  return out;
}

struct Metrics::Impl {
  MetricsOptions options;
  TargetLookup lookup;
  AccuracySource accuracy;
  std::function<void(const HealthEvent&)> on_event;

  mutable std::shared_mutex series_mutex;
  std::map<std::string, std::unique_ptr<Series>> series; // key: version key \0 variant

  mutable std::mutex state_mutex;
  std::map<std::string, VersionState> versions; // by version key
  bool invalidated = false;

  std::mutex queue_mutex;
  std::condition_variable queue_cv;
  std::condition_variable idle_cv;
  std::deque<Job> queue;
  std::size_t queued_images = 0;
  std::uint64_t enqueued = 0; // jobs ever queued
  std::uint64_t done = 0;     // jobs ever finished
  double tokens = 0;
  std::chrono::steady_clock::time_point last_refill = std::chrono::steady_clock::now();
  bool stopping = false;
  // The worker sleeps until woken (the queue was empty); otherwise it is lingering: under load
  // it takes what arrives during a few milliseconds in one batch, and request threads do not
  // wake it (a futex call and a context switch per request cost more than the scoring).
  bool worker_asleep = false;
  bool flush_requested = false;
  std::uint64_t scored = 0;
  std::uint64_t skipped = 0;
  std::thread worker;

  // When these series began: they live in memory, from the server's start.
  std::chrono::system_clock::time_point started;

  std::chrono::system_clock::time_point now() const {
    return options.clock ? options.clock() : std::chrono::system_clock::now();
  }
  std::int64_t slot_of(std::chrono::system_clock::time_point t) const {
    const auto secs =
        std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
    return secs / options.step.count();
  }
  Step& step_for(Series& s, std::int64_t slot) {
    auto& st = s.ring[static_cast<std::size_t>(slot) % s.ring.size()];
    if (st.slot != slot) {
      st = Step{};
      st.slot = slot;
    }
    return st;
  }

  Series& series_for(const InferenceRecord& r) {
    auto vkey = version_key(r.application, r.model, r.version);
    std::string key = vkey + '\0' + r.variant;
    {
      const std::shared_lock lock(series_mutex);
      if (const auto it = series.find(key); it != series.end()) {
        return *it->second;
      }
    }
    const std::unique_lock lock(series_mutex);
    auto& slot = series[key];
    if (!slot) {
      slot = std::make_unique<Series>();
      slot->application = r.application;
      slot->model = r.model;
      slot->version = r.version;
      slot->variant = r.variant;
      slot->version_key = vkey;
      slot->ring.resize(std::max<std::size_t>(1, options.steps));
      const std::lock_guard state_lock(state_mutex);
      auto& v = versions[vkey];
      v.application = r.application;
      v.model = r.model;
      v.version = r.version;
    }
    return *slot;
  }

  void record(const std::shared_ptr<const InferenceRecord>& rp) {
    const auto& r = *rp;
    if (r.model.empty()) {
      return; // refused before any model ran: no variant's request
    }
    auto& s = series_for(r);
    const auto slot = slot_of(now());
    const bool error = r.status != 200;
    const auto b = bucket_of(r.latency_seconds);
    {
      const std::lock_guard lock(s.mutex);
      auto& st = step_for(s, slot);
      s.requests += 1;
      st.requests += 1;
      s.errors += error ? 1 : 0;
      st.errors += error ? 1 : 0;
      s.images += r.batch;
      st.images += r.batch;
      s.latency_sum += r.latency_seconds;
      st.latency_sum += r.latency_seconds;
      s.latency[b] += 1;
      st.latency[b] += 1;
      for (const auto c : r.classes) {
        if (c < 0 || c > 100000) {
          continue;
        }
        const auto i = static_cast<std::size_t>(c);
        if (s.predictions.size() <= i) {
          s.predictions.resize(i + 1);
        }
        if (st.predictions.size() <= i) {
          st.predictions.resize(i + 1);
        }
        s.predictions[i] += 1;
        st.predictions[i] += 1;
      }
    }
    if (error || r.input.empty() || r.batch == 0) {
      return;
    }
    if (enqueue(s, rp)) {
      queue_cv.notify_one();
    }
  }

  // Queues the scoring of `rp`; returns whether the worker needs a wake-up.
  bool enqueue(Series& s, const std::shared_ptr<const InferenceRecord>& rp) {
    const auto& r = *rp;
    const std::lock_guard lock(queue_mutex);
    if (options.max_scored_per_second > 0) {
      const auto t = std::chrono::steady_clock::now();
      const double dt = std::chrono::duration<double>(t - last_refill).count();
      last_refill = t;
      // A burst of up to one second's worth is allowed.
      tokens = std::min(options.max_scored_per_second, tokens + dt * options.max_scored_per_second);
    }
    const bool capped = options.max_scored_per_second > 0 && tokens < static_cast<double>(r.batch);
    if (stopping || capped || queued_images + r.batch > options.queue_capacity) {
      skipped += r.batch;
      return false;
    }
    tokens -= static_cast<double>(r.batch);
    queued_images += r.batch;
    ++enqueued;
    // The record is shared with the other sinks; queue a reference, not a copy.
    queue.push_back(Job{&s, rp});
    return (worker_asleep && queue.size() == 1) || queued_images >= options.queue_capacity / 2;
  }

  // --- worker thread

  VersionState& version_state(const std::string& vkey) { return versions[vkey]; }

  void ensure_target(VersionState& v) {
    if (v.looked_up) {
      return;
    }
    v.looked_up = true;
    try {
      v.target = lookup ? lookup(v.application, v.model, v.version) : std::nullopt;
    } catch (const std::exception&) {
      v.target = std::nullopt;
    }
  }

  void evaluate(VersionState& v, std::vector<HealthEvent>& events) {
    std::string next = "unknown";
    std::string monitor;
    double value = 0;
    double threshold = 0;
    bool any = false;
    if (v.target && v.target->threshold && v.target->autoencoder != nullptr) {
      if (v.window.size() >= v.target->samples_needed()) {
        any = true;
        const double mean = v.window_sum / static_cast<double>(v.window.size());
        monitor = "reconstruction";
        value = mean;
        threshold = *v.target->threshold;
        next = mean > *v.target->threshold ? "unhealthy" : "healthy";
      }
    }
    if (v.target && v.target->min_accuracy && v.accuracy && v.accuracy->first >= 10) {
      const double acc =
          static_cast<double>(v.accuracy->second) / static_cast<double>(v.accuracy->first);
      if (acc < *v.target->min_accuracy && next != "unhealthy") {
        next = "unhealthy";
        monitor = "accuracy";
        value = acc;
        threshold = *v.target->min_accuracy;
      } else if (!any) {
        next = "healthy";
        monitor = "accuracy";
        value = acc;
        threshold = *v.target->min_accuracy;
      }
    }
    if (next == v.state) {
      return;
    }
    const auto time = api::format_time(now());
    const bool quiet = v.state == "unknown" && next == "healthy"; // a version settling in
    if (!quiet && next != "unknown") {
      HealthEvent e;
      e.time = time;
      e.application = v.application;
      e.model = v.model;
      e.version = v.version;
      e.from = v.state;
      e.to = next;
      e.monitor = monitor;
      e.value = value;
      e.threshold = threshold;
      events.push_back(std::move(e));
    }
    v.state = next;
    v.since = time;
  }

  void score(std::vector<Job>& jobs, std::vector<HealthEvent>& events) {
    // Group the images by version: one autoencoder call per version and batch.
    std::map<std::string, std::vector<const Job*>> groups;
    for (const auto& j : jobs) {
      groups[j.series->version_key].push_back(&j);
    }
    for (auto& [vkey, group] : groups) {
      std::optional<MonitorTarget> target;
      {
        const std::lock_guard lock(state_mutex);
        auto& v = version_state(vkey);
        ensure_target(v);
        target = v.target;
      }
      if (!target || target->autoencoder == nullptr) {
        continue;
      }
      std::vector<float> images;
      std::size_t n = 0;
      for (const auto* j : group) {
        images.insert(images.end(), j->record->input.begin(), j->record->input.end());
        n += j->record->batch;
      }
      std::vector<double> errors;
      try {
        errors = reconstruction_errors(*target->autoencoder, images, n);
      } catch (const std::exception&) {
        continue; // an autoencoder that does not take these inputs scores nothing
      }
      std::size_t at = 0;
      const auto slot = slot_of(now());
      for (const auto* j : group) {
        double sum = 0;
        for (std::size_t i = 0; i < j->record->batch; ++i) {
          sum += errors[at + i];
        }
        {
          auto& s = *j->series;
          const std::lock_guard lock(s.mutex);
          auto& st = step_for(s, slot);
          s.recon_sum += sum;
          s.recon_count += j->record->batch;
          st.recon_sum += sum;
          st.recon_count += j->record->batch;
        }
        const std::lock_guard lock(state_mutex);
        auto& v = version_state(vkey);
        const std::size_t window = std::max<std::size_t>(1, target->window);
        for (std::size_t i = 0; i < j->record->batch; ++i) {
          v.window.push_back(errors[at + i]);
          v.window_sum += errors[at + i];
          while (v.window.size() > window) {
            v.window_sum -= v.window.front();
            v.window.pop_front();
          }
        }
        v.scored += j->record->batch;
        at += j->record->batch;
      }
      {
        const std::lock_guard lock(state_mutex);
        auto& v = version_state(vkey);
        // Recompute the sum now and then: the running sum drifts with rounding.
        if (v.scored % 4096 < n) {
          v.window_sum = 0;
          for (const double e : v.window) {
            v.window_sum += e;
          }
        }
        evaluate(v, events);
      }
      const std::lock_guard lock(queue_mutex);
      scored += n;
    }
  }

  void poll_accuracy(std::vector<HealthEvent>& events) {
    if (!accuracy) {
      return;
    }
    std::set<std::string> apps;
    {
      const std::lock_guard lock(state_mutex);
      for (const auto& [k, v] : versions) {
        apps.insert(v.application);
      }
    }
    for (const auto& app : apps) {
      std::map<std::pair<std::string, std::int64_t>, std::pair<std::int64_t, std::int64_t>> acc;
      try {
        acc = accuracy(app);
      } catch (const std::exception&) {
        continue;
      }
      const std::lock_guard lock(state_mutex);
      for (auto& [k, v] : versions) {
        if (v.application != app) {
          continue;
        }
        ensure_target(v);
        const auto it = acc.find({v.model, v.version});
        if (it != acc.end()) {
          v.accuracy = it->second;
        }
        evaluate(v, events);
      }
    }
  }

  void run() {
    constexpr auto k_linger = std::chrono::milliseconds(20);
    bool lingering = false;
    auto next_poll = std::chrono::steady_clock::now();
    for (;;) {
      std::vector<Job> jobs;
      bool invalidate_now = false;
      {
        std::unique_lock lock(queue_mutex);
        if (lingering) {
          queue_cv.wait_until(
              lock, std::min(next_poll, std::chrono::steady_clock::now() + k_linger), [&] {
                return stopping || flush_requested || queued_images >= options.queue_capacity / 2;
              });
        }
        if (queue.empty()) {
          worker_asleep = true;
          queue_cv.wait_until(lock, next_poll, [&] { return stopping || !queue.empty(); });
          worker_asleep = false;
        }
        if (stopping) {
          return;
        }
        lingering = !queue.empty();
        flush_requested = false;
        jobs.assign(std::make_move_iterator(queue.begin()), std::make_move_iterator(queue.end()));
        queue.clear();
      }
      {
        const std::lock_guard lock(state_mutex);
        invalidate_now = invalidated;
        invalidated = false;
        if (invalidate_now) {
          for (auto& [k, v] : versions) {
            v.looked_up = false;
            v.target.reset();
          }
        }
      }
      std::vector<HealthEvent> events;
      score(jobs, events);
      if (std::chrono::steady_clock::now() >= next_poll) {
        poll_accuracy(events);
        next_poll = std::chrono::steady_clock::now() + options.accuracy_poll;
      }
      for (const auto& e : events) {
        if (on_event) {
          try {
            on_event(e);
          } catch (const std::exception&) { // NOLINT(bugprone-empty-catch): the sink logs its own
                                            // failures
          }
        }
      }
      {
        const std::lock_guard lock(queue_mutex);
        std::size_t images = 0;
        for (const auto& j : jobs) {
          images += j.record->batch;
        }
        queued_images -= std::min(queued_images, images);
        done += jobs.size();
      }
      idle_cv.notify_all();
    }
  }
};

Metrics::Metrics(MetricsOptions options, TargetLookup lookup, AccuracySource accuracy,
                 std::function<void(const HealthEvent&)> on_event)
    : m_impl(std::make_unique<Impl>()) {
  auto& i = *m_impl;
  if (options.step.count() < 1) {
    throw Error(ErrorKind::invalid_input, "metrics step: must be at least 1 second");
  }
  i.options = std::move(options);
  i.tokens = i.options.max_scored_per_second;
  i.lookup = std::move(lookup);
  i.accuracy = std::move(accuracy);
  i.on_event = std::move(on_event);
  i.started = i.now();
  i.worker = std::thread([&i] { i.run(); });
}

Metrics::~Metrics() {
  stop();
}

void Metrics::stop() {
  auto& i = *m_impl;
  {
    const std::lock_guard lock(i.queue_mutex);
    i.stopping = true;
  }
  i.queue_cv.notify_all();
  i.idle_cv.notify_all();
  if (i.worker.joinable()) {
    i.worker.join();
  }
}

void Metrics::on_inference(const std::shared_ptr<const InferenceRecord>& record) noexcept {
  if (!record) {
    return;
  }
  try {
    m_impl->record(record);
  } catch (
      ...) { // NOLINT(bugprone-empty-catch): a sink never throws; out of memory loses one sample
  }
}

void Metrics::invalidate() {
  const std::lock_guard lock(m_impl->state_mutex);
  m_impl->invalidated = true;
}

bool Metrics::flush(std::chrono::milliseconds timeout) {
  auto& i = *m_impl;
  std::unique_lock lock(i.queue_mutex);
  const auto target = i.enqueued;
  i.flush_requested = true;
  i.queue_cv.notify_one();
  return i.idle_cv.wait_for(lock, timeout, [&] { return i.stopping || i.done >= target; });
}

Metrics::Counters Metrics::counters() const {
  const std::lock_guard lock(m_impl->queue_mutex);
  return {m_impl->scored, m_impl->skipped};
}

std::string Metrics::state(const std::string& application, const std::string& model,
                           std::int64_t version) const {
  const std::lock_guard lock(m_impl->state_mutex);
  const auto it = m_impl->versions.find(version_key(application, model, version));
  return it == m_impl->versions.end() ? "unknown" : it->second.state;
}

namespace {

struct Snapshot {
  std::string application, model, variant;
  std::int64_t version = 0;
  std::uint64_t requests = 0, errors = 0, images = 0;
  double latency_sum = 0;
  std::array<std::uint64_t, k_buckets> latency{};
  std::vector<std::uint64_t> predictions;
  double recon_sum = 0;
  std::uint64_t recon_count = 0;
  std::vector<Step> ring;
  // The version's state.
  std::string state = "unknown";
  std::optional<double> recon_mean;
  std::optional<double> threshold;
  std::optional<double> accuracy;
  std::int64_t labelled = 0;
};

std::string labels(const Snapshot& s) {
  return "application=\"" + escape_label(s.application) + "\",model=\"" + escape_label(s.model) +
         "\",version=\"" + std::to_string(s.version) + "\",variant=\"" + escape_label(s.variant) +
         "\"";
}

} // namespace

// Copies every series (and its version's state) under their locks, so formatting runs unlocked.
static std::vector<Snapshot> snapshot(const std::map<std::string, std::unique_ptr<Series>>& series,
                                      std::shared_mutex& series_mutex, std::mutex& state_mutex,
                                      const std::map<std::string, VersionState>& versions,
                                      const std::string* application, bool with_ring) {
  std::vector<Snapshot> out;
  const std::shared_lock lock(series_mutex);
  for (const auto& [key, sp] : series) {
    const auto& s = *sp;
    if (application != nullptr && s.application != *application) {
      continue;
    }
    Snapshot snap;
    snap.application = s.application;
    snap.model = s.model;
    snap.version = s.version;
    snap.variant = s.variant;
    {
      const std::lock_guard l(s.mutex);
      snap.requests = s.requests;
      snap.errors = s.errors;
      snap.images = s.images;
      snap.latency_sum = s.latency_sum;
      snap.latency = s.latency;
      snap.predictions = s.predictions;
      snap.recon_sum = s.recon_sum;
      snap.recon_count = s.recon_count;
      if (with_ring) {
        snap.ring = s.ring;
      }
    }
    {
      const std::lock_guard l(state_mutex);
      const auto it = versions.find(s.version_key);
      if (it != versions.end()) {
        const auto& v = it->second;
        snap.state = v.state;
        if (!v.window.empty()) {
          snap.recon_mean = v.window_sum / static_cast<double>(v.window.size());
        }
        if (v.target) {
          snap.threshold = v.target->threshold;
        }
        if (v.accuracy && v.accuracy->first > 0) {
          snap.accuracy =
              static_cast<double>(v.accuracy->second) / static_cast<double>(v.accuracy->first);
          snap.labelled = v.accuracy->first;
        }
      }
    }
    out.push_back(std::move(snap));
  }
  return out;
}

std::string Metrics::prometheus(const std::string& extra) const {
  auto& i = *m_impl;
  const auto snaps = snapshot(i.series, i.series_mutex, i.state_mutex, i.versions, nullptr, false);
  std::string out;
  const auto family = [&](const char* name, const char* type, const char* help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
  };
  const auto sample = [&](const std::string& name, const std::string& lbl, double v) {
    out += name + "{" + lbl + "} " + number(v) + "\n";
  };
  // A family with one sample per series, where `value` has one.
  const auto per_series = [&](const char* name, const char* type, const char* help,
                              const std::function<std::optional<double>(const Snapshot&)>& value) {
    family(name, type, help);
    for (const auto& s : snaps) {
      if (const auto v = value(s)) {
        sample(name, labels(s), *v);
      }
    }
  };
  const auto count = [](std::uint64_t Snapshot::*field) {
    return [field](const Snapshot& s) {
      return std::optional<double>(static_cast<double>(s.*field));
    };
  };
  per_series("mlctl_requests_total", "counter", "Inference requests answered by a model version.",
             count(&Snapshot::requests));
  per_series("mlctl_request_errors_total", "counter",
             "Inference requests that failed (status other than 200).", count(&Snapshot::errors));
  per_series("mlctl_images_total", "counter", "Images classified (a request may carry several).",
             count(&Snapshot::images));
  family("mlctl_request_duration_seconds", "histogram",
         "Model time plus routing of a request, in seconds.");
  const auto& bounds = latency_buckets();
  for (const auto& s : snaps) {
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < k_buckets; ++b) {
      cumulative += s.latency[b];
      const std::string le = b + 1 == k_buckets ? "+Inf" : number(bounds[b]);
      sample("mlctl_request_duration_seconds_bucket", labels(s) + ",le=\"" + le + "\"",
             static_cast<double>(cumulative));
    }
    sample("mlctl_request_duration_seconds_sum", labels(s), s.latency_sum);
    sample("mlctl_request_duration_seconds_count", labels(s), static_cast<double>(cumulative));
  }
  family("mlctl_predictions_total", "counter", "Predicted classes, per class.");
  for (const auto& s : snaps) {
    for (std::size_t c = 0; c < s.predictions.size(); ++c) {
      sample("mlctl_predictions_total", labels(s) + ",class=\"" + std::to_string(c) + "\"",
             static_cast<double>(s.predictions[c]));
    }
  }
  per_series("mlctl_reconstruction_score", "gauge",
             "Rolling mean of the autoencoder's mean squared error over the last window of scored "
             "images.",
             [](const Snapshot& s) { return s.recon_mean; });
  per_series("mlctl_reconstruction_threshold", "gauge",
             "Reconstruction score above which the version is unhealthy.",
             [](const Snapshot& s) { return s.threshold; });
  per_series("mlctl_reconstruction_scored_total", "counter",
             "Images scored by the version's autoencoder.", count(&Snapshot::recon_count));
  per_series("mlctl_accuracy", "gauge",
             "Share of labelled requests (feedback) the version answered correctly.",
             [](const Snapshot& s) { return s.accuracy; });
  per_series("mlctl_version_healthy", "gauge",
             "1 when the version is healthy, 0 when unhealthy (absent when unknown).",
             [](const Snapshot& s) {
               return s.state == "unknown" ? std::nullopt
                                           : std::optional<double>(s.state == "healthy" ? 1 : 0);
             });
  const auto c = counters();
  family("mlctl_reconstruction_skipped_total", "counter",
         "Images not scored because the monitor queue was full or over its rate cap.");
  out += "mlctl_reconstruction_skipped_total " + number(static_cast<double>(c.skipped)) + "\n";
  out += extra;
  return out;
}

nlohmann::json Metrics::series_json(const std::string& application,
                                    std::chrono::system_clock::time_point since,
                                    std::chrono::seconds step) const {
  auto& i = *m_impl;
  const auto res = i.options.step.count();
  if (step.count() < res || step.count() % res != 0) {
    throw Error(ErrorKind::invalid_input, "step: must be a positive multiple of " +
                                              std::to_string(res) + "s, got " +
                                              std::to_string(step.count()) + "s");
  }
  const auto factor = step.count() / res;
  const auto now = i.now();
  const auto last_slot = i.slot_of(now);
  auto first_slot = i.slot_of(since);
  first_slot = std::max(first_slot, last_slot - static_cast<std::int64_t>(i.options.steps) + 1);
  first_slot -= ((first_slot % factor) + factor) % factor; // align to the step
  const auto snaps =
      snapshot(i.series, i.series_mutex, i.state_mutex, i.versions, &application, true);
  nlohmann::json series = nlohmann::json::array();
  for (const auto& s : snaps) {
    nlohmann::json points = nlohmann::json::array();
    for (auto slot = first_slot; slot <= last_slot; slot += factor) {
      Step agg;
      for (auto k = slot; k < slot + factor; ++k) {
        const auto& st = s.ring[static_cast<std::size_t>(k) % s.ring.size()];
        if (st.slot != k) {
          continue;
        }
        agg.requests += st.requests;
        agg.errors += st.errors;
        agg.images += st.images;
        agg.latency_sum += st.latency_sum;
        for (std::size_t b = 0; b < k_buckets; ++b) {
          agg.latency[b] += st.latency[b];
        }
        agg.recon_sum += st.recon_sum;
        agg.recon_count += st.recon_count;
        if (agg.predictions.size() < st.predictions.size()) {
          agg.predictions.resize(st.predictions.size());
        }
        for (std::size_t c = 0; c < st.predictions.size(); ++c) {
          agg.predictions[c] += st.predictions[c];
        }
      }
      const auto t = std::chrono::system_clock::time_point(std::chrono::seconds(slot * res));
      points.push_back(
          {{"time", api::format_time(t)},
           {"requests", agg.requests},
           {"errors", agg.errors},
           {"images", agg.images},
           {"latency_mean_seconds",
            agg.requests > 0 ? nlohmann::json(agg.latency_sum / static_cast<double>(agg.requests))
                             : nlohmann::json()},
           {"latency_p50_seconds", opt(latency_quantile(agg.latency, 0.5))},
           {"latency_p99_seconds", opt(latency_quantile(agg.latency, 0.99))},
           {"reconstruction",
            agg.recon_count > 0
                ? nlohmann::json(agg.recon_sum / static_cast<double>(agg.recon_count))
                : nlohmann::json()},
           {"scored", agg.recon_count},
           {"predictions", agg.predictions}});
    }
    series.push_back(
        {{"model", s.model},
         {"version", s.version},
         {"ref", s.model + ":" + std::to_string(s.version)},
         {"variant", s.variant},
         {"points", std::move(points)},
         {"totals",
          {{"requests", s.requests},
           {"errors", s.errors},
           {"images", s.images},
           {"latency_mean_seconds",
            s.requests > 0 ? nlohmann::json(s.latency_sum / static_cast<double>(s.requests))
                           : nlohmann::json()},
           {"latency_p50_seconds", opt(latency_quantile(s.latency, 0.5))},
           {"latency_p99_seconds", opt(latency_quantile(s.latency, 0.99))},
           {"reconstruction", opt(s.recon_mean)},
           {"threshold", opt(s.threshold)},
           {"accuracy", opt(s.accuracy)},
           {"labelled", s.labelled},
           {"predictions", s.predictions},
           {"health", s.state}}}});
  }
  return {
      {"application", application},
      {"step_seconds", step.count()},
      {"since", api::format_time(
                    std::chrono::system_clock::time_point(std::chrono::seconds(first_slot * res)))},
      {"until", api::format_time(now)},
      // What came before is not in these series: the server's start, or the oldest step
      // the ring keeps.
      {"collected_since",
       api::format_time(std::max(
           i.started, std::chrono::system_clock::time_point(std::chrono::seconds(
                          (last_slot - static_cast<std::int64_t>(i.options.steps) + 1) * res))))},
      {"series", std::move(series)}};
}

SeriesTotals Metrics::totals(const std::string& application, const std::string& model,
                             std::int64_t version, const std::string& variant) const {
  auto& i = *m_impl;
  SeriesTotals t;
  t.latency.assign(k_buckets, 0);
  const auto vkey = version_key(application, model, version);
  {
    const std::shared_lock lock(i.series_mutex);
    const auto it = i.series.find(vkey + '\0' + variant);
    if (it != i.series.end()) {
      const auto& s = *it->second;
      const std::lock_guard l(s.mutex);
      t.requests = s.requests;
      t.errors = s.errors;
      t.images = s.images;
      t.latency_sum = s.latency_sum;
      t.latency.assign(s.latency.begin(), s.latency.end());
      t.recon_sum = s.recon_sum;
      t.recon_count = s.recon_count;
    }
  }
  const std::lock_guard l(i.state_mutex);
  const auto it = i.versions.find(vkey);
  if (it != i.versions.end() && it->second.target) {
    t.threshold = it->second.target->threshold;
  }
  return t;
}

nlohmann::json Metrics::health_json(const std::string& application) const {
  auto& i = *m_impl;
  const std::lock_guard lock(i.state_mutex);
  nlohmann::json versions = nlohmann::json::array();
  std::string overall = "healthy";
  bool any = false;
  for (const auto& [key, v] : i.versions) {
    if (v.application != application) {
      continue;
    }
    any = true;
    if (v.state == "unhealthy" || (v.state == "unknown" && overall == "healthy")) {
      overall = v.state;
    }
    nlohmann::json rec = {
        {"mean", v.window.empty()
                     ? nlohmann::json()
                     : nlohmann::json(v.window_sum / static_cast<double>(v.window.size()))},
        {"threshold", v.target ? opt(v.target->threshold) : nlohmann::json()},
        {"window", v.target ? v.target->window : 0},
        {"samples", v.window.size()},
        {"samples_needed", v.target ? v.target->samples_needed() : 0},
        {"scored", v.scored},
        {"autoencoder", v.target && v.target->autoencoder != nullptr}};
    nlohmann::json acc = {
        {"value", v.accuracy && v.accuracy->first > 0
                      ? nlohmann::json(static_cast<double>(v.accuracy->second) /
                                       static_cast<double>(v.accuracy->first))
                      : nlohmann::json()},
        {"min_accuracy", v.target ? opt(v.target->min_accuracy) : nlohmann::json()},
        {"labelled", v.accuracy ? v.accuracy->first : 0}};
    versions.push_back({{"model", v.model},
                        {"version", v.version},
                        {"ref", v.model + ":" + std::to_string(v.version)},
                        {"state", v.state},
                        {"since", v.since.empty() ? nlohmann::json() : nlohmann::json(v.since)},
                        {"reconstruction", std::move(rec)},
                        {"accuracy", std::move(acc)}});
  }
  if (!any) {
    return nullptr;
  }
  return {{"application", application}, {"state", overall}, {"versions", std::move(versions)}};
}

} // namespace mlctl::server

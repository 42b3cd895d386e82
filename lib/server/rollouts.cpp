#include "server/rollouts.hpp"

#include "api/names.hpp"
#include "api/time.hpp"
#include "manifest/application.hpp"
#include "server/applications.hpp"
#include "server/registry.hpp"
#include "util/error.hpp"

#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

namespace mlctl::server {
using nlohmann::json;

namespace {

std::pair<std::string, std::int64_t> split_ref(const std::string& ref) {
  const auto colon = ref.rfind(':');
  return {ref.substr(0, colon), std::stoll(ref.substr(colon + 1))};
}

// The index of the one weighted variant of a one-stage application; throws otherwise.
std::size_t only_weighted_variant(const manifest::Application& app) {
  const auto refuse = [&](const std::string& why) {
    return Error(ErrorKind::invalid_input,
                 "application '" + app.name + "' " + why +
                     ": a canary needs one stage with one weighted variant (shadows allowed); "
                     "finish or undo the current split first (mlctl rollout undo " +
                     app.name + ")");
  };
  if (app.stages.size() != 1) {
    throw refuse("has " + std::to_string(app.stages.size()) + " stages");
  }
  std::optional<std::size_t> found;
  for (std::size_t v = 0; v < app.stages[0].variants.size(); ++v) {
    if (!app.stages[0].variants[v].shadow) {
      if (found) {
        throw refuse("already splits its traffic");
      }
      found = v;
    }
  }
  return found.value_or(0);
}

// The counters of a series since `base`.
api::VariantEvidence difference(const std::string& ref, const SeriesTotals& now,
                                const SeriesTotals& base) {
  const auto minus = [](std::uint64_t a, std::uint64_t b) {
    return static_cast<std::int64_t>(a >= b ? a - b : 0);
  };
  api::VariantEvidence e;
  e.model = ref;
  e.requests = minus(now.requests, base.requests);
  e.errors = minus(now.errors, base.errors);
  e.images = minus(now.images, base.images);
  std::vector<std::uint64_t> latency(now.latency.size());
  for (std::size_t i = 0; i < latency.size(); ++i) {
    latency[i] = static_cast<std::uint64_t>(
        minus(now.latency[i], i < base.latency.size() ? base.latency[i] : 0));
  }
  const auto ms = [](std::optional<double> s) {
    return s ? std::optional<double>(*s * 1000) : std::nullopt;
  };
  e.p50_ms = ms(latency_quantile(latency, 0.5));
  e.p99_ms = ms(latency_quantile(latency, 0.99));
  if (e.requests > 0) {
    e.mean_ms = (now.latency_sum - base.latency_sum) * 1000 / static_cast<double>(e.requests);
  }
  e.scored = minus(now.recon_count, base.recon_count);
  if (e.scored > 0) {
    e.reconstruction = (now.recon_sum - base.recon_sum) / static_cast<double>(e.scored);
  }
  e.threshold = now.threshold;
  return e;
}

} // namespace

struct Rollouts::Impl {
  struct Running {
    std::int64_t id = 0;
    std::string application;
    api::CanarySpec spec;
    std::string model;   // the canary, resolved
    std::string primary; // resolved
    std::int64_t from_revision = 0;
    std::int64_t canary_revision = 0;
    json before; // the manifest of `from_revision`
    Actor actor;
    std::string started_at;
    std::chrono::system_clock::time_point deadline;
    SeriesTotals canary_base;
    SeriesTotals primary_base;
    std::optional<api::Verdict> verdict;
    std::string updated_at;
  };

  Registry& registry;
  Applications& applications;
  RolloutSources sources;
  util::LogFn log;
  std::chrono::milliseconds tick;

  std::mutex action_mutex; // one state change at a time: start, abort, a verdict's action
  std::mutex mutex;        // guards `running` and `stopping`
  std::condition_variable cv;
  std::map<std::string, Running> running; // by application
  bool stopping = false;
  std::thread worker;

  Impl(Registry& r, Applications& a, RolloutSources s, util::LogFn l, std::chrono::milliseconds t)
      : registry(r), applications(a), sources(std::move(s)), log(std::move(l)), tick(t) {}

  void say(const std::string& line) const {
    if (log) {
      log(line);
    }
  }

  void baseline(Running& r) const {
    const auto [canary_model, canary_version] = split_ref(r.model);
    const auto [primary_model, primary_version] = split_ref(r.primary);
    r.canary_base = sources.totals(r.application, canary_model, canary_version, "canary");
    r.primary_base = sources.totals(r.application, primary_model, primary_version, "primary");
  }

  api::Verdict judge(const Running& r) const {
    const auto [canary_model, canary_version] = split_ref(r.model);
    const auto [primary_model, primary_version] = split_ref(r.primary);
    auto canary = difference(
        r.model, sources.totals(r.application, canary_model, canary_version, "canary"),
        r.canary_base);
    auto primary = difference(
        r.primary, sources.totals(r.application, primary_model, primary_version, "primary"),
        r.primary_base);
    if (r.spec.min_labelled > 0) {
      for (const auto& a : sources.accuracy(r.application, r.started_at)) {
        auto* e = a.model == canary_model && a.version == canary_version     ? &canary
                  : a.model == primary_model && a.version == primary_version ? &primary
                                                                             : nullptr;
        if (e != nullptr) {
          e->labelled = a.labelled;
          e->correct = a.correct;
        }
      }
    }
    return api::evaluate(r.spec, canary, primary,
                         std::chrono::system_clock::now() >= r.deadline);
  }

  // Writes the end of `r` and forgets it.
  void finish(const Running& r, std::string_view status, std::optional<std::int64_t> final_revision,
              const std::string& reason, const std::optional<api::Verdict>& verdict) {
    const auto now = registry.now();
    {
      const std::lock_guard write(registry.write_mutex());
      auto db = registry.pool().acquire();
      db->prepare("UPDATE rollouts SET status = ?, final_revision = ?, finished_at = ?, "
                  "updated_at = ?, reason = ?, verdict = ? WHERE id = ?")
          .bind_all(status, final_revision, now, now, reason,
                    verdict ? std::optional<std::string>(api::to_json(*verdict).dump())
                            : std::nullopt,
                    r.id)
          .run();
    }
    say("rollout " + std::to_string(r.id) + " of " + r.application + " (" + r.model + " at " +
        std::to_string(r.spec.weight) + "%): " + std::string(status) + ": " + reason);
    const std::lock_guard lock(mutex);
    running.erase(r.application);
  }

  // The revision serving the canary where the primary was, from the manifest before it.
  json promoted_manifest(const Running& r) const {
    auto app = manifest::application_from_json(r.before);
    app.stages[0].variants[only_weighted_variant(app)].model = api::parse_model_ref(r.model);
    return manifest::to_json(app);
  }

  // Judges `application`'s running rollout once and acts on the verdict.
  void step(const std::string& application) {
    const std::lock_guard action(action_mutex);
    Running r;
    {
      const std::lock_guard lock(mutex);
      const auto it = running.find(application);
      if (it == running.end()) {
        return;
      }
      r = it->second;
    }
    const auto tag = "rollout " + std::to_string(r.id) + ": ";
    std::int64_t current = 0;
    try {
      current = applications.get(application).value("revision", std::int64_t{0});
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::not_found) {
        throw;
      }
      finish(r, "superseded", std::nullopt, "the application was deleted", r.verdict);
      return;
    }
    if (current != r.canary_revision) {
      finish(r, "superseded", current,
             "the application changed to revision " + std::to_string(current) +
                 " during the canary; nothing was rolled back",
             r.verdict);
      return;
    }
    auto verdict = judge(r);
    if (verdict.decision == "pending") {
      const std::lock_guard lock(mutex);
      const auto it = running.find(application);
      if (it != running.end()) {
        it->second.verdict = std::move(verdict);
        it->second.updated_at = registry.now();
      }
      return;
    }
    const Actor controller{"rollout-controller", r.actor.user};
    if (verdict.decision == "promote") {
      try {
        const auto out = applications.apply(promoted_manifest(r), application, controller,
                                            tag + "promoted " + r.model);
        finish(r, "promoted", out.value("revision", std::int64_t{0}), verdict.reason, verdict);
      } catch (const std::exception& e) {
        const auto back = roll_back(r, tag + "rolled back: the promotion failed");
        finish(r, "failed", back, std::string("the promotion failed: ") + e.what(), verdict);
      }
      return;
    }
    const auto back = roll_back(r, tag + "rolled back " + r.model + ": " + verdict.reason);
    finish(r, back ? "rolled_back" : "failed", back, verdict.reason, verdict);
  }

  // Makes the revision before the canary current again; returns the new revision, or nothing
  // when that failed (logged).
  std::optional<std::int64_t> roll_back(const Running& r, const std::string& cause) {
    try {
      const auto out = applications.rollback(r.application, r.from_revision,
                                             Actor{"rollout-controller", r.actor.user}, cause);
      return out.value("revision", std::int64_t{0});
    } catch (const std::exception& e) {
      say("rollout " + std::to_string(r.id) + " of " + r.application +
          ": could not roll back to revision " + std::to_string(r.from_revision) + ": " +
          e.what());
      return std::nullopt;
    }
  }

  void loop() {
    std::unique_lock lock(mutex);
    while (!stopping) {
      cv.wait_for(lock, tick, [&] { return stopping; });
      if (stopping) {
        break;
      }
      std::vector<std::string> names;
      for (const auto& [name, r] : running) {
        names.push_back(name);
      }
      lock.unlock();
      for (const auto& name : names) {
        try {
          step(name);
        } catch (const std::exception& e) {
          say("rollout of " + name + ": " + e.what());
        }
      }
      lock.lock();
    }
  }

  json row_json(sql::Statement& s) {
    json out = {{"id", s.int64(0)},
                {"application", s.text(1)},
                {"status", s.text(2)},
                {"spec", json::parse(s.text_view(3))},
                {"model", s.text(4)},
                {"primary", s.text(5)},
                {"from_revision", s.int64(6)},
                {"canary_revision", s.int64(7)},
                {"final_revision", s.is_null(8) ? json() : json(s.int64(8))},
                {"actor", s.text(9)},
                {"started_at", s.text(10)},
                {"updated_at", s.text(11)},
                {"finished_at", s.is_null(12) ? json() : json(s.text(12))},
                {"reason", s.is_null(13) ? json() : json(s.text(13))},
                {"verdict", s.is_null(14) ? json() : json::parse(s.text_view(14))}};
    out["requested"] = out["spec"].value("model", std::string());
    out["weight"] = out["spec"].value("weight", 0);
    const auto started = api::parse_time(out["started_at"].get<std::string>());
    if (started) {
      out["deadline"] = api::format_time(
          *started + std::chrono::seconds(out["spec"].value("timeout_seconds", std::int64_t{0})));
    }
    if (out["status"] == "running") {
      const std::lock_guard lock(mutex);
      const auto it = running.find(out["application"].get<std::string>());
      if (it != running.end() && it->second.id == out["id"].get<std::int64_t>() &&
          it->second.verdict) {
        out["verdict"] = api::to_json(*it->second.verdict);
        out["reason"] = it->second.verdict->reason;
        out["updated_at"] = it->second.updated_at;
      }
    }
    return out;
  }

  static constexpr std::string_view k_columns =
      "id, application, status, spec, model, primary_model, from_revision, canary_revision, "
      "final_revision, actor, started_at, updated_at, finished_at, reason, verdict";

  std::vector<json> query(std::string_view application, std::int64_t limit) {
    std::vector<json> out;
    auto db = registry.pool().acquire();
    auto s = db->prepare("SELECT " + std::string(k_columns) +
                         " FROM rollouts WHERE application = ? ORDER BY id DESC LIMIT ?");
    s.bind_all(application, limit);
    while (s.step()) {
      out.push_back(row_json(s));
    }
    return out;
  }

  void resume() {
    std::vector<Running> rows;
    {
      auto db = registry.pool().acquire();
      auto s = db->prepare("SELECT id, application, spec, model, primary_model, from_revision, "
                           "canary_revision, actor, started_at FROM rollouts "
                           "WHERE status = 'running' ORDER BY id");
      while (s.step()) {
        Running r;
        r.id = s.int64(0);
        r.application = s.text(1);
        r.spec = api::canary_spec_from_json(json::parse(s.text_view(2)));
        r.model = s.text(3);
        r.primary = s.text(4);
        r.from_revision = s.int64(5);
        r.canary_revision = s.int64(6);
        r.actor.user = s.text(7);
        r.started_at = s.text(8);
        rows.push_back(std::move(r));
      }
    }
    for (auto& r : rows) {
      const auto started = api::parse_time(r.started_at);
      r.deadline = started.value_or(std::chrono::system_clock::now()) +
                   std::chrono::seconds(r.spec.timeout_seconds);
      try {
        // Kept in a variable: a range-for over `revisions(...)["revisions"]` would iterate a
        // temporary already destroyed (operator[] returns into it).
        const auto history = applications.revisions(r.application);
        for (const auto& rev : history["revisions"]) {
          if (rev.value("revision", std::int64_t{0}) == r.from_revision) {
            r.before = rev["manifest"];
          }
        }
      } catch (const Error&) {
        // A deleted application: the first step ends the rollout as superseded.
      }
      if (!sources.totals) {
        const auto back = roll_back(r, "rollout " + std::to_string(r.id) +
                                           ": rolled back: the monitors are off");
        finish(r, "failed", back,
               "the server restarted with the monitors off (--no-monitoring): the canary cannot "
               "be judged, so it was rolled back",
               std::nullopt);
        continue;
      }
      baseline(r);
      r.verdict = judge(r);
      r.updated_at = registry.now();
      say("rollout " + std::to_string(r.id) + " of " + r.application + " (" + r.model +
          ") resumes; its request counters restart with the server");
      running[r.application] = std::move(r);
    }
  }
};

Rollouts::Rollouts(Registry& registry, Applications& applications, RolloutSources sources,
                   util::LogFn log, std::chrono::milliseconds tick)
    : m_impl(std::make_unique<Impl>(registry, applications, std::move(sources), std::move(log),
                                    tick)) {
  m_impl->resume();
  m_impl->worker = std::thread([impl = m_impl.get()] { impl->loop(); });
}

Rollouts::~Rollouts() { stop(); }

void Rollouts::stop() {
  auto& i = *m_impl;
  {
    const std::lock_guard lock(i.mutex);
    i.stopping = true;
  }
  i.cv.notify_all();
  if (i.worker.joinable()) {
    i.worker.join();
  }
}

json Rollouts::start(std::string_view application, const api::CanarySpec& spec, const Actor& actor) {
  auto& i = *m_impl;
  api::validate_name(application, "application name");
  const std::string name(application);
  if (!i.sources.totals) {
    throw Error(ErrorKind::invalid_input,
                "the monitors are off (mlctl serve --no-monitoring): a canary cannot be judged");
  }
  const std::lock_guard action(i.action_mutex);
  {
    const std::lock_guard lock(i.mutex);
    const auto it = i.running.find(name);
    if (it != i.running.end()) {
      throw Error(ErrorKind::conflict, "application '" + name + "' has a rollout running (rollout " +
                                           std::to_string(it->second.id) + ": " + it->second.model +
                                           " at " + std::to_string(it->second.spec.weight) +
                                           "%); wait for it or run: mlctl rollout abort " + name);
    }
  }
  const auto current = i.applications.get(name);
  Impl::Running r;
  r.application = name;
  r.spec = spec;
  r.actor = actor;
  r.from_revision = current.value("revision", std::int64_t{0});
  r.before = current["manifest"];
  auto app = manifest::application_from_json(r.before);
  const auto primary_index = only_weighted_variant(app);
  r.primary = current["stages"][0]["variants"][primary_index]["model"].get<std::string>();
  if (spec.min_labelled > 0 && app.capture_sample <= 0) {
    throw Error(ErrorKind::invalid_input,
                "application '" + name +
                    "' stores no request (spec.capture.sample is 0), so no label can join: "
                    "use min_labelled 0 (mlctl rollout canary --min-labelled 0) without accuracy "
                    "gates");
  }
  const auto ref = api::parse_model_ref(spec.model);
  std::int64_t version = 0;
  try {
    version = i.registry.resolve(ref.name, api::VersionSelector{ref.version, ref.alias});
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::not_found) {
      throw;
    }
    throw Error(ErrorKind::invalid_input, "model: " + spec.model + " does not exist (" +
                                              i.registry.what_exists(ref.name) + ")");
  }
  r.model = ref.name + ":" + std::to_string(version);
  if (r.model == r.primary) {
    throw Error(ErrorKind::invalid_input, "model: " + spec.model + " is " + r.model +
                                              ", which already serves application '" + name + "'");
  }

  // The canary revision pins both versions, so the comparison is exactly primary vs canary.
  auto split = app;
  split.singular = false;
  auto& variants = split.stages[0].variants;
  variants[primary_index].model = api::parse_model_ref(r.primary);
  variants[primary_index].weight = 100 - spec.weight;
  manifest::Variant canary;
  canary.model = api::parse_model_ref(r.model);
  canary.weight = spec.weight;
  variants.insert(variants.begin() + static_cast<std::ptrdiff_t>(primary_index) + 1, canary);

  std::int64_t id = 0;
  {
    auto db = i.registry.pool().acquire();
    auto s = db->prepare("SELECT COALESCE(MAX(id), 0) + 1 FROM rollouts");
    s.step();
    id = s.int64(0);
  }
  const auto out = i.applications.apply(manifest::to_json(split), name, actor,
                                        "rollout " + std::to_string(id) + ": canary " + r.model +
                                            " at " + std::to_string(spec.weight) + "%");
  r.canary_revision = out.value("revision", std::int64_t{0});
  r.started_at = i.registry.now();
  r.updated_at = r.started_at;
  r.deadline = std::chrono::system_clock::now() + std::chrono::seconds(spec.timeout_seconds);
  i.baseline(r);
  r.verdict = i.judge(r); // pending: what it waits for, from the first answer on
  {
    const std::lock_guard write(i.registry.write_mutex());
    auto db = i.registry.pool().acquire();
    db->prepare("INSERT INTO rollouts (id, application, status, spec, model, primary_model, "
                "from_revision, canary_revision, actor, started_at, updated_at) "
                "VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)")
        .bind_all(id, name, api::to_json(spec).dump(), r.model, r.primary, r.from_revision,
                  r.canary_revision, actor.user, r.started_at, r.started_at)
        .run();
  }
  r.id = id;
  i.say("rollout " + std::to_string(id) + " of " + name + ": canary " + r.model + " at " +
        std::to_string(spec.weight) + "% next to " + r.primary + " (revision " +
        std::to_string(r.canary_revision) + ")");
  {
    const std::lock_guard lock(i.mutex);
    i.running[name] = std::move(r);
  }
  return latest(name);
}

json Rollouts::latest(std::string_view application) {
  api::validate_name(application, "application name");
  auto rows = m_impl->query(application, 1);
  if (rows.empty()) {
    throw Error(ErrorKind::not_found,
                "application '" + std::string(application) + "' has no rollout");
  }
  return std::move(rows.front());
}

json Rollouts::list(std::string_view application) {
  api::validate_name(application, "application name");
  return {{"application", application}, {"rollouts", m_impl->query(application, 100)}};
}

json Rollouts::abort(std::string_view application, const Actor& actor) {
  auto& i = *m_impl;
  api::validate_name(application, "application name");
  const std::string name(application);
  {
    const std::lock_guard action(i.action_mutex);
    Impl::Running r;
    {
      const std::lock_guard lock(i.mutex);
      const auto it = i.running.find(name);
      if (it == i.running.end()) {
        throw Error(ErrorKind::conflict, "application '" + name + "' has no rollout running");
      }
      r = it->second;
    }
    const auto reason = "aborted by " + actor.user;
    const auto back = i.roll_back(r, "rollout " + std::to_string(r.id) + ": " + reason);
    i.finish(r, back ? "aborted" : "failed", back, reason, r.verdict);
  }
  return latest(name);
}

} // namespace mlctl::server

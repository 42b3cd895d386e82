#include "server/applications.hpp"

#include "api/routes.hpp"
#include "server/registry.hpp"
#include "util/error.hpp"
#include "util/problems.hpp"

#include <set>

namespace mlctl::server {
using nlohmann::json;

namespace {

std::string holder_of(std::string_view name) {
  return "application/" + std::string(name);
}

std::string variant_path(const manifest::Application& app, std::size_t stage, std::size_t variant) {
  if (app.singular) {
    return "spec.singular.model";
  }
  return "spec.stages[" + std::to_string(stage) + "].variants[" + std::to_string(variant) +
         "].model";
}

std::pair<std::string, std::int64_t> split_ref(const std::string& ref) {
  const auto colon = ref.rfind(':');
  return {ref.substr(0, colon), std::stoll(ref.substr(colon + 1))};
}

struct Row {
  std::string name;
  std::int64_t revision = 0;
  std::string created_at;
  std::string updated_at;
  json manifest;
  json models;
};

std::optional<Row> read_row(sql::Database& db, std::string_view name) {
  auto stmt = db.prepare(
      "SELECT a.revision, a.created_at, a.updated_at, r.manifest, r.models FROM applications a "
      "JOIN application_revisions r ON r.name = a.name AND r.revision = a.revision "
      "WHERE a.name = ?");
  stmt.bind(1, name);
  if (!stmt.step()) {
    return std::nullopt;
  }
  Row row;
  row.name = std::string(name);
  row.revision = stmt.int64(0);
  row.created_at = stmt.text(1);
  row.updated_at = stmt.text(2);
  row.manifest = json::parse(stmt.text_view(3));
  row.models = json::parse(stmt.text_view(4));
  return row;
}

// True when the current revision serves `manifest` with `models` already (an apply changes
// nothing).
bool serves_already(const std::optional<Row>& current, const json& manifest, const json& models) {
  return current && current->manifest == manifest && current->models == models;
}

json row_json(const Row& r) {
  return {{"name", r.name},
          {"revision", r.revision},
          {"created_at", r.created_at},
          {"updated_at", r.updated_at},
          {"manifest", r.manifest},
          {"models", r.models}};
}

// "application 'ap' not found (applications: app, mnist-app)": a typo shows next to the names.
Error not_found(sql::Database& db, std::string_view name) {
  constexpr int k_shown = 5;
  auto stmt = db.prepare("SELECT name FROM applications ORDER BY name LIMIT ?");
  stmt.bind(1, k_shown + 1);
  std::vector<std::string> names;
  while (stmt.step()) {
    names.push_back(stmt.text(0));
  }
  std::string known =
      names.empty() ? "no application exists: mlctl apply creates one" : "applications: ";
  for (std::size_t i = 0; i < names.size() && i < k_shown; ++i) {
    known += (i ? ", " : "") + names[i];
  }
  if (names.size() > k_shown) {
    known += ", ... (mlctl get applications)";
  }
  return Error(ErrorKind::not_found,
               "application '" + std::string(name) + "' not found (" + known + ")");
}

} // namespace

std::shared_ptr<Route> Applications::build_route(const Resolved& r, std::int64_t revision) {
  std::vector<std::vector<std::shared_ptr<const LoadedModel>>> models;
  std::vector<std::vector<std::string>> requested;
  for (std::size_t s = 0; s < r.app.stages.size(); ++s) {
    auto& stage_models = models.emplace_back();
    auto& stage_requested = requested.emplace_back();
    for (std::size_t v = 0; v < r.app.stages[s].variants.size(); ++v) {
      const auto [name, version] = split_ref(r.models.at(s).at(v));
      const auto path = variant_path(r.app, s, v);
      try {
        stage_models.push_back(m_pool.get(name, version));
      } catch (const Error& e) {
        if (e.kind() == ErrorKind::not_found) {
          throw Error(ErrorKind::invalid_input, path + ": " + r.models[s][v] + " does not exist");
        }
        const bool keep = e.kind() == ErrorKind::io || e.kind() == ErrorKind::conflict;
        throw Error(keep ? e.kind() : ErrorKind::invalid_input,
                    path + ": cannot load " + r.models[s][v] + ": " + e.what());
      }
      stage_requested.push_back(r.app.stages[s].variants[v].model.to_string());
    }
  }
  return make_route(r.app, revision, std::move(models), requested);
}

void Applications::load_all(const std::function<void(const std::string&)>& log) {
  const std::lock_guard apply_lock(m_apply_mutex);
  std::vector<Row> rows;
  {
    auto db = m_registry.pool().acquire();
    auto stmt = db->prepare("SELECT name FROM applications ORDER BY name");
    std::vector<std::string> names;
    while (stmt.step()) {
      names.push_back(stmt.text(0));
    }
    for (const auto& n : names) {
      if (auto row = read_row(*db, n)) {
        rows.push_back(std::move(*row));
      }
    }
  }
  for (const auto& row : rows) {
    try {
      Resolved r;
      r.app = manifest::application_from_json(row.manifest);
      r.manifest = row.manifest;
      r.models = row.models.get<std::vector<std::vector<std::string>>>();
      m_gateway.install(build_route(r, row.revision));
    } catch (const std::exception& e) {
      if (log) {
        log("warning: application " + row.name + " (revision " + std::to_string(row.revision) +
            ") is not served: " + e.what());
      }
    }
  }
}

Applications::Resolved Applications::resolve(const json& doc, std::string_view name) {
  Resolved r;
  r.app = manifest::application_from_json(doc);
  if (r.app.name != name) {
    throw Error(ErrorKind::invalid_input, "metadata.name: '" + r.app.name +
                                              "' does not match the application '" +
                                              std::string(name) + "' of the URL");
  }
  r.manifest = manifest::to_json(r.app);
  // Aliases resolve now: the revision records the versions that serve. Every variant is
  // looked at, so that the message names each missing version.
  Problems problems;
  std::set<std::string> described;
  for (std::size_t s = 0; s < r.app.stages.size(); ++s) {
    auto& stage_models = r.models.emplace_back();
    for (std::size_t v = 0; v < r.app.stages[s].variants.size(); ++v) {
      const auto& ref = r.app.stages[s].variants[v].model;
      problems.check([&] {
        try {
          const auto version =
              m_registry.resolve(ref.name, api::VersionSelector{ref.version, ref.alias});
          stage_models.push_back(ref.name + ":" + std::to_string(version));
        } catch (const Error& e) {
          if (e.kind() != ErrorKind::not_found) {
            throw;
          }
          // What the model has is said once, at its first missing reference.
          const bool first = described.insert(ref.name).second;
          throw Error(ErrorKind::invalid_input,
                      variant_path(r.app, s, v) + ": " + ref.to_string() + " does not exist" +
                          (first ? " (" + m_registry.what_exists(ref.name) + ")" : ""));
        }
      });
    }
  }
  problems.raise();
  for (std::size_t s = 0; s < r.models.size(); ++s) {
    for (std::size_t v = 0; v < r.models[s].size(); ++v) {
      for (std::size_t w = 0; w < v; ++w) {
        if (r.models[s][v] == r.models[s][w]) {
          problems.add(variant_path(r.app, s, v) + ": " +
                       r.app.stages[s].variants[v].model.to_string() + " is " + r.models[s][v] +
                       ", which the stage serves already");
        }
      }
    }
  }
  problems.raise();
  return r;
}

json Applications::apply(const json& doc, std::string_view name, const Actor& actor,
                         std::string_view cause) {
  const std::lock_guard apply_lock(m_apply_mutex);
  return commit(resolve(doc, name), cause, actor, true);
}

json Applications::check(const json& doc, std::string_view name) {
  const auto r = resolve(doc, name);
  std::optional<Row> current;
  {
    auto db = m_registry.pool().acquire();
    current = read_row(*db, name);
  }
  const json models = r.models;
  const bool unchanged = serves_already(current, r.manifest, models);
  if (!unchanged) {
    build_route(r, 0); // loads and checks the versions, as an apply would
  }
  const char* result = unchanged ? "unchanged" : current ? "configured" : "created";
  return {{"name", r.app.name}, {"result", result}, {"dry_run", true}, {"models", models}};
}

json Applications::commit(const Resolved& r, std::string_view cause, const Actor& actor,
                          bool check_unchanged) {
  const auto& name = r.app.name;
  const json models_json = r.models;
  std::optional<Row> current;
  {
    auto db = m_registry.pool().acquire();
    current = read_row(*db, name);
  }
  if (check_unchanged && serves_already(current, r.manifest, models_json)) {
    if (!m_gateway.find(name)) {
      m_gateway.install(build_route(r, current->revision));
    }
    return {{"name", name},
            {"result", "unchanged"},
            {"revision", current->revision},
            {"application", get(name)}};
  }
  // Load and check the new versions before anything changes.
  auto route = build_route(r, 0);

  std::int64_t revision = 0;
  {
    const std::lock_guard write(m_registry.write_mutex());
    auto db = m_registry.pool().acquire();
    sql::Transaction tx(*db, sql::TransactionMode::immediate);
    std::vector<std::pair<std::string, std::int64_t>> pins;
    for (std::size_t s = 0; s < r.models.size(); ++s) {
      for (std::size_t v = 0; v < r.models[s].size(); ++v) {
        const auto [model, version] = split_ref(r.models[s][v]);
        auto exists = db->prepare("SELECT 1 FROM versions WHERE name = ? AND version = ?");
        exists.bind_all(model, version);
        if (!exists.step()) {
          throw Error(ErrorKind::invalid_input,
                      variant_path(r.app, s, v) + ": " + r.models[s][v] + " does not exist");
        }
        pins.emplace_back(model, version);
      }
    }
    auto last = db->prepare("SELECT MAX(revision) FROM application_revisions WHERE name = ?");
    last.bind(1, name);
    last.step();
    revision = (last.is_null(0) ? 0 : last.int64(0)) + 1;
    const auto time = m_registry.now();
    db->prepare("INSERT INTO application_revisions (name, revision, time, actor, cause, manifest, "
                "models) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)")
        .bind_all(name, revision, time, actor.user, cause, r.manifest.dump(), models_json.dump())
        .run();
    db->prepare(
          "INSERT INTO applications (name, revision, created_at, updated_at) VALUES (?, ?, ?, ?) "
          "ON CONFLICT(name) DO UPDATE SET revision = excluded.revision, updated_at = "
          "excluded.updated_at")
        .bind_all(name, revision, time, time)
        .run();
    set_version_usage(*db, holder_of(name), pins);
    api::Event e;
    e.time = time;
    e.action = cause.starts_with("rollout") ? "application.rollout"
               : cause.starts_with("rollback") ? "application.rolled_back"
                                               : "application.applied";
    e.name = name;
    e.detail = {
        {"application", name}, {"revision", revision}, {"models", models_json}, {"cause", cause}};
    record_event(*db, e, actor);
    tx.commit();
  }
  route->revision = revision;
  route->seed ^= static_cast<std::uint64_t>(revision) * 0x100000001b3ull;
  m_gateway.install(std::move(route));
  return {{"name", name},
          {"result", current ? "configured" : "created"},
          {"revision", revision},
          {"application", get(name)}};
}

json Applications::rollback(std::string_view name, std::optional<std::int64_t> revision,
                            const Actor& actor, std::string_view cause) {
  api::validate_name(name, "application name");
  const std::lock_guard apply_lock(m_apply_mutex);
  Resolved r;
  std::int64_t target = 0;
  {
    auto db = m_registry.pool().acquire();
    const auto current = read_row(*db, name);
    if (!current) {
      throw not_found(*db, name);
    }
    if (revision) {
      target = *revision;
    } else {
      auto prev = db->prepare(
          "SELECT MAX(revision) FROM application_revisions WHERE name = ? AND revision < ?");
      prev.bind_all(name, current->revision);
      prev.step();
      if (prev.is_null(0)) {
        throw Error(ErrorKind::not_found,
                    "application '" + std::string(name) + "' has no revision before " +
                        std::to_string(current->revision) + " (nothing to undo)");
      }
      target = prev.int64(0);
    }
    auto stmt = db->prepare(
        "SELECT manifest, models FROM application_revisions WHERE name = ? AND revision = ?");
    stmt.bind_all(name, target);
    if (!stmt.step()) {
      auto kept = db->prepare("SELECT MIN(revision), MAX(revision) FROM application_revisions "
                              "WHERE name = ?");
      kept.bind_all(name);
      kept.step();
      throw Error(ErrorKind::not_found,
                  "application '" + std::string(name) + "' has no revision " +
                      std::to_string(target) + " (its history holds revisions " +
                      std::to_string(kept.int64(0)) + " to " + std::to_string(kept.int64(1)) +
                      ": mlctl rollout history " + std::string(name) + ")");
    }
    r.manifest = json::parse(stmt.text_view(0));
    r.models = json::parse(stmt.text_view(1)).get<std::vector<std::vector<std::string>>>();
  }
  r.app = manifest::application_from_json(r.manifest);
  auto out = commit(r, cause.empty() ? "rollback to revision " + std::to_string(target) : std::string(cause),
                    actor, true);
  out["rolled_back_to"] = target;
  return out;
}

json Applications::remove(std::string_view name, const Actor& actor) {
  api::validate_name(name, "application name");
  const std::lock_guard apply_lock(m_apply_mutex);
  std::int64_t revision = 0;
  {
    const std::lock_guard write(m_registry.write_mutex());
    auto db = m_registry.pool().acquire();
    sql::Transaction tx(*db, sql::TransactionMode::immediate);
    const auto current = read_row(*db, name);
    if (!current) {
      throw not_found(*db, name);
    }
    revision = current->revision;
    db->prepare("DELETE FROM applications WHERE name = ?").bind(1, name).run();
    db->prepare("DELETE FROM application_revisions WHERE name = ?").bind(1, name).run();
    set_version_usage(*db, holder_of(name), {});
    api::Event e;
    e.time = m_registry.now();
    e.action = "application.deleted";
    e.name = std::string(name);
    e.detail = {{"application", name}, {"revision", revision}, {"models", current->models}};
    record_event(*db, e, actor);
    tx.commit();
  }
  m_gateway.remove(name);
  return {{"name", name}, {"deleted", true}, {"revision", revision}};
}

json Applications::describe(const json& row, const std::shared_ptr<const Route>& route) {
  const auto name = row["name"].get<std::string>();
  const auto app = manifest::application_from_json(row["manifest"]);
  const auto& models = row["models"];
  json stages = json::array();
  for (std::size_t s = 0; s < app.stages.size(); ++s) {
    json variants = json::array();
    for (std::size_t v = 0; v < app.stages[s].variants.size(); ++v) {
      const auto& var = app.stages[s].variants[v];
      json item = {{"model", models.at(s).at(v)},
                   {"requested", var.model.to_string()},
                   {"role", manifest::variant_role(app.stages[s], v)},
                   {"weight", var.weight}};
      if (var.shadow) {
        item["shadow"] = *var.shadow;
      }
      if (route && route->revision == row["revision"].get<std::int64_t>()) {
        const auto& slot = *route->stages.at(s).variants.at(v);
        const auto n = slot.requests.load();
        item["requests"] = n;
        item["errors"] = slot.errors.load();
        item["mean_latency_ms"] =
            n ? static_cast<double>(slot.latency_ns.load()) / static_cast<double>(n) / 1e6 : 0.0;
      }
      variants.push_back(std::move(item));
    }
    stages.push_back({{"variants", std::move(variants)}});
  }
  const auto encoded = api::routes::url_encode(name);
  json out = {{"name", name},
              {"revision", row["revision"]},
              {"created_at", row["created_at"]},
              {"updated_at", row["updated_at"]},
              {"singular", app.singular},
              {"stages", std::move(stages)},
              {"capture", {{"sample", app.capture_sample}}},
              {"monitoring", app.monitoring},
              {"manifest", row["manifest"]},
              {"endpoints",
               {{"v2_infer", "/v2/models/" + encoded + "/infer"},
                {"v2_metadata", "/v2/models/" + encoded},
                {"predict", "/api/v1/applications/" + encoded + "/predict"}}},
              {"ready", route != nullptr}};
  // Health: a monitor (issue 6) may provide it; absent until then.
  if (health) {
    if (auto h = health(name); !h.is_null()) {
      out["health"] = std::move(h);
    }
  }
  return out;
}

json Applications::get(std::string_view name) {
  api::validate_name(name, "application name");
  std::optional<Row> row;
  {
    auto db = m_registry.pool().acquire();
    row = read_row(*db, name);
    if (!row) {
      throw not_found(*db, name);
    }
  }
  return describe(row_json(*row), m_gateway.find(name));
}

bool Applications::exists(std::string_view name) {
  auto db = m_registry.pool().acquire();
  return read_row(*db, name).has_value();
}

json Applications::list() {
  std::vector<Row> rows;
  {
    auto db = m_registry.pool().acquire();
    auto stmt = db->prepare("SELECT name FROM applications ORDER BY name");
    std::vector<std::string> names;
    while (stmt.step()) {
      names.push_back(stmt.text(0));
    }
    for (const auto& n : names) {
      if (auto row = read_row(*db, n)) {
        rows.push_back(std::move(*row));
      }
    }
  }
  json list = json::array();
  for (const auto& row : rows) {
    list.push_back(describe(row_json(row), m_gateway.find(row.name)));
  }
  return {{"applications", std::move(list)}};
}

json Applications::revisions(std::string_view name) {
  api::validate_name(name, "application name");
  auto db = m_registry.pool().acquire();
  const auto current = read_row(*db, name);
  if (!current) {
    throw not_found(*db, name);
  }
  auto stmt = db->prepare(
      "SELECT revision, time, actor, cause, manifest, models FROM application_revisions "
      "WHERE name = ? ORDER BY revision");
  stmt.bind(1, name);
  json list = json::array();
  while (stmt.step()) {
    const auto models = json::parse(stmt.text_view(5));
    const auto manifest_doc = json::parse(stmt.text_view(4));
    // Versions with their weights, e.g. "mnist:3 70%, mnist:4 30%, mnist:5 shadow 10%".
    json variants = json::array();
    const auto app = manifest::application_from_json(manifest_doc);
    for (std::size_t s = 0; s < app.stages.size(); ++s) {
      for (std::size_t v = 0; v < app.stages[s].variants.size(); ++v) {
        const auto& var = app.stages[s].variants[v];
        json item = {{"stage", s}, {"model", models.at(s).at(v)}, {"weight", var.weight}};
        if (var.shadow) {
          item["shadow"] = *var.shadow;
        }
        variants.push_back(std::move(item));
      }
    }
    list.push_back({{"revision", stmt.int64(0)},
                    {"time", stmt.text(1)},
                    {"actor", stmt.text(2)},
                    {"cause", stmt.text(3)},
                    {"variants", std::move(variants)},
                    {"manifest", manifest_doc},
                    {"current", stmt.int64(0) == current->revision}});
  }
  return {
      {"name", std::string(name)}, {"current", current->revision}, {"revisions", std::move(list)}};
}

} // namespace mlctl::server

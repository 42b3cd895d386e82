#include "server/registry.hpp"

#include "api/time.hpp"
#include "server/migrations.hpp"
#include "util/error.hpp"

#include <algorithm>
#include <map>
#include <set>

namespace mlctl::server {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string not_found_message(std::string_view name, const api::VersionSelector& s) {
  if (s.version) {
    return "model " + std::string(name) + ":" + std::to_string(*s.version) + " not found";
  }
  if (s.alias == api::k_latest) {
    return "model '" + std::string(name) + "' has no versions";
  }
  return "model " + std::string(name) + "@" + s.alias + " not found (no such alias)";
}

void check_limit(std::int64_t limit) {
  if (limit < 1 || limit > 10000) {
    throw Error(ErrorKind::invalid_input, "limit " + std::to_string(limit) + ": must be 1..10000");
  }
}

bool model_exists(sql::Database& db, std::string_view name) {
  auto stmt = db.prepare("SELECT 1 FROM models WHERE name = ?");
  stmt.bind(1, name);
  return stmt.step();
}

void require_model(sql::Database& db, std::string_view name) {
  if (!model_exists(db, name)) {
    throw Error(ErrorKind::not_found, "model '" + std::string(name) + "' not found");
  }
}

std::int64_t resolve_in(sql::Database& db, std::string_view name, const api::VersionSelector& s) {
  if (s.version) {
    auto stmt = db.prepare("SELECT version FROM versions WHERE name = ? AND version = ?");
    stmt.bind_all(name, *s.version);
    if (stmt.step()) {
      return *s.version;
    }
  } else if (s.alias == api::k_latest) {
    auto stmt = db.prepare("SELECT MAX(version) FROM versions WHERE name = ?");
    stmt.bind(1, name);
    if (stmt.step() && !stmt.is_null(0)) {
      return stmt.int64(0);
    }
  } else {
    auto stmt = db.prepare("SELECT version FROM aliases WHERE name = ? AND alias = ?");
    stmt.bind_all(name, s.alias);
    if (stmt.step()) {
      return stmt.int64(0);
    }
  }
  throw Error(ErrorKind::not_found, not_found_message(name, s));
}

std::vector<std::string> aliases_of(sql::Database& db, std::string_view name, std::int64_t version) {
  auto stmt = db.prepare("SELECT alias FROM aliases WHERE name = ? AND version = ? ORDER BY alias");
  stmt.bind_all(name, version);
  std::vector<std::string> out;
  while (stmt.step()) {
    out.push_back(stmt.text(0));
  }
  return out;
}

std::map<std::string, std::string> tags_of(sql::Database& db, std::string_view name, std::int64_t version) {
  auto stmt = db.prepare("SELECT key, value FROM tags WHERE name = ? AND version = ?");
  stmt.bind_all(name, version);
  std::map<std::string, std::string> out;
  while (stmt.step()) {
    out.emplace(stmt.text(0), stmt.text(1));
  }
  return out;
}

// Reads one version, with details, inside the caller's connection.
api::VersionInfo read_version(sql::Database& db, std::string_view name, std::int64_t version) {
  auto stmt = db.prepare("SELECT v.sha256, v.size, v.created_at, v.uploader, d.card, d.files FROM versions v "
                         "LEFT JOIN version_documents d ON d.name = v.name AND d.version = v.version "
                         "WHERE v.name = ? AND v.version = ?");
  stmt.bind_all(name, version);
  if (!stmt.step()) {
    throw Error(ErrorKind::not_found, "model " + std::string(name) + ":" + std::to_string(version) + " not found");
  }
  api::VersionInfo v;
  v.name = std::string(name);
  v.version = version;
  v.sha256 = stmt.text(0);
  v.size = static_cast<std::uint64_t>(stmt.int64(1));
  v.created_at = stmt.text(2);
  v.uploader = stmt.text(3);
  v.detailed = true;
  const auto card = json::parse(stmt.text_view(4), nullptr, false);
  const auto spec = card.is_object() && card.contains("spec") && card["spec"].is_object() ? card["spec"] : json::object();
  v.contract = spec.value("contract", json());
  v.lineage = spec.value("lineage", json());
  v.metrics = spec.value("metrics", json());
  v.monitoring = spec.value("monitoring", json());
  const auto files = json::parse(stmt.text_view(5), nullptr, false);
  if (files.is_array()) {
    for (const auto& f : files) {
      if (f.is_string()) {
        v.files.push_back(f.get<std::string>());
      }
    }
  }
  v.aliases = aliases_of(db, name, version);
  v.tags = tags_of(db, name, version);
  v.used_by = version_users(db, name, version);
  return v;
}

// `AND EXISTS (...)` clauses for tag filters on versions aliased `v`, parameters from `first`.
std::string tag_clauses(std::size_t count, int first) {
  std::string sql;
  for (std::size_t i = 0; i < count; ++i) {
    const auto k = std::to_string(first + static_cast<int>(2 * i));
    const auto val = std::to_string(first + static_cast<int>(2 * i) + 1);
    sql += " AND EXISTS (SELECT 1 FROM tags t WHERE t.name = v.name AND t.version = v.version AND t.key = ?" + k +
           " AND t.value = ?" + val + ")";
  }
  return sql;
}

} // namespace

std::pair<std::string, std::string> parse_tag_assignment(std::string_view text) {
  const auto eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    throw Error(ErrorKind::invalid_input, "tag '" + std::string(text.substr(0, 80)) + "': expected KEY=VALUE");
  }
  std::pair<std::string, std::string> out{std::string(text.substr(0, eq)), std::string(text.substr(eq + 1))};
  api::validate_tag_key(out.first);
  api::validate_tag_value(out.first, out.second);
  return out;
}

void set_version_usage(sql::Database& db, std::string_view holder,
                       const std::vector<std::pair<std::string, std::int64_t>>& versions) {
  db.prepare("DELETE FROM version_usage WHERE holder = ?").bind(1, holder).run();
  auto insert = db.prepare("INSERT OR IGNORE INTO version_usage (name, version, holder) VALUES (?, ?, ?)");
  for (const auto& [name, version] : versions) {
    insert.reset();
    insert.bind_all(name, version, holder).run();
  }
}

std::vector<std::string> version_users(sql::Database& db, std::string_view name, std::int64_t version) {
  auto stmt = db.prepare("SELECT holder FROM version_usage WHERE name = ? AND version = ? ORDER BY holder");
  stmt.bind_all(name, version);
  std::vector<std::string> out;
  while (stmt.step()) {
    out.push_back(stmt.text(0));
  }
  return out;
}

Registry::Registry(const fs::path& data_dir, Clock clock)
    : m_data_dir(data_dir),
      m_clock(clock ? std::move(clock) : Clock([] { return std::chrono::system_clock::now(); })),
      m_store(data_dir), m_pool(data_dir / "registry.db") {
  auto db = m_pool.acquire();
  apply_migrations(*db);
}

std::string Registry::now() const { return api::format_time(m_clock()); }

Registry::RecoveryReport Registry::recover() {
  const std::lock_guard write(m_write_mutex);
  RecoveryReport report;
  std::error_code ec;
  for (const auto& path : m_store.stale_temporaries()) {
    fs::remove_all(path, ec);
    ++report.temporaries_removed;
  }
  auto db = m_pool.acquire();
  std::set<std::string> referenced;
  {
    auto stmt = db->prepare("SELECT DISTINCT sha256 FROM versions");
    while (stmt.step()) {
      referenced.insert(stmt.text(0));
    }
  }
  std::set<std::string> present;
  for (const auto& f : m_store.scan()) {
    if (!f.sha256.empty() && referenced.count(f.sha256) != 0) {
      present.insert(f.sha256);
      continue;
    }
    // Renamed into place but the transaction never committed, or a stray file.
    if (fs::remove(f.path, ec)) {
      ++report.orphans_removed;
      report.bytes_freed += f.size;
    }
  }
  for (const auto& sha : referenced) {
    if (present.count(sha) == 0) {
      auto stmt = db->prepare("SELECT name, version FROM versions WHERE sha256 = ? ORDER BY name, version");
      stmt.bind(1, sha);
      while (stmt.step()) {
        report.missing_artifacts.push_back(stmt.text(0) + ":" + std::to_string(stmt.int64(1)));
      }
    }
  }
  return report;
}

api::UploadResult Registry::add_version(std::string_view name, ArtifactStore::Upload& upload,
                                        const CheckedArtifact& checked, bool force_new, const Actor& actor) {
  api::validate_name(name);
  const std::lock_guard write(m_write_mutex);
  auto db = m_pool.acquire();
  sql::Transaction tx(*db, sql::TransactionMode::immediate);
  const auto time = now();
  if (!force_new) {
    auto same = db->prepare("SELECT MIN(version) FROM versions WHERE name = ? AND sha256 = ?");
    same.bind_all(name, upload.sha256());
    if (same.step() && !same.is_null(0)) {
      const auto existing = same.int64(0);
      api::UploadResult result{.created = false, .version = read_version(*db, name, existing)};
      // Bytes lost from the data directory (recover() warns of them at start) come back with
      // an upload of the same bytes: content addressing makes this copy as good as the lost one.
      if (m_store.adopt(upload)) { // true only when the file was not there
        api::Event event;
        event.time = time;
        event.action = "version.restored";
        event.name = std::string(name);
        event.version = existing;
        event.detail = {{"sha256", upload.sha256()}, {"size", upload.size()}};
        record_event(*db, event, actor);
        tx.commit();
        result.restored = true;
      }
      return result; // otherwise the transaction rolls back: nothing changed
    }
  }
  std::int64_t version = 1;
  {
    auto next = db->prepare("SELECT next_version FROM models WHERE name = ?");
    next.bind(1, name);
    if (next.step()) {
      version = next.int64(0);
    } else {
      db->prepare("INSERT INTO models (name, next_version, created_at, updated_at) VALUES (?, 1, ?, ?)")
          .bind_all(name, time, time)
          .run();
    }
  }
  // The bytes reach their address before the row that points at them commits; if the commit
  // never happens the file is an orphan that `recover()`/`gc()` removes.
  const bool placed = m_store.adopt(upload);
  try {
    json files = checked.files;
    db->prepare("INSERT INTO versions (name, version, sha256, size, created_at, uploader) VALUES (?, ?, ?, ?, ?, ?)")
        .bind_all(name, version, upload.sha256(), upload.size(), time, actor.user)
        .run();
    db->prepare("INSERT INTO version_documents (name, version, card, files) VALUES (?, ?, ?, ?)")
        .bind_all(name, version, checked.card.dump(-1, ' ', false, json::error_handler_t::replace), files.dump(-1, ' ', false, json::error_handler_t::replace))
        .run();
    db->prepare("UPDATE models SET next_version = ?, updated_at = ? WHERE name = ?")
        .bind_all(version + 1, time, name)
        .run();
    api::Event event;
    event.time = time;
    event.action = "version.created";
    event.name = std::string(name);
    event.version = version;
    event.detail = {{"sha256", upload.sha256()}, {"size", upload.size()}, {"force_new", force_new}};
    record_event(*db, event, actor);
    auto info = read_version(*db, name, version);
    tx.commit();
    return {.created = true, .version = std::move(info)};
  } catch (...) {
    if (placed) {
      // Nobody else can reference these bytes: we hold the write lock and they were new.
      std::error_code ec;
      fs::remove(m_store.path_for(upload.sha256()), ec);
    }
    throw;
  }
}

api::ModelList Registry::list_models(const ModelQuery& query) {
  check_limit(query.limit);
  auto db = m_pool.acquire();
  std::string sql = "SELECT m.name, m.created_at, m.updated_at, "
                    "(SELECT COUNT(*) FROM versions v WHERE v.name = m.name), "
                    "(SELECT MAX(version) FROM versions v WHERE v.name = m.name) "
                    "FROM models m WHERE m.name > ?1 AND substr(m.name, 1, length(?2)) = ?2";
  for (std::size_t i = 0; i < query.tags.size(); ++i) {
    const auto k = std::to_string(4 + 2 * i);
    const auto v = std::to_string(5 + 2 * i);
    sql += " AND EXISTS (SELECT 1 FROM tags t WHERE t.name = m.name AND t.key = ?" + k + " AND t.value = ?" + v + ")";
  }
  sql += " ORDER BY m.name LIMIT ?3";
  auto stmt = db->prepare(sql);
  stmt.bind(1, query.page_token).bind(2, query.prefix).bind(3, query.limit + 1);
  for (std::size_t i = 0; i < query.tags.size(); ++i) {
    stmt.bind(static_cast<int>(4 + 2 * i), query.tags[i].first);
    stmt.bind(static_cast<int>(5 + 2 * i), query.tags[i].second);
  }
  api::ModelList out;
  while (stmt.step()) {
    if (static_cast<std::int64_t>(out.models.size()) == query.limit) {
      out.next_page_token = out.models.back().name;
      break;
    }
    api::ModelSummary m;
    m.name = stmt.text(0);
    m.created_at = stmt.text(1);
    m.updated_at = stmt.text(2);
    m.version_count = stmt.int64(3);
    m.latest_version = stmt.is_null(4) ? 0 : stmt.int64(4);
    out.models.push_back(std::move(m));
  }
  auto aliases = db->prepare("SELECT alias, version FROM aliases WHERE name = ?");
  for (auto& m : out.models) {
    aliases.reset();
    aliases.bind(1, m.name);
    while (aliases.step()) {
      m.aliases.emplace(aliases.text(0), aliases.int64(1));
    }
  }
  return out;
}

api::ModelSummary Registry::get_model(std::string_view name) {
  api::validate_name(name);
  auto db = m_pool.acquire();
  auto stmt = db->prepare("SELECT m.created_at, m.updated_at, COUNT(v.version), MAX(v.version) "
                          "FROM models m LEFT JOIN versions v ON v.name = m.name WHERE m.name = ? GROUP BY m.name");
  stmt.bind(1, name);
  if (!stmt.step()) {
    throw Error(ErrorKind::not_found, "model '" + std::string(name) + "' not found");
  }
  api::ModelSummary m;
  m.name = std::string(name);
  m.created_at = stmt.text(0);
  m.updated_at = stmt.text(1);
  m.version_count = stmt.int64(2);
  m.latest_version = stmt.is_null(3) ? 0 : stmt.int64(3);
  auto aliases = db->prepare("SELECT alias, version FROM aliases WHERE name = ?");
  aliases.bind(1, name);
  while (aliases.step()) {
    m.aliases.emplace(aliases.text(0), aliases.int64(1));
  }
  return m;
}

api::VersionList Registry::list_versions(std::string_view name, const VersionQuery& query) {
  api::validate_name(name);
  check_limit(query.limit);
  auto db = m_pool.acquire();
  // One read transaction: the versions, aliases and tags come from the same snapshot.
  sql::Transaction snapshot(*db, sql::TransactionMode::deferred);
  require_model(*db, name);
  std::string sql = "SELECT v.version, v.sha256, v.size, v.created_at, v.uploader FROM versions v WHERE v.name = ?1";
  sql += query.descending ? " AND (?2 = 0 OR v.version < ?2)" : " AND v.version > ?2";
  sql += tag_clauses(query.tags.size(), 4);
  sql += query.descending ? " ORDER BY v.version DESC" : " ORDER BY v.version";
  sql += " LIMIT ?3";
  auto stmt = db->prepare(sql);
  stmt.bind(1, name).bind(2, query.page_token).bind(3, query.limit + 1);
  for (std::size_t i = 0; i < query.tags.size(); ++i) {
    stmt.bind(static_cast<int>(4 + 2 * i), query.tags[i].first);
    stmt.bind(static_cast<int>(5 + 2 * i), query.tags[i].second);
  }
  api::VersionList out;
  out.name = std::string(name);
  out.versions.reserve(static_cast<std::size_t>(query.limit) + 1); // no regrowth: 10,000 rows move once
  while (stmt.step()) {
    if (static_cast<std::int64_t>(out.versions.size()) == query.limit) {
      out.next_page_token = std::to_string(out.versions.back().version);
      break;
    }
    api::VersionInfo v;
    v.name = out.name;
    v.version = stmt.int64(0);
    v.sha256 = stmt.text(1);
    v.size = static_cast<std::uint64_t>(stmt.int64(2));
    v.created_at = stmt.text(3);
    v.uploader = stmt.text(4);
    out.versions.push_back(std::move(v));
  }
  if (out.versions.empty()) {
    return out;
  }
  // Aliases and tags of the whole model in two queries, joined here (a page may be 10,000).
  std::map<std::int64_t, std::size_t> index;
  for (std::size_t i = 0; i < out.versions.size(); ++i) {
    index.emplace(out.versions[i].version, i);
  }
  auto aliases = db->prepare("SELECT version, alias FROM aliases WHERE name = ? ORDER BY alias");
  aliases.bind(1, name);
  while (aliases.step()) {
    if (const auto it = index.find(aliases.int64(0)); it != index.end()) {
      out.versions[it->second].aliases.push_back(aliases.text(1));
    }
  }
  const auto lo = std::min(out.versions.front().version, out.versions.back().version);
  const auto hi = std::max(out.versions.front().version, out.versions.back().version);
  auto tags = db->prepare("SELECT version, key, value FROM tags WHERE name = ? AND version BETWEEN ? AND ?");
  tags.bind_all(name, lo, hi);
  while (tags.step()) {
    if (const auto it = index.find(tags.int64(0)); it != index.end()) {
      out.versions[it->second].tags.emplace(tags.text(1), tags.text(2));
    }
  }
  return out;
}

std::int64_t Registry::resolve(std::string_view name, const api::VersionSelector& selector) {
  api::validate_name(name);
  auto db = m_pool.acquire();
  return resolve_in(*db, name, selector);
}

std::string Registry::what_exists(std::string_view name) {
  auto db = m_pool.acquire();
  sql::Transaction snapshot(*db, sql::TransactionMode::deferred);
  const std::string model(name);
  if (!model_exists(*db, name)) {
    return "no model '" + model + "' is registered";
  }
  auto latest = db->prepare("SELECT MAX(version) FROM versions WHERE name = ?");
  latest.bind(1, name);
  if (!latest.step() || latest.is_null(0)) {
    return model + " has no versions";
  }
  std::string out = model + "'s latest version is " + std::to_string(latest.int64(0));
  auto aliases = db->prepare("SELECT alias, version FROM aliases WHERE name = ? ORDER BY alias");
  aliases.bind(1, name);
  std::string list;
  while (aliases.step()) {
    list += (list.empty() ? "" : ", ") + aliases.text(0) + "=" + std::to_string(aliases.int64(1));
  }
  return out + (list.empty() ? "; it has no aliases" : "; its aliases: " + list);
}

api::VersionInfo Registry::get_version(std::string_view name, const api::VersionSelector& selector) {
  api::validate_name(name);
  auto db = m_pool.acquire();
  sql::Transaction snapshot(*db, sql::TransactionMode::deferred);
  auto info = read_version(*db, name, resolve_in(*db, name, selector));
  std::error_code ec;
  info.artifact_missing = !fs::exists(m_store.path_for(info.sha256), ec);
  return info;
}

Registry::ArtifactFile Registry::artifact(std::string_view name, const api::VersionSelector& selector) {
  api::validate_name(name);
  auto db = m_pool.acquire();
  sql::Transaction snapshot(*db, sql::TransactionMode::deferred);
  ArtifactFile out;
  out.version = resolve_in(*db, name, selector);
  auto stmt = db->prepare("SELECT sha256, size FROM versions WHERE name = ? AND version = ?");
  stmt.bind_all(name, out.version);
  stmt.step();
  out.sha256 = stmt.text(0);
  out.size = static_cast<std::uint64_t>(stmt.int64(1));
  out.path = m_store.path_for(out.sha256);
  return out;
}

api::DeleteResult Registry::delete_version(std::string_view name, const api::VersionSelector& selector,
                                           const Actor& actor) {
  api::validate_name(name);
  const std::lock_guard write(m_write_mutex);
  auto db = m_pool.acquire();
  sql::Transaction tx(*db, sql::TransactionMode::immediate);
  const auto version = resolve_in(*db, name, selector);
  const auto ref = std::string(name) + ":" + std::to_string(version);
  const auto users = version_users(*db, name, version);
  if (!users.empty()) {
    std::string list;
    for (const auto& u : users) {
      list += (list.empty() ? "" : ", ") + u;
    }
    throw Error(ErrorKind::conflict, "model " + ref + " is in use by " + list +
                                         "; point those at another version (or delete them) first");
  }
  const auto info = read_version(*db, name, version);
  const auto time = now();
  for (const auto& alias : info.aliases) {
    api::Event e;
    e.time = time;
    e.action = "alias.deleted";
    e.name = std::string(name);
    e.version = version;
    e.alias = alias;
    e.detail = {{"reason", "version deleted"}};
    record_event(*db, e, actor);
  }
  db->prepare("DELETE FROM versions WHERE name = ? AND version = ?").bind_all(name, version).run();
  db->prepare("UPDATE models SET updated_at = ? WHERE name = ?").bind_all(time, name).run();
  auto shared = db->prepare("SELECT COUNT(*) FROM versions WHERE sha256 = ?");
  shared.bind(1, info.sha256);
  shared.step();
  const bool last_reference = shared.int64(0) == 0;
  api::Event e;
  e.time = time;
  e.action = "version.deleted";
  e.name = std::string(name);
  e.version = version;
  e.detail = {{"sha256", info.sha256}, {"size", info.size}};
  record_event(*db, e, actor);
  tx.commit();
  api::DeleteResult result;
  result.name = std::string(name);
  result.version = version;
  if (last_reference) {
    // After the commit: a crash here leaves an orphan file for recover()/gc(), never a row
    // without its bytes.
    result.bytes_freed = m_store.remove(info.sha256);
    result.artifact_removed = true;
  }
  return result;
}

api::AliasInfo Registry::set_alias(std::string_view name, std::string_view alias, std::int64_t version,
                                   const Actor& actor) {
  api::validate_name(name);
  api::validate_alias(alias);
  const std::lock_guard write(m_write_mutex);
  auto db = m_pool.acquire();
  sql::Transaction tx(*db, sql::TransactionMode::immediate);
  require_model(*db, name);
  api::VersionSelector exact;
  exact.version = version;
  resolve_in(*db, name, exact);
  std::optional<std::int64_t> previous;
  {
    auto stmt = db->prepare("SELECT version FROM aliases WHERE name = ? AND alias = ?");
    stmt.bind_all(name, alias);
    if (stmt.step()) {
      previous = stmt.int64(0);
    }
  }
  api::AliasInfo out{std::string(name), std::string(alias), version, now()};
  if (previous == version) {
    return out; // nothing changes, nothing is logged
  }
  db->prepare("INSERT INTO aliases (name, alias, version, updated_at) VALUES (?, ?, ?, ?) "
              "ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at")
      .bind_all(name, alias, version, out.updated_at)
      .run();
  api::Event e;
  e.time = out.updated_at;
  e.action = "alias.set";
  e.name = std::string(name);
  e.version = version;
  e.alias = std::string(alias);
  e.detail = {{"previous", previous ? json(*previous) : json()}};
  record_event(*db, e, actor);
  tx.commit();
  return out;
}

void Registry::delete_alias(std::string_view name, std::string_view alias, const Actor& actor) {
  api::validate_name(name);
  api::validate_alias(alias);
  const std::lock_guard write(m_write_mutex);
  auto db = m_pool.acquire();
  sql::Transaction tx(*db, sql::TransactionMode::immediate);
  api::VersionSelector s;
  s.alias = std::string(alias);
  const auto version = resolve_in(*db, name, s);
  db->prepare("DELETE FROM aliases WHERE name = ? AND alias = ?").bind_all(name, alias).run();
  api::Event e;
  e.time = now();
  e.action = "alias.deleted";
  e.name = std::string(name);
  e.version = version;
  e.alias = std::string(alias);
  record_event(*db, e, actor);
  tx.commit();
}

api::AliasList Registry::list_aliases(std::string_view name) {
  api::validate_name(name);
  auto db = m_pool.acquire();
  require_model(*db, name);
  auto stmt = db->prepare("SELECT alias, version, updated_at FROM aliases WHERE name = ? ORDER BY alias");
  stmt.bind(1, name);
  api::AliasList out;
  out.name = std::string(name);
  while (stmt.step()) {
    out.aliases.push_back({out.name, stmt.text(0), stmt.int64(1), stmt.text(2)});
  }
  return out;
}

api::VersionInfo Registry::update_tags(std::string_view name, const api::VersionSelector& selector,
                                       const api::TagUpdate& update, const Actor& actor) {
  api::validate_name(name);
  for (const auto& [k, v] : update.set) {
    api::validate_tag_key(k);
    api::validate_tag_value(k, v);
  }
  for (const auto& k : update.remove) {
    api::validate_tag_key(k);
  }
  const std::lock_guard write(m_write_mutex);
  auto db = m_pool.acquire();
  sql::Transaction tx(*db, sql::TransactionMode::immediate);
  const auto version = resolve_in(*db, name, selector);
  auto remove = db->prepare("DELETE FROM tags WHERE name = ? AND version = ? AND key = ?");
  for (const auto& k : update.remove) {
    remove.reset();
    remove.bind_all(name, version, k).run();
  }
  auto set = db->prepare("INSERT INTO tags (name, version, key, value) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value");
  for (const auto& [k, v] : update.set) {
    set.reset();
    set.bind_all(name, version, k, v).run();
  }
  api::Event e;
  e.time = now();
  e.action = "tags.updated";
  e.name = std::string(name);
  e.version = version;
  e.detail = {{"set", update.set}, {"remove", update.remove}};
  record_event(*db, e, actor);
  auto info = read_version(*db, name, version);
  tx.commit();
  return info;
}

api::EventList Registry::events(const EventQuery& query) {
  auto db = m_pool.acquire();
  return list_events(*db, query);
}

api::GcReport Registry::gc(bool dry_run, const Actor& actor) {
  const std::lock_guard write(m_write_mutex);
  auto db = m_pool.acquire();
  sql::Transaction tx(*db, sql::TransactionMode::immediate);
  std::set<std::string> referenced;
  {
    auto stmt = db->prepare("SELECT DISTINCT sha256 FROM versions");
    while (stmt.step()) {
      referenced.insert(stmt.text(0));
    }
  }
  api::GcReport report;
  report.dry_run = dry_run;
  std::vector<std::pair<fs::path, std::uint64_t>> doomed;
  for (const auto& f : m_store.scan()) {
    if (f.sha256.empty() || referenced.count(f.sha256) == 0) {
      doomed.emplace_back(f.path, f.size);
    }
  }
  for (const auto& path : m_store.stale_temporaries()) {
    std::uint64_t size = 0;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      if (it->is_regular_file(ec)) {
        size += it->file_size(ec);
      }
    }
    if (fs::is_regular_file(path, ec)) {
      size = fs::file_size(path, ec);
    }
    doomed.emplace_back(path, size);
  }
  for (const auto& [path, size] : doomed) {
    std::error_code ec;
    if (!dry_run && fs::remove_all(path, ec) == 0) {
      continue;
    }
    ++report.files_removed;
    report.bytes_freed += size;
    report.removed.push_back(m_store.relative(path));
  }
  if (!dry_run) {
    api::Event e;
    e.time = now();
    e.action = "gc";
    e.detail = {{"files_removed", report.files_removed}, {"bytes_freed", report.bytes_freed}};
    record_event(*db, e, actor);
    tx.commit();
  }
  return report;
}

} // namespace mlctl::server

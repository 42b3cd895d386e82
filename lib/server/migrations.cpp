#include "server/migrations.hpp"

#include "util/error.hpp"

#include <array>

namespace mlctl::server {

namespace {

// Times are RFC 3339 UTC text with milliseconds, so text order is time order.
constexpr std::string_view k_registry = R"sql(
CREATE TABLE models (
  name         TEXT PRIMARY KEY,
  next_version INTEGER NOT NULL,   -- versions are never reused, even after a delete
  created_at   TEXT NOT NULL,
  updated_at   TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE versions (
  name       TEXT NOT NULL REFERENCES models(name),
  version    INTEGER NOT NULL,
  sha256     TEXT NOT NULL,
  size       INTEGER NOT NULL,
  created_at TEXT NOT NULL,
  uploader   TEXT NOT NULL,
  PRIMARY KEY (name, version)
) WITHOUT ROWID;
CREATE INDEX versions_by_sha256 ON versions(sha256);

-- The bulky per-version documents live apart, so listings scan small rows only.
CREATE TABLE version_documents (
  name    TEXT NOT NULL,
  version INTEGER NOT NULL,
  card    TEXT NOT NULL,           -- model.yaml as JSON
  files   TEXT NOT NULL,           -- JSON array of the artifact's files
  PRIMARY KEY (name, version),
  FOREIGN KEY (name, version) REFERENCES versions(name, version) ON DELETE CASCADE
);

CREATE TABLE aliases (
  name       TEXT NOT NULL,
  alias      TEXT NOT NULL,
  version    INTEGER NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (name, alias),
  FOREIGN KEY (name, version) REFERENCES versions(name, version) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE tags (
  name    TEXT NOT NULL,
  version INTEGER NOT NULL,
  key     TEXT NOT NULL,
  value   TEXT NOT NULL,
  PRIMARY KEY (name, version, key),
  FOREIGN KEY (name, version) REFERENCES versions(name, version) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX tags_by_key ON tags(key, value);

-- Who holds a version (an application, later): deletion is refused while a row exists.
CREATE TABLE version_usage (
  name    TEXT NOT NULL,
  version INTEGER NOT NULL,
  holder  TEXT NOT NULL,           -- e.g. "application/mnist-app"
  PRIMARY KEY (name, version, holder)
) WITHOUT ROWID;
CREATE INDEX version_usage_by_holder ON version_usage(holder);

-- The audit log of every change (registry now, applications later).
CREATE TABLE events (
  id      INTEGER PRIMARY KEY AUTOINCREMENT,
  time    TEXT NOT NULL,
  actor   TEXT NOT NULL,
  action  TEXT NOT NULL,
  name    TEXT NOT NULL,
  version INTEGER,
  alias   TEXT NOT NULL,
  detail  TEXT NOT NULL            -- JSON object
);
CREATE INDEX events_by_time ON events(time);
CREATE INDEX events_by_name ON events(name, id);
)sql";

// Applications and their numbered revisions (issue 5). A revision keeps the manifest as
// applied and the versions its aliases resolved to, so a rollback serves exactly those.
constexpr std::string_view k_applications = R"sql(
CREATE TABLE applications (
  name       TEXT PRIMARY KEY,
  revision   INTEGER NOT NULL,     -- the current one
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE application_revisions (
  name     TEXT NOT NULL,
  revision INTEGER NOT NULL,
  time     TEXT NOT NULL,
  actor    TEXT NOT NULL,
  cause    TEXT NOT NULL,          -- "apply", "rollback to revision N"
  manifest TEXT NOT NULL,          -- the canonical Application document (JSON)
  models   TEXT NOT NULL,          -- JSON [["mnist:3", ...], ...]: resolved versions per stage
  PRIMARY KEY (name, revision)
) WITHOUT ROWID;
)sql";

// Health changes of served versions (issue 6): one row per healthy <-> unhealthy transition.
constexpr std::string_view k_health_events = R"sql(
CREATE TABLE health_events (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  time        TEXT NOT NULL,
  application TEXT NOT NULL,
  model       TEXT NOT NULL,
  version     INTEGER NOT NULL,
  from_state  TEXT NOT NULL,       -- healthy | unhealthy | unknown
  to_state    TEXT NOT NULL,
  monitor     TEXT NOT NULL,       -- reconstruction | accuracy
  value       REAL NOT NULL,       -- the rolling value at the change
  threshold   REAL NOT NULL
);
CREATE INDEX health_events_by_application ON health_events(application, id);
)sql";

// Canary analyses (`mlctl rollout canary`): one row per rollout; the verdict is written when it
// ends (a running one keeps its latest verdict in memory).
constexpr std::string_view k_rollouts = R"sql(
CREATE TABLE rollouts (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  application     TEXT NOT NULL,
  status          TEXT NOT NULL,   -- running | promoted | rolled_back | aborted | failed
  spec            TEXT NOT NULL,   -- JSON: the canary spec as accepted
  model           TEXT NOT NULL,   -- the canary, resolved: "mnist:5"
  primary_model   TEXT NOT NULL,   -- what served before: "mnist:3"
  from_revision   INTEGER NOT NULL,
  canary_revision INTEGER NOT NULL,
  final_revision  INTEGER,
  actor           TEXT NOT NULL,
  started_at      TEXT NOT NULL,
  updated_at      TEXT NOT NULL,
  finished_at     TEXT,
  reason          TEXT,
  verdict         TEXT             -- JSON: the last verdict (gates, comparison, evidence)
);
CREATE INDEX rollouts_by_application ON rollouts(application, id);
)sql";

constexpr std::array k_migrations{
    Migration{1, "registry", k_registry},
    Migration{2, "applications", k_applications},
    Migration{3, "health_events", k_health_events},
    Migration{4, "rollouts", k_rollouts},
};

} // namespace

std::span<const Migration> migrations() { return k_migrations; }

int latest_schema_version() { return k_migrations.back().version; }

int schema_version(sql::Database& db) {
  auto stmt = db.prepare("PRAGMA user_version");
  stmt.step();
  return static_cast<int>(stmt.int64(0));
}

int apply_migrations(sql::Database& db) { return apply_migrations(db, k_migrations); }

int apply_migrations(sql::Database& db, std::span<const Migration> list) {
  int applied = 0;
  const int latest = list.empty() ? 0 : list.back().version;
  // IMMEDIATE: two processes starting on one data directory migrate one after the other.
  sql::Transaction probe(db, sql::TransactionMode::immediate);
  const int current = schema_version(db);
  if (current > latest) {
    throw Error(ErrorKind::conflict, db.path().string() + ": schema version " + std::to_string(current) +
                                         " is newer than this mlctl (" + std::to_string(latest) + ")");
  }
  for (const auto& m : list) {
    if (m.version <= current) {
      continue;
    }
    with_context("migration " + std::to_string(m.version) + " (" + std::string(m.name) + ")",
                 [&] {
                   db.exec(m.sql);
                   db.exec("PRAGMA user_version = " + std::to_string(m.version));
                 });
    ++applied;
  }
  probe.commit();
  return applied;
}

} // namespace mlctl::server

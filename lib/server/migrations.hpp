#pragma once
// Versioned schema of the platform database. Pending migrations run once, in order, in one
// transaction that also bumps `PRAGMA user_version`; later features append migrations
// (never edit a released one).

#include "server/sqlite.hpp"

#include <span>
#include <string_view>

namespace mlctl::server {

struct Migration {
  int version;          // 1, 2, 3, ... (the schema version after it ran)
  std::string_view name; // what it adds, e.g. "registry"
  std::string_view sql;
};

// Returns every migration, in order.
std::span<const Migration> migrations();

// Returns the schema version this build writes (the last migration's version).
int latest_schema_version();

// Applies the migrations newer than the database's `user_version`; returns how many ran.
// Throws `Error{conflict}` "<db>: schema version N is newer than this mlctl (M)" for a
// database written by a newer mlctl, and SQLite errors as `sql::Database` does.
int apply_migrations(sql::Database& db);

// The same for a database with a schema of its own (e.g. the request store's `requests.db`):
// applies the migrations of `list` (versions 1, 2, ... in order) newer than its `user_version`.
int apply_migrations(sql::Database& db, std::span<const Migration> list);

// Returns the database's current schema version.
int schema_version(sql::Database& db);

} // namespace mlctl::server

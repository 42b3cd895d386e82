#include "server/migrations.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <doctest/doctest.h>

using mlctl::Error;
namespace server = mlctl::server;
namespace sql = mlctl::server::sql;

TEST_CASE("migrations apply once, in order, and are numbered without gaps") {
  int expected = 1;
  for (const auto& m : server::migrations()) {
    CHECK(m.version == expected++);
    CHECK_FALSE(m.sql.empty());
  }
  mlctl::util::TempDir dir;
  auto db = sql::Database::open(dir.path() / "r.db");
  CHECK(server::schema_version(*db) == 0);
  CHECK(server::apply_migrations(*db) == static_cast<int>(server::migrations().size()));
  CHECK(server::schema_version(*db) == server::latest_schema_version());
  CHECK(server::apply_migrations(*db) == 0);
  auto q = db->prepare("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                       "('models','versions','aliases','tags','events','version_usage')");
  REQUIRE(q.step());
  CHECK(q.int64(0) == 6);
}

TEST_CASE("a database from a newer mlctl is refused") {
  mlctl::util::TempDir dir;
  const auto path = dir.path() / "r.db";
  auto db = sql::Database::open(path);
  db->exec("PRAGMA user_version = 999");
  CHECK_THROWS_WITH_AS(server::apply_migrations(*db),
                       (path.string() + ": schema version 999 is newer than this mlctl (" +
                        std::to_string(server::latest_schema_version()) + ")")
                           .c_str(),
                       Error);
}

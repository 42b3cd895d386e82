#include "server/sqlite.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <doctest/doctest.h>
#include <functional>
#include <optional>
#include <thread>

using mlctl::Error;
using mlctl::ErrorKind;
namespace sql = mlctl::server::sql;

namespace {
ErrorKind kind_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.kind();
  }
  FAIL("no error");
  return ErrorKind::internal;
}
} // namespace

TEST_CASE("a database opens in WAL mode and statements bind, step and read") {
  mlctl::util::TempDir dir;
  auto db = sql::Database::open(dir.path() / "t.db");
  auto mode = db->prepare("PRAGMA journal_mode");
  REQUIRE(mode.step());
  CHECK(mode.text(0) == "wal");
  db->exec("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER, r REAL, n TEXT)");
  db->prepare("INSERT INTO t VALUES (?, ?, ?, ?)").bind_all("a", std::int64_t{1} << 40, 2.5, nullptr).run();
  std::optional<std::int64_t> none;
  db->prepare("INSERT INTO t VALUES (?, ?, ?, ?)").bind_all("b", none, 0.0, "x").run();
  auto q = db->prepare("SELECT k, v, r, n FROM t ORDER BY k");
  REQUIRE(q.step());
  CHECK(q.text(0) == "a");
  CHECK(q.int64(1) == (std::int64_t{1} << 40));
  CHECK(q.real(2) == 2.5);
  CHECK(q.is_null(3));
  CHECK(q.text(3).empty());
  REQUIRE(q.step());
  CHECK(q.is_null(1));
  CHECK_FALSE(q.step());
}

TEST_CASE("sqlite errors become Error kinds naming the file") {
  mlctl::util::TempDir dir;
  const auto path = dir.path() / "t.db";
  auto db = sql::Database::open(path);
  db->exec("CREATE TABLE t (k TEXT PRIMARY KEY)");
  db->prepare("INSERT INTO t VALUES ('a')").run();
  CHECK(kind_of([&] { db->prepare("INSERT INTO t VALUES ('a')").run(); }) == ErrorKind::conflict);
  CHECK(kind_of([&] { (void)db->prepare("SELEC nonsense"); }) == ErrorKind::internal);
  CHECK_THROWS_WITH_AS((void)db->prepare("SELECT * FROM missing"), doctest::Contains(path.string().c_str()), Error);

  mlctl::util::write_file_atomic(dir.path() / "garbage.db", std::string(8192, 'x'));
  CHECK(kind_of([&] { (void)sql::Database::open(dir.path() / "garbage.db"); }) == ErrorKind::corrupt);
  CHECK(kind_of([&] { (void)sql::Database::open(dir.path() / "no" / "such" / "dir.db"); }) == ErrorKind::io);
}

TEST_CASE("a transaction rolls back unless committed") {
  mlctl::util::TempDir dir;
  auto db = sql::Database::open(dir.path() / "t.db");
  db->exec("CREATE TABLE t (v INTEGER)");
  {
    sql::Transaction tx(*db, sql::TransactionMode::immediate);
    db->prepare("INSERT INTO t VALUES (1)").run();
  }
  {
    sql::Transaction tx(*db, sql::TransactionMode::deferred);
    db->prepare("INSERT INTO t VALUES (2)").run();
    tx.commit();
  }
  auto q = db->prepare("SELECT group_concat(v) FROM t");
  REQUIRE(q.step());
  CHECK(q.text(0) == "2");
}

TEST_CASE("a second writer waits for the first (busy timeout), it does not fail") {
  mlctl::util::TempDir dir;
  sql::ConnectionPool pool(dir.path() / "t.db");
  {
    auto db = pool.acquire();
    db->exec("CREATE TABLE t (v INTEGER)");
  }
  auto a = pool.acquire();
  auto b = pool.acquire();
  sql::Transaction tx(*a, sql::TransactionMode::immediate);
  a->prepare("INSERT INTO t VALUES (1)").run();
  std::thread later([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    tx.commit();
  });
  {
    sql::Transaction tb(*b, sql::TransactionMode::immediate); // blocks until `a` commits
    b->prepare("INSERT INTO t VALUES (2)").run();
    tb.commit();
  }
  later.join();
  auto q = b->prepare("SELECT COUNT(*) FROM t");
  REQUIRE(q.step());
  CHECK(q.int64(0) == 2);
}

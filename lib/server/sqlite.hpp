#pragma once
// The one RAII wrapper of sqlite3 (lib/server owns SQLite). A `Database` is one connection;
// a `Statement` a prepared statement; a `Transaction` rolls back unless committed; a
// `ConnectionPool` hands connections to request threads. Errors become `mlctl::Error`:
// busy/locked -> unavailable, constraint -> conflict, corrupt/not a database -> corrupt,
// I/O, full disk or cannot open -> io, anything else -> internal; messages name the file.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace mlctl::server::sql {

class Database;

class Statement {
public:
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Binds parameter `index` (1-based). Text is copied. Returns `*this` for chaining.
  Statement& bind(int index, std::int64_t value);
  Statement& bind(int index, int value) { return bind(index, static_cast<std::int64_t>(value)); }
  Statement& bind(int index, std::uint64_t value) { return bind(index, static_cast<std::int64_t>(value)); }
  Statement& bind(int index, double value);
  Statement& bind(int index, std::string_view value);
  Statement& bind(int index, const std::string& value) { return bind(index, std::string_view(value)); }
  Statement& bind(int index, const char* value) { return bind(index, std::string_view(value)); }
  Statement& bind(int index, std::nullptr_t);
  // Binds `bytes` as a BLOB (copied).
  Statement& bind_blob(int index, std::span<const std::uint8_t> bytes);
  template <class T>
  Statement& bind(int index, const std::optional<T>& value) {
    return value ? bind(index, *value) : bind(index, nullptr);
  }
  // Binds every argument in order, starting at parameter 1.
  template <class... Args>
  Statement& bind_all(const Args&... args) {
    int i = 0;
    (bind(++i, args), ...);
    return *this;
  }

  // Advances; returns true when a row is available, false when the statement is done.
  bool step();
  // Runs the statement to completion (for INSERT/UPDATE/DELETE); returns the rows changed.
  int run();
  // Resets for another run, keeping nothing bound.
  void reset();

  bool is_null(int column) const;
  std::int64_t int64(int column) const;
  double real(int column) const;
  // Returns the column as text ("" for NULL).
  std::string text(int column) const;
  // Returns a view valid until the next `step`/`reset` ("" for NULL).
  std::string_view text_view(int column) const;
  // Returns the BLOB column as bytes, valid until the next `step`/`reset` (empty for NULL).
  std::span<const std::uint8_t> blob(int column) const;

private:
  friend class Database;
  Statement(Database& db, sqlite3_stmt* stmt) : m_db(&db), m_stmt(stmt) {}
  Database* m_db;
  sqlite3_stmt* m_stmt;
};

class Database {
public:
  // Opens (creating when missing) the database at `path` in WAL mode with foreign keys on,
  // synchronous=FULL and a busy timeout. Throws `Error{io}` / `Error{corrupt}` naming `path`.
  static std::unique_ptr<Database> open(const std::filesystem::path& path);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs one or more statements without results. Throws as described above.
  void exec(std::string_view sql);
  // Prepares one statement. Throws as described above.
  Statement prepare(std::string_view sql);
  std::int64_t last_insert_rowid() const;
  const std::filesystem::path& path() const noexcept { return m_path; }

  // Throws the `Error` for SQLite result `code` on this connection, prefixed with `what`.
  [[noreturn]] void fail(int code, std::string_view what) const;

private:
  Database(std::filesystem::path path, sqlite3* db) : m_path(std::move(path)), m_db(db) {}
  friend class Statement;
  std::filesystem::path m_path;
  sqlite3* m_db;
};

enum class TransactionMode { deferred, immediate };

// BEGIN on construction; ROLLBACK on destruction unless `commit()` succeeded.
class Transaction {
public:
  Transaction(Database& db, TransactionMode mode);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

private:
  Database& m_db;
  bool m_open = true;
};

// Connections to one database file, reused across request threads. Opening a pool applies
// nothing; callers migrate through the first lease.
class ConnectionPool {
public:
  // Opens one connection now (so a bad path fails here) and more on demand.
  explicit ConnectionPool(std::filesystem::path path, std::size_t max_idle = 8);

  class Lease {
  public:
    Lease(ConnectionPool& pool, std::unique_ptr<Database> db) : m_pool(&pool), m_db(std::move(db)) {}
    Lease(Lease&&) noexcept = default;
    Lease& operator=(Lease&&) noexcept = default;
    ~Lease();
    Database& operator*() const { return *m_db; }
    Database* operator->() const { return m_db.get(); }

  private:
    ConnectionPool* m_pool;
    std::unique_ptr<Database> m_db;
  };

  // Returns an idle connection or opens one. Throws as `Database::open`.
  Lease acquire();
  // Closes every idle connection (the last close checkpoints the WAL).
  void close_idle();
  const std::filesystem::path& path() const noexcept { return m_path; }

private:
  void release(std::unique_ptr<Database> db);
  std::filesystem::path m_path;
  std::size_t m_max_idle;
  std::mutex m_mutex;
  std::vector<std::unique_ptr<Database>> m_idle;
};

} // namespace mlctl::server::sql

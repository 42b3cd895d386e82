#include "server/sqlite.hpp"

#include "util/error.hpp"

#include <sqlite3.h>
#include <sys/statvfs.h>

namespace mlctl::server::sql {

namespace {

ErrorKind kind_for(int code) {
  switch (code & 0xff) {
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return ErrorKind::unavailable;
  case SQLITE_CONSTRAINT:
    return ErrorKind::conflict;
  case SQLITE_CORRUPT:
  case SQLITE_NOTADB:
    return ErrorKind::corrupt;
  case SQLITE_FULL:
    return ErrorKind::no_space;
  case SQLITE_IOERR:
  case SQLITE_CANTOPEN:
  case SQLITE_READONLY:
  case SQLITE_PERM:
    return ErrorKind::io;
  default:
    return ErrorKind::internal;
  }
}

constexpr int k_busy_timeout_ms = 10000;

// The error of a failed SQLite call on the database at `path`. SQLite reports a full disk as
// SQLITE_FULL only where it sees it: creating the WAL or its index on a full disk is a "disk
// I/O error" (a server started on one said just that). When the disk holding the database
// has less than 1 MiB left, the error says how much and is `no_space`.
Error sqlite_error(const std::filesystem::path& path, int code, std::string message) {
  auto kind = kind_for(code);
  if ((code & 0xff) == SQLITE_IOERR || (code & 0xff) == SQLITE_FULL) {
    struct statvfs fs {};
    const auto dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
    if (::statvfs(dir.c_str(), &fs) == 0) {
      const auto free_bytes = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
      if (free_bytes < (1U << 20)) {
        kind = ErrorKind::no_space;
        message += " (" + std::to_string(free_bytes) + " bytes free on its disk)";
      }
    }
  }
  return Error(kind, message);
}

} // namespace

// --- Database

std::unique_ptr<Database> Database::open(const std::filesystem::path& path) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<Database> db(new Database(path, raw));
  if (rc != SQLITE_OK) {
    if (raw == nullptr) {
      throw Error(ErrorKind::io, path.string() + ": cannot open database: out of memory");
    }
    db->fail(rc, "cannot open database");
  }
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, k_busy_timeout_ms);
  // WAL: readers never block the writer; FULL: a committed version survives power loss too.
  db->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
  return db;
}

Database::~Database() {
  if (m_db != nullptr) {
    sqlite3_close_v2(m_db);
  }
}

void Database::fail(int code, std::string_view what) const {
  std::string message = m_path.string() + ": " + std::string(what) + ": ";
  const char* detail = m_db != nullptr ? sqlite3_errmsg(m_db) : sqlite3_errstr(code);
  message += detail != nullptr ? detail : sqlite3_errstr(code);
  throw sqlite_error(m_path, code, std::move(message));
}

void Database::exec(std::string_view sql) {
  const std::string text(sql);
  char* err = nullptr;
  const int rc = sqlite3_exec(m_db, text.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string detail = err != nullptr ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    throw sqlite_error(m_path, rc, m_path.string() + ": " + detail);
  }
}

Statement Database::prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v2(m_db, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) {
    fail(rc, "prepare");
  }
  return Statement(*this, stmt);
}

std::int64_t Database::last_insert_rowid() const { return sqlite3_last_insert_rowid(m_db); }

// --- Statement

Statement::Statement(Statement&& other) noexcept : m_db(other.m_db), m_stmt(other.m_stmt) {
  other.m_stmt = nullptr;
}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(m_stmt);
    m_db = other.m_db;
    m_stmt = other.m_stmt;
    other.m_stmt = nullptr;
  }
  return *this;
}

Statement::~Statement() { sqlite3_finalize(m_stmt); }

Statement& Statement::bind(int index, std::int64_t value) {
  if (const int rc = sqlite3_bind_int64(m_stmt, index, value); rc != SQLITE_OK) {
    m_db->fail(rc, "bind");
  }
  return *this;
}

Statement& Statement::bind(int index, double value) {
  if (const int rc = sqlite3_bind_double(m_stmt, index, value); rc != SQLITE_OK) {
    m_db->fail(rc, "bind");
  }
  return *this;
}

Statement& Statement::bind(int index, std::string_view value) {
  if (const int rc = sqlite3_bind_text64(m_stmt, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
      rc != SQLITE_OK) {
    m_db->fail(rc, "bind");
  }
  return *this;
}

Statement& Statement::bind_blob(int index, std::span<const std::uint8_t> bytes) {
  // A zero-length blob would bind as NULL with a null pointer; keep it a blob.
  static constexpr std::uint8_t k_empty = 0;
  const void* data = bytes.empty() ? &k_empty : bytes.data();
  if (const int rc = sqlite3_bind_blob64(m_stmt, index, data, bytes.size(), SQLITE_TRANSIENT); rc != SQLITE_OK) {
    m_db->fail(rc, "bind");
  }
  return *this;
}

Statement& Statement::bind(int index, std::nullptr_t) {
  if (const int rc = sqlite3_bind_null(m_stmt, index); rc != SQLITE_OK) {
    m_db->fail(rc, "bind");
  }
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(m_stmt);
  if (rc == SQLITE_ROW) {
    return true;
  }
  if (rc == SQLITE_DONE) {
    return false;
  }
  m_db->fail(rc, "query");
}

int Statement::run() {
  while (step()) {
  }
  return sqlite3_changes(m_db->m_db);
}

void Statement::reset() {
  sqlite3_reset(m_stmt);
  sqlite3_clear_bindings(m_stmt);
}

bool Statement::is_null(int column) const { return sqlite3_column_type(m_stmt, column) == SQLITE_NULL; }
std::int64_t Statement::int64(int column) const { return sqlite3_column_int64(m_stmt, column); }
double Statement::real(int column) const { return sqlite3_column_double(m_stmt, column); }

std::string_view Statement::text_view(int column) const {
  const auto* p = sqlite3_column_text(m_stmt, column);
  if (p == nullptr) {
    return {};
  }
  return {reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(m_stmt, column))};
}

std::span<const std::uint8_t> Statement::blob(int column) const {
  const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(m_stmt, column));
  if (p == nullptr) {
    return {};
  }
  return {p, static_cast<std::size_t>(sqlite3_column_bytes(m_stmt, column))};
}

std::string Statement::text(int column) const { return std::string(text_view(column)); }

// --- Transaction

Transaction::Transaction(Database& db, TransactionMode mode) : m_db(db) {
  m_db.exec(mode == TransactionMode::immediate ? "BEGIN IMMEDIATE" : "BEGIN");
}

Transaction::~Transaction() {
  if (m_open) {
    try {
      m_db.exec("ROLLBACK");
    } catch (...) { // NOLINT(bugprone-empty-catch): a failed rollback leaves SQLite to roll back on close
    }
  }
}

void Transaction::commit() {
  m_db.exec("COMMIT");
  m_open = false;
}

// --- ConnectionPool

ConnectionPool::ConnectionPool(std::filesystem::path path, std::size_t max_idle)
    : m_path(std::move(path)), m_max_idle(max_idle) {
  m_idle.push_back(Database::open(m_path));
}

ConnectionPool::Lease::~Lease() {
  if (m_db) {
    m_pool->release(std::move(m_db));
  }
}

ConnectionPool::Lease ConnectionPool::acquire() {
  {
    const std::lock_guard lock(m_mutex);
    if (!m_idle.empty()) {
      auto db = std::move(m_idle.back());
      m_idle.pop_back();
      return Lease(*this, std::move(db));
    }
  }
  return Lease(*this, Database::open(m_path));
}

void ConnectionPool::release(std::unique_ptr<Database> db) {
  const std::lock_guard lock(m_mutex);
  if (m_idle.size() < m_max_idle) {
    m_idle.push_back(std::move(db));
  }
}

void ConnectionPool::close_idle() {
  std::vector<std::unique_ptr<Database>> closing;
  {
    const std::lock_guard lock(m_mutex);
    closing.swap(m_idle);
  }
}

} // namespace mlctl::server::sql

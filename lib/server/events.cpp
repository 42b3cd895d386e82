#include "server/events.hpp"

#include "api/names.hpp"
#include "api/time.hpp"
#include "util/error.hpp"

#include <charconv>

namespace mlctl::server {

namespace {

std::int64_t parse_limit(std::string_view text) {
  if (text.empty()) {
    return 100;
  }
  std::int64_t v = 0;
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v < 1 || v > 10000) {
    throw Error(ErrorKind::invalid_input, "limit '" + std::string(text.substr(0, 20)) + "': must be 1..10000");
  }
  return v;
}

std::string normalise_time(std::string_view text, std::string_view param) {
  const auto tp = api::parse_time(text);
  if (!tp) {
    throw Error(ErrorKind::invalid_input, std::string(param) + " '" + std::string(text.substr(0, 40)) +
                                              "': expected an event id or an RFC 3339 time "
                                              "(e.g. 2026-11-28T12:00:00Z)");
  }
  return api::format_time(*tp);
}

} // namespace

std::int64_t record_event(sql::Database& db, const api::Event& event, const Actor& actor) {
  nlohmann::json detail = event.detail.is_object() ? event.detail : nlohmann::json::object();
  if (!actor.remote.empty()) {
    detail["remote"] = actor.remote;
  }
  db.prepare("INSERT INTO events (time, actor, action, name, version, alias, detail) VALUES (?,?,?,?,?,?,?)")
      .bind_all(event.time, actor.user, event.action, event.name, event.version, event.alias, detail.dump())
      .run();
  return db.last_insert_rowid();
}

EventQuery parse_event_query(std::string_view since, std::string_view until, std::string_view name,
                             std::string_view limit) {
  EventQuery q;
  if (!since.empty()) {
    if (since.find_first_not_of("0123456789") == std::string_view::npos && since.size() <= 18) {
      std::from_chars(since.data(), since.data() + since.size(), q.after_id);
    } else {
      q.since_time = normalise_time(since, "since");
    }
  }
  if (!until.empty()) {
    q.until_time = normalise_time(until, "until");
  }
  if (!name.empty()) {
    api::validate_name(name, "name");
    q.name = std::string(name);
  }
  q.limit = parse_limit(limit);
  return q;
}

api::EventList list_events(sql::Database& db, const EventQuery& query) {
  std::string sql = "SELECT id, time, actor, action, name, version, alias, detail FROM events WHERE id > ?1";
  if (!query.since_time.empty()) {
    sql += " AND time >= ?2";
  }
  if (!query.until_time.empty()) {
    sql += " AND time < ?3";
  }
  if (!query.name.empty()) {
    sql += " AND name = ?4";
  }
  sql += " ORDER BY id LIMIT ?5";
  auto stmt = db.prepare(sql);
  stmt.bind(1, query.after_id);
  if (!query.since_time.empty()) {
    stmt.bind(2, query.since_time);
  }
  if (!query.until_time.empty()) {
    stmt.bind(3, query.until_time);
  }
  if (!query.name.empty()) {
    stmt.bind(4, query.name);
  }
  stmt.bind(5, query.limit);
  api::EventList out;
  out.next_since = query.after_id;
  while (stmt.step()) {
    api::Event e;
    e.id = stmt.int64(0);
    e.time = stmt.text(1);
    e.actor = stmt.text(2);
    e.action = stmt.text(3);
    e.name = stmt.text(4);
    if (!stmt.is_null(5)) {
      e.version = stmt.int64(5);
    }
    e.alias = stmt.text(6);
    e.detail = nlohmann::json::parse(stmt.text_view(7), nullptr, false);
    if (e.detail.is_discarded()) {
      e.detail = nlohmann::json::object();
    }
    out.next_since = e.id;
    out.events.push_back(std::move(e));
  }
  return out;
}

} // namespace mlctl::server

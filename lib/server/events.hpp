#pragma once
// The audit log: every change to the registry (and, later, to applications) appends one row
// in the same transaction as the change itself, so the log and the state never disagree.

#include "api/types.hpp"
#include "server/sqlite.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace mlctl::server {

using Clock = std::function<std::chrono::system_clock::time_point()>;

// Who asked for a change: the user the client declares (`X-Mlctl-User`, else "anonymous")
// and the peer address.
struct Actor {
  std::string user = "anonymous";
  std::string remote;
};

// Appends `event` (its `id` is ignored; `time`, `actor` and `action` must be set) inside the
// caller's transaction, adding `remote` to its detail; returns the new id.
std::int64_t record_event(sql::Database& db, const api::Event& event, const Actor& actor);

struct EventQuery {
  std::int64_t after_id = 0; // events with a larger id
  std::string since_time;    // RFC 3339 (normalised by `parse_event_query`); inclusive
  std::string until_time;    // exclusive
  std::string name;          // only events about this name
  std::int64_t limit = 100;  // 1..10000
};

// Builds a query from `?since=` (an event id, or an RFC 3339 time), `?until=` (a time),
// `?name=` and `?limit=`. Throws `Error{invalid_input}` naming the parameter.
EventQuery parse_event_query(std::string_view since, std::string_view until, std::string_view name,
                             std::string_view limit);

// Returns the events matching `query`, oldest first, and the id to continue after.
api::EventList list_events(sql::Database& db, const EventQuery& query);

} // namespace mlctl::server

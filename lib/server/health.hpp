#pragma once
// Where health changes go: the `health_events` table of the platform database (so they
// survive restarts and `mlctl describe application` shows them) and, optionally, a webhook
// that receives each one as JSON (POSTed from a background thread, never the request path).

#include "server/metrics.hpp"
#include "server/sqlite.hpp"
#include "util/progress.hpp"

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace mlctl::server {

// Appends `event` to `health_events` (inside the caller's transaction, if any); returns its id.
std::int64_t store_health_event(sql::Database& db, const HealthEvent& event);

// Returns the last `limit` events of `application`, oldest first.
std::vector<HealthEvent> list_health_events(sql::Database& db, std::string_view application,
                                            std::int64_t limit);

// POSTs events as JSON to one URL: a bounded queue (64; more are dropped and logged) drained by
// one thread, each POST with a 5 s timeout and two retries. Delivery failures are logged.
class Webhook {
public:
  // `ca_file`: the CAs to trust for an https URL (empty: the system's). Throws
  // `Error{invalid_input}` "--webhook 'x': expected an http:// or https:// URL".
  Webhook(std::string url, std::string ca_file, util::LogFn log);
  // Delivers what is queued (each POST still bounded by its timeout), then stops.
  ~Webhook();
  Webhook(const Webhook&) = delete;
  Webhook& operator=(const Webhook&) = delete;

  // Queues `event` (the JSON of `to_json` plus "type": "health"); never blocks on the network.
  void post(const HealthEvent& event);
  const std::string& url() const noexcept { return m_url; }
  // Events delivered with a 2xx answer so far.
  std::uint64_t delivered() const;

private:
  void loop();
  std::string m_url;
  std::string m_ca_file; // empty: the system's CAs
  util::LogFn m_log;
  mutable std::mutex m_mutex;
  std::condition_variable m_cv;
  std::deque<std::string> m_queue;
  bool m_stopping = false;
  std::uint64_t m_delivered = 0;
  std::thread m_thread;
};

} // namespace mlctl::server

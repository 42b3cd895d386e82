#include "server/health.hpp"

#include "client/http.hpp"
#include "util/error.hpp"

#include <algorithm>

namespace mlctl::server {

std::int64_t store_health_event(sql::Database& db, const HealthEvent& e) {
  db.prepare("INSERT INTO health_events (time, application, model, version, from_state, to_state, "
             "monitor, value, "
             "threshold) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
      .bind_all(e.time, e.application, e.model, e.version, e.from, e.to, e.monitor, e.value,
                e.threshold)
      .run();
  return db.last_insert_rowid();
}

std::vector<HealthEvent> list_health_events(sql::Database& db, std::string_view application,
                                            std::int64_t limit) {
  auto stmt = db.prepare(
      "SELECT id, time, application, model, version, from_state, to_state, monitor, value, "
      "threshold FROM health_events WHERE application = ? ORDER BY id DESC LIMIT ?");
  stmt.bind_all(application, limit);
  std::vector<HealthEvent> out;
  while (stmt.step()) {
    HealthEvent e;
    e.id = stmt.int64(0);
    e.time = stmt.text(1);
    e.application = stmt.text(2);
    e.model = stmt.text(3);
    e.version = stmt.int64(4);
    e.from = stmt.text(5);
    e.to = stmt.text(6);
    e.monitor = stmt.text(7);
    e.value = stmt.real(8);
    e.threshold = stmt.real(9);
    out.push_back(std::move(e));
  }
  std::reverse(out.begin(), out.end());
  return out;
}

Webhook::Webhook(std::string url, std::string ca_file, util::LogFn log)
    : m_url(std::move(url)), m_ca_file(std::move(ca_file)), m_log(std::move(log)) {
  if (m_url.rfind("http://", 0) != 0 && m_url.rfind("https://", 0) != 0) {
    throw Error(ErrorKind::invalid_input,
                "--webhook '" + m_url + "': expected an http:// or https:// URL");
  }
  m_thread = std::thread([this] { loop(); });
}

Webhook::~Webhook() {
  {
    const std::lock_guard lock(m_mutex);
    m_stopping = true;
  }
  m_cv.notify_all();
  if (m_thread.joinable()) {
    m_thread.join();
  }
}

void Webhook::post(const HealthEvent& event) {
  auto body = to_json(event);
  body["type"] = "health";
  const std::lock_guard lock(m_mutex);
  if (m_queue.size() >= 64) {
    if (m_log) {
      m_log("webhook " + m_url + ": queue full, dropped the health event of " + event.application);
    }
    return;
  }
  m_queue.push_back(body.dump());
  m_cv.notify_one();
}

std::uint64_t Webhook::delivered() const {
  const std::lock_guard lock(m_mutex);
  return m_delivered;
}

void Webhook::loop() {
  for (;;) {
    std::string body;
    {
      std::unique_lock lock(m_mutex);
      m_cv.wait(lock, [&] { return m_stopping || !m_queue.empty(); });
      if (m_queue.empty()) {
        return; // stopping with nothing left
      }
      body = std::move(m_queue.front());
      m_queue.pop_front();
    }
    client::HttpRequest req;
    req.method = "POST";
    req.url = m_url;
    req.headers = {{"Content-Type", "application/json"}, {"User-Agent", "mlctl-webhook"}};
    req.body = std::move(body);
    client::HttpOptions o;
    o.ca_file = m_ca_file;
    o.timeout = std::chrono::milliseconds(5000);
    o.connect_timeout = std::chrono::milliseconds(2000);
    o.retries = 2;
    o.backoff = std::chrono::milliseconds(200);
    try {
      const auto res = client::http_perform(req, o);
      if (res.status >= 200 && res.status < 300) {
        const std::lock_guard lock(m_mutex);
        ++m_delivered;
      } else if (m_log) {
        m_log("webhook " + m_url + ": HTTP " + std::to_string(res.status));
      }
    } catch (const std::exception& e) {
      if (m_log) {
        m_log(std::string("webhook: ") + e.what());
      }
    }
  }
}

} // namespace mlctl::server

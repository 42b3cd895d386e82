#pragma once
// The platform server (`mlctl serve`): one process with a data directory that serves the
// registry API (and, later, applications and the inference gateway) over HTTP(S).
// cpp-httplib stays inside lib/server; this header is all `commands/` sees.

#include "util/progress.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace mlctl::server {

struct ServerOptions {
  std::filesystem::path data_dir;
  std::string host = "127.0.0.1";
  int port = 9090;                    // 0 picks a free port (see `Server::port()`)
  std::filesystem::path token_file;   // when set, every /api/v1 call needs the bearer token
  std::filesystem::path tls_cert;     // with `tls_key`: HTTPS
  std::filesystem::path tls_key;
  int threads = 32;                   // worker threads: requests served at once
  std::uint64_t max_body_bytes = 256ull << 20;
  int max_batch = 256;                // images (rows) per inference request; more: 400
  std::filesystem::path log_file;     // access log (JSON lines); empty = stderr
  bool insecure_listen_anywhere = false;
  std::chrono::seconds shutdown_grace{10}; // in-flight uploads are cut after this on stop
  std::string webhook_url;            // health changes are POSTed here as JSON (empty: none)
  std::string webhook_ca_file;        // CAs to trust for an https webhook (mlctl --cacert)
  bool monitoring = true;             // metrics and health monitors (off: /metrics answers 503)
  std::int64_t store_max_rows = 0;         // request store retention (rows, oldest first; 0: no limit)
  std::uint64_t store_max_bytes = 0;       // request store retention (bytes on disk; 0: no limit)
  std::size_t store_queue_capacity = 4096; // images queued for the request store; more are dropped
};

// Parses `HOST:PORT` (`[::1]:9090` for IPv6; a bare `:9090` means 127.0.0.1). Throws
// `Error{invalid_input}` "--listen 'x': expected HOST:PORT".
void parse_listen(std::string_view text, ServerOptions& options);

// Returns whether `host` is a loopback address or "localhost".
bool is_loopback(std::string_view host);

class Server {
public:
  // Checks the options, loads the token (warnings about its file mode go to `log`), opens
  // storage (migrations, recovery of an interrupted run) and binds the port. Throws
  // `Error{invalid_input}` for bad options (e.g. a non-loopback address without
  // --token-file), `Error{io}`/`Error{corrupt}` for storage, `Error{unavailable}` when the
  // port cannot be bound.
  Server(ServerOptions options, util::LogFn log);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound port and the base URL (http:// or https://).
  int port() const noexcept;
  std::string url() const;

  // Serves until `stop()`; returns once in-flight requests are done (uploads still running
  // `shutdown_grace` after the stop are cut) and storage is closed. Throws `Error{internal}`
  // when the listener fails.
  void run();
  // Stops accepting and makes `run()` return. Thread-safe, idempotent, async-signal-unsafe.
  void stop();
  // Log rotation: opens the access log file (`log_file`) anew. Thread-safe. Throws `Error{io}`
  // when it cannot be opened (the old file stays in use).
  void reopen_logs();

private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

} // namespace mlctl::server

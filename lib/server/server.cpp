#include "server/server.hpp"

#include "api/errors.hpp"
#include "api/routes.hpp"
#include "api/time.hpp"
#include "api/types.hpp"
#include "server/access_log.hpp"
#include "server/auth.hpp"
#include "server/http_connection.hpp"
#include "server/http_internal.hpp"
#include "server/trace.hpp"
#include "util/build_info.hpp"
#include "util/fs.hpp"
#include "util/text.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace mlctl::server {

namespace detail {

namespace {
// One connection is served by one thread from request line to response, so per-request
// facts the logger needs can live in thread-locals set by the pre-routing handler.
thread_local std::chrono::steady_clock::time_point t_start{};
thread_local std::uint64_t t_bytes_in = 0;
thread_local std::optional<util::Compression> t_compressed_body;
} // namespace

void note_bytes_in(std::uint64_t bytes) {
  t_bytes_in = bytes;
}

std::optional<util::Compression> compressed_body() {
  return t_compressed_body;
}

void register_health_routes(httplib::Server& http, Platform& p) {
  http.Get(std::string(api::routes::k_healthz),
           [](const httplib::Request&, httplib::Response& res) {
             send_json(res, 200, api::Health{"ok", std::string(build::version())});
           });
  http.Get(std::string(api::routes::k_readyz),
           [&p](const httplib::Request&, httplib::Response& res) {
             if (p.stopping.load()) {
               send_error(res, 503, "unavailable", "shutting down");
             } else if (!p.ready.load()) {
               send_error(res, 503, "unavailable", "starting");
             } else {
               send_json(res, 200, api::Health{"ready", std::string(build::version())});
             }
           });
}

} // namespace detail

namespace {

using detail::Platform;

// The data directory's lock, `DATA_DIR/serve.lock`, held (flock) while the server lives: the
// kernel releases it when the process ends, a crash included. A second server on the same
// directory removed, as a crash's leftovers, the first one's upload in progress (which then
// failed), and would keep applications of its own; it now stops at start. The file says who
// holds it (pid and address) for the message.
class DataDirLock {
public:
  explicit DataDirLock(const std::filesystem::path& dir) : m_path(dir / "serve.lock") {
    util::create_directories(dir);
    m_fd = ::open(m_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (m_fd < 0) {
      util::throw_errno(m_path, "cannot open");
    }
    if (::flock(m_fd, LOCK_EX | LOCK_NB) != 0) {
      const int error = errno;
      char holder[256] = {};
      const auto n = ::pread(m_fd, holder, sizeof holder - 1, 0);
      ::close(m_fd);
      if (error != EWOULDBLOCK) {
        errno = error;
        util::throw_errno(m_path, "cannot lock");
      }
      const std::string who = n > 0 ? std::string(holder, static_cast<std::size_t>(n)) : "";
      throw Error(ErrorKind::conflict, dir.string() + ": in use by another mlctl serve" +
                                           (who.empty() ? std::string() : " (" + who + ")") +
                                           "; a data directory serves one server at a time");
    }
    describe("pid " + std::to_string(::getpid()));
  }
  // Not unlinked: a server starting meanwhile would lock another file.
  ~DataDirLock() { ::close(m_fd); }
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;

  // Says who holds the lock (best effort: only messages read it).
  void describe(const std::string& who) {
    if (::ftruncate(m_fd, 0) == 0) {
      [[maybe_unused]] const auto n = ::pwrite(m_fd, who.data(), who.size(), 0);
    }
  }

private:
  std::filesystem::path m_path;
  int m_fd = -1;
};

std::string reason_code(int status) {
  switch (status) {
  case 400:
    return "invalid_input";
  case 401:
    return std::string(api::k_code_unauthorized);
  case 403:
    return std::string(api::k_code_forbidden);
  case 404:
    return "not_found";
  case 405:
    return std::string(api::k_code_method_not_allowed);
  case 409:
    return "conflict";
  case 413:
    return std::string(api::k_code_too_large);
  case 501:
    return std::string(api::k_code_unsupported);
  case 503:
    return "unavailable";
  default:
    return status < 500 ? "invalid_input" : "internal";
  }
}

std::string reason_message(const httplib::Request& req, int status) {
  switch (status) {
  case 404:
    return "no route for " + req.method + " " + req.path;
  case 405:
    return req.method + " " + req.path + ": this route takes POST";
  case 413:
    return "request body is larger than the server's limit (mlctl serve --max-body-mb)";
  case 414:
    return "request URI is too long";
  default:
    return "request refused (HTTP " + std::to_string(status) + ")";
  }
}

// Why cpp-httplib could not bind `host:port` (it says only that it could not): the same bind,
// tried again, gives the reason.
std::string why_not_bound(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
      rc != 0) {
    return std::string("cannot resolve the host: ") + ::gai_strerror(rc);
  }
  int err = 0;
  for (const addrinfo* a = found; a != nullptr && err == 0; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      err = errno;
      break;
    }
    const int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes); // as cpp-httplib does
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0) {
      err = errno;
    }
    ::close(fd);
  }
  ::freeaddrinfo(found);
  switch (err) {
  case EADDRINUSE:
    return "the port is in use (which program holds it: ss -ltnp 'sport = :" +
           std::to_string(port) + "'; or --listen " + host + ":0 picks a free port)";
  case EADDRNOTAVAIL:
    return "not an address of this machine";
  case EACCES:
    return "ports below 1024 need privileges (CAP_NET_BIND_SERVICE): choose a port >= 1024";
  case 0:
    return "the address could not be bound (it is free now: try again)";
  default:
    return std::strerror(err);
  }
}

} // namespace

void parse_listen(std::string_view text, ServerOptions& options) {
  const auto bad = [&] {
    return Error(ErrorKind::invalid_input,
                 "--listen '" + std::string(text) + "': expected HOST:PORT, e.g. 127.0.0.1:9090");
  };
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    throw bad();
  }
  auto host = text.substr(0, colon);
  const auto port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    throw bad(); // IPv6 needs brackets
  }
  int port = -1;
  const auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || (ec != std::errc() && ec != std::errc::result_out_of_range) ||
      p != port_text.data() + port_text.size()) {
    throw bad();
  }
  if (ec == std::errc::result_out_of_range || port < 0 || port > 65535) {
    throw Error(ErrorKind::invalid_input, "--listen '" + std::string(text) +
                                              "': the port must be 0..65535 (0 picks a free one)");
  }
  options.host = host.empty() ? "127.0.0.1" : std::string(host);
  options.port = port;
}

bool is_loopback(std::string_view host) {
  if (host == "localhost" || host == "::1") {
    return true;
  }
  in_addr addr{};
  const std::string h(host);
  if (inet_pton(AF_INET, h.c_str(), &addr) == 1) {
    return (ntohl(addr.s_addr) >> 24) == 127;
  }
  return false;
}

// Requests per connection before the server closes it (nginx's keepalive_requests; the client
// opens another): high enough that benchmarks and busy clients keep their connections.
constexpr std::size_t k_keep_alive_max = 1'000'000;
constexpr time_t k_keep_alive_timeout = 5;
// The header cpp-httplib sends on a connection it keeps.
const std::string k_keep_alive_header =
    "timeout=" + std::to_string(k_keep_alive_timeout) + ", max=" + std::to_string(k_keep_alive_max);

// The reason phrases of the statuses the inference routes answer (RFC 9110 §15).
const char* status_text(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 409:
    return "Conflict";
  case 413:
    return "Payload Too Large";
  case 429:
    return "Too Many Requests";
  case 500:
    return "Internal Server Error";
  case 503:
    return "Service Unavailable";
  default:
    return status < 400 ? "OK" : status < 500 ? "Bad Request" : "Internal Server Error";
  }
}

// Gives an error status that has no body yet (cpp-httplib's own 404, 413, 400) our JSON error
// body; false when it has one.
bool give_error_body(const httplib::Request& req, httplib::Response& res) {
  if (request_over_limit()) {
    res.status = 413; // cpp-httplib says 400: its read failed
  }
  if (!res.body.empty() || res.content_length_ != 0) {
    return false;
  }
  // An inference route asked with another method (a browser's GET of a predict URL).
  if (res.status == 404 && req.method != "POST" && detail::match_inference_route(req.path)) {
    res.status = 405;
    res.set_header("Allow", "POST");
  }
  detail::send_error(req, res, res.status, reason_code(res.status),
                     reason_message(req, res.status));
  return true;
}

struct Server::Impl {
  std::unique_ptr<DataDirLock> lock; // first: released after everything else closed
  Platform platform;
  std::unique_ptr<httplib::Server> http;
  std::unique_ptr<AccessLog> access_log;
  std::string token;
  int port = 0;
  int listen_sock = -1; // the last socket cpp-httplib made to listen on (the one bound)
  // The V2 health and server metadata stay open (probes); models and inference need the token.
  std::vector<std::string> protected_prefixes{"/api/", "/v2/models"};

  std::mutex stop_mutex;
  std::condition_variable stop_cv;
  bool stop_requested = false;
  bool listen_done = false;

  // Returns the error to answer when `req` lacks the token, or nothing when it may pass.
  std::optional<std::pair<int, std::string>> authorize(const httplib::Request& req) const {
    if (token.empty()) {
      return std::nullopt;
    }
    const bool is_protected =
        std::any_of(protected_prefixes.begin(), protected_prefixes.end(),
                    [&](const std::string& p) { return req.path.rfind(p, 0) == 0; });
    if (!is_protected) {
      return std::nullopt;
    }
    if (!req.has_header("Authorization")) {
      return std::pair{401, std::string("missing bearer token (Authorization: Bearer <token>)")};
    }
    const std::string header = req.get_header_value("Authorization");
    const auto presented = bearer_token(header);
    if (!presented || !token_matches(*presented, token)) {
      return std::pair{401, std::string("invalid bearer token")};
    }
    return std::nullopt;
  }

  void refuse_unauthorized(const httplib::Request& req, httplib::Response& res,
                           const std::string& message) const {
    res.set_header("WWW-Authenticate", "Bearer realm=\"mlctl\"");
    res.set_header("Connection", "close");
    detail::send_error(req, res, 401, api::k_code_unauthorized, message);
  }

  // Starts a request's clock and trace; answers it (true) with a 401 when it lacks the token,
  // a 415 for a compressed body the route does not take (see `refuse_encoding`).
  bool pre_route(const httplib::Request& req, httplib::Response& res) {
    detail::t_start = std::chrono::steady_clock::now();
    detail::t_bytes_in = req.body.size();
    res.set_header("traceparent",
                   trace_from_header(req.get_header_value("traceparent")).traceparent());
    if (const auto refusal = authorize(req)) {
      refuse_unauthorized(req, res, refusal->second);
      return true;
    }
    return refuse_encoding(req, res);
  }

  // The codings of an inference request's body and answer. cpp-httplib inflates a gzip or
  // deflate body into memory without a limit (1 MB of gzip made a server take 3.2 GB), and the
  // fast path would read it as JSON. The inference routes take it (Triton's clients compress
  // when asked): the header comes off the request, which cpp-httplib owns and has not read the
  // body of yet, and the route inflates the body under the limit (`detail::compressed_body`).
  // Other routes refuse it (415, true) before the body is read; the connection layer drops the
  // body and the connection closes. `Accept-Encoding` comes off an inference request too: the
  // fast path answers uncompressed, and so does cpp-httplib's path then (it compressed with
  // brotli or gzip when asked).
  bool refuse_encoding(const httplib::Request& req, httplib::Response& res) {
    detail::t_compressed_body.reset();
    const auto encoding = req.get_header_value("Content-Encoding");
    const bool compressed = !encoding.empty() && !util::iequals(encoding, "identity");
    if (!compressed && !req.has_header("Accept-Encoding")) {
      return false; // the common case, without matching the route
    }
    const bool inference = req.method == "POST" && detail::match_inference_route(req.path);
    auto& request = const_cast<httplib::Request&>(req);
    if (inference) {
      request.headers.erase("Accept-Encoding");
    }
    if (!compressed) {
      return false;
    }
    const auto coding = util::iequals(encoding, "gzip") || util::iequals(encoding, "x-gzip")
                            ? std::optional(util::Compression::gzip)
                        : util::iequals(encoding, "deflate")
                            ? std::optional(util::Compression::deflate)
                            : std::nullopt;
    if (coding && inference) {
      request.headers.erase("Content-Encoding");
      detail::t_compressed_body = coding;
      return false;
    }
    res.set_header("Connection", "close");
    detail::send_error(request, res, 415, api::k_code_unsupported,
                       "Content-Encoding '" + encoding.substr(0, 40) + "': " +
                           (coding
                                ? "only the inference routes (predict, V2 infer) take a "
                                  "compressed body; send it uncompressed"
                                : "not supported: send the body as gzip, deflate or uncompressed"));
    return true;
  }

  // Writes the request's access log line.
  void log_access(const httplib::Request& req, const httplib::Response& res) {
    // Runs once per request: the record keeps its strings' capacity from one request to the next.
    thread_local AccessRecord r;
    r.time = api::format_time(std::chrono::system_clock::now());
    r.method = req.method;
    r.path = req.path;
    r.status = res.status;
    r.latency_ms = 0;
    if (detail::t_start != std::chrono::steady_clock::time_point{}) {
      r.latency_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                               detail::t_start)
                         .count();
    }
    const auto tp = res.headers.find("traceparent");
    if (tp != res.headers.end() && tp->second.size() >= 35) {
      r.trace_id.assign(tp->second, 3, 32);
    } else {
      r.trace_id.clear();
    }
    r.remote = req.remote_addr;
    r.bytes_in = std::max<std::uint64_t>(detail::t_bytes_in, req.body.size());
    r.bytes_out = res.body.empty() ? res.content_length_ : res.body.size();
    access_log->write(r);
    detail::t_start = {};
    detail::t_bytes_in = 0;
  }

  // The inference routes without cpp-httplib's request parsing (see http_connection.hpp):
  // the same handlers, pre-routing and access log, and the response cpp-httplib would write.
  bool answer_fast(const RawRequest& raw, std::string& out, bool& close) {
    // A target past cpp-httplib's limit goes to it for its 414, as every other route's does.
    if (raw.method != "POST" || raw.target.size() > CPPHTTPLIB_REQUEST_URI_MAX_LENGTH ||
        !platform.ready.load(std::memory_order_relaxed)) {
      return false;
    }
    const auto route = detail::match_inference_route(raw.target);
    if (!route) {
      return false;
    }
    bool ran = false;
    try {
      thread_local httplib::Request req;
      thread_local httplib::Response res;
      req.method = "POST";
      req.path.assign(raw.target);
      req.version = "HTTP/1.1";
      req.headers.clear();
      for (const auto& [name, value] : raw.headers) {
        req.headers.emplace(std::string(name), std::string(value));
      }
      req.body.assign(raw.body);
      req.remote_addr.assign(raw.remote_ip);
      req.remote_port = raw.remote_port;
      res.status = -1;
      res.headers.clear();
      res.body.clear();
      res.content_length_ = 0;
      ran = true;
      if (!pre_route(req, res)) {
        detail::serve_inference(platform, *route, req, res);
      }
      if (res.status == -1) {
        res.status = 200; // as cpp-httplib: a handler that set no status succeeded
      }
      if (res.get_header_value("Connection") == "close") {
        close = true;
      }
      append_response(req, res, close, out);
      log_access(req, res);
      return true;
    } catch (...) {
      // Out of memory: before the request ran, cpp-httplib gets its chance; after, the
      // connection closes without an answer rather than running the request twice.
      close = ran || close;
      return ran;
    }
  }

  // Appends the status line, headers and body cpp-httplib's `write_response` would send.
  void append_response(const httplib::Request& req, httplib::Response& res, bool close,
                       std::string& out) const {
    if (res.status >= 400) {
      give_error_body(req, res);
    }
    out += "HTTP/1.1 ";
    out += std::to_string(res.status);
    out += ' ';
    out += status_text(res.status);
    out += "\r\n";
    if (close) {
      if (res.get_header_value("Connection") != "close") {
        res.set_header("Connection", "close"); // once: a refusal may have set it
      }
    } else if (!res.has_header("Keep-Alive")) {
      res.set_header("Keep-Alive", k_keep_alive_header);
    }
    if (!res.has_header("Content-Type") && !res.body.empty()) {
      res.set_header("Content-Type", "text/plain");
    }
    res.set_header("Content-Length", std::to_string(res.body.size()));
    for (const auto& [name, value] : res.headers) {
      out += name;
      out += ": ";
      out += value;
      out += "\r\n";
    }
    out += "\r\n";
    out += res.body;
  }

  void configure() {
    auto& p = platform;
    http->set_keep_alive_max_count(k_keep_alive_max);
    http->set_keep_alive_timeout(k_keep_alive_timeout);
    http->set_tcp_nodelay(true);
    // cpp-httplib's default also sets SO_REUSEPORT, which would let a second server bind the
    // same port and silently take half the connections.
    http->set_socket_options([this](int sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
      listen_sock = sock;
    });
    http->set_read_timeout(10, 0);
    http->set_write_timeout(10, 0);
    http->set_payload_max_length(static_cast<std::size_t>(p.options.max_body_bytes));

    http->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      return pre_route(req, res) ? httplib::Server::HandlerResponse::Handled
                                 : httplib::Server::HandlerResponse::Unhandled;
    });
    // Large uploads ask first (curl sends `Expect: 100-continue`): refuse before the body.
    http->set_expect_100_continue_handler(
        [this](const httplib::Request& req, httplib::Response& res) {
          if (const auto refusal = authorize(req)) {
            refuse_unauthorized(req, res, refusal->second);
            return 401;
          }
          const auto length = req.get_header_value<std::uint64_t>("Content-Length");
          if (length > platform.options.max_body_bytes) {
            detail::send_error(req, res, 413, api::k_code_too_large,
                               "request body is larger than the server's limit of " +
                                   std::to_string(platform.options.max_body_bytes >> 20) +
                                   " MiB (mlctl serve --max-body-mb)");
            return 413;
          }
          return 100;
        });
    http->set_error_handler(httplib::Server::HandlerWithResponse(
        [](const httplib::Request& req, httplib::Response& res) {
          return give_error_body(req, res) ? httplib::Server::HandlerResponse::Handled
                                           : httplib::Server::HandlerResponse::Unhandled;
        }));
    http->set_exception_handler(
        [this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
          std::string what = "unknown exception";
          try {
            std::rethrow_exception(ep);
          } catch (const std::exception& e) {
            what = e.what();
          } catch (...) { // NOLINT(bugprone-empty-catch): reported below
          }
          if (platform.log) {
            platform.log("internal error in " + req.method + " " + req.path + ": " + what);
          }
          detail::send_error(req, res, 500, "internal", "internal error: " + what);
        });
    http->set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      log_access(req, res);
    });

    // cpp-httplib tries the routes of a method in the order they were added: inference first.
    detail::register_gateway_routes(*http, p);
    detail::register_health_routes(*http, p);
    detail::register_registry_routes(*http, p);
    detail::register_request_routes(*http, p);
    detail::register_application_routes(*http, p);
    detail::register_monitor_routes(*http, p);
    detail::register_rollout_routes(*http, p);
  }
};

Server::Server(ServerOptions options, util::LogFn log) : m_impl(std::make_unique<Impl>()) {
  auto& impl = *m_impl;
  auto& p = impl.platform;
  p.options = std::move(options);
  p.log = log ? std::move(log) : util::LogFn([](const std::string&) {});
  const auto& o = p.options;
  if (o.data_dir.empty()) {
    throw Error(ErrorKind::invalid_input, "--data-dir: is required");
  }
  if (o.threads < 1 || o.threads > 1024) {
    throw Error(ErrorKind::invalid_input,
                "--threads " + std::to_string(o.threads) + ": must be 1..1024");
  }
  if (o.max_body_bytes < (1u << 20)) {
    throw Error(ErrorKind::invalid_input, "--max-body-mb: must be at least 1");
  }
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    throw Error(ErrorKind::invalid_input, "--tls-cert and --tls-key go together");
  }
  if (!o.token_file.empty()) {
    const auto loaded = load_token_file(o.token_file);
    impl.token = loaded.token;
    if (loaded.warning) {
      p.log("warning: " + *loaded.warning);
    }
  }
  if (!is_loopback(o.host)) {
    if (impl.token.empty() && !o.insecure_listen_anywhere) {
      throw Error(ErrorKind::invalid_input,
                  "refusing to listen on " + o.host +
                      " without --token-file: anyone who can reach it could change the registry "
                      "(pass --token-file F, or --insecure-listen-anywhere on a trusted network)");
    }
    if (impl.token.empty()) {
      p.log("warning: listening on " + o.host +
            " without authentication (--insecure-listen-anywhere)");
    }
  }
  // A client that disconnects mid-response must not kill the server with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  // Each connection is a descriptor: a soft limit of 1024 (the usual default) would stop
  // accepting clients past ~1000 on a machine that allows far more. Raise it to the hard limit,
  // as nginx's worker_rlimit_nofile and Go's runtime do (nothing here uses select(2)).
  if (rlimit files{}; ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }
  // Large responses (a 10,000-version listing is ~2 MB) would otherwise be fresh mmap()s
  // whose page faults cost more than building them; keep freed memory for reuse instead, in
  // a few arenas shared by the worker threads (bounded: the peak of one large response each).
  mallopt(M_ARENA_MAX, 2);
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);

  impl.access_log = std::make_unique<AccessLog>(o.log_file, std::chrono::milliseconds(50), p.log);
  p.artifact_limits.max_unpacked_bytes = std::max<std::uint64_t>(64ull << 20, 4 * o.max_body_bytes);

  const auto t0 = std::chrono::steady_clock::now();
  impl.lock = std::make_unique<DataDirLock>(o.data_dir);
  p.registry = std::make_unique<Registry>(o.data_dir);
  const auto recovery = p.registry->recover();
  if (recovery.temporaries_removed + recovery.orphans_removed > 0) {
    p.log("recovered from an interrupted run: removed " +
          std::to_string(recovery.temporaries_removed) + " temporary file(s) and " +
          std::to_string(recovery.orphans_removed) + " unreferenced artifact(s)");
  }
  for (const auto& ref : recovery.missing_artifacts) {
    p.log("warning: model " + ref + ": artifact bytes are missing from " + o.data_dir.string() +
          " (an upload of the same model restores them: mlctl catalog upload DIR)");
  }
  {
    RequestStoreOptions store;
    store.path = o.data_dir / "requests.db";
    store.max_rows = o.store_max_rows;
    store.max_bytes = o.store_max_bytes;
    store.queue_capacity = o.store_queue_capacity;
    p.request_store = std::make_unique<RequestStore>(std::move(store), p.log);
    p.inference_sinks.push_back(p.request_store.get());
  }
  detail::start_monitoring(p);
  const auto storage_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (o.max_batch < 1 || o.max_batch > 1'000'000) {
    throw Error(ErrorKind::invalid_input,
                "--max-batch " + std::to_string(o.max_batch) + ": must be 1..1000000");
  }
  // Applications: their models load before the server answers (ready = every one served).
  p.model_pool = std::make_unique<ModelPool>(*p.registry);
  p.gateway = std::make_unique<Gateway>(p.inference_sinks);
  p.applications = std::make_unique<Applications>(*p.registry, *p.model_pool, *p.gateway);
  p.applications->load_all(p.log);
  {
    RolloutSources sources;
    if (p.metrics) {
      sources.totals = [&p](const std::string& app, const std::string& model, std::int64_t version,
                            const std::string& variant) {
        return p.metrics->totals(app, model, version, variant);
      };
    }
    sources.accuracy = [&p](const std::string& app, const std::string& since) {
      return p.request_store->accuracy(app, since);
    };
    p.rollouts =
        std::make_unique<Rollouts>(*p.registry, *p.applications, std::move(sources), p.log);
  }

  // Inference requests go to `answer_fast` first (see http_connection.hpp).
  auto fast = [&impl](const RawRequest& raw, std::string& out, bool& close) {
    return impl.answer_fast(raw, out, close);
  };
  const auto threads = static_cast<std::size_t>(o.threads);
  if (!o.tls_cert.empty()) {
    for (const auto& f : {o.tls_cert, o.tls_key}) {
      std::error_code ec;
      if (!std::filesystem::is_regular_file(f, ec)) {
        throw Error(ErrorKind::not_found, f.string() + ": no such file");
      }
    }
    impl.http = make_tls_http_server(o.tls_cert.string(), o.tls_key.string(), fast, threads);
    if (!impl.http->is_valid()) {
      throw Error(ErrorKind::invalid_input, o.tls_cert.string() + ", " + o.tls_key.string() +
                                                ": cannot load the TLS certificate and key (PEM)");
    }
  } else {
    impl.http = make_plain_http_server(fast, threads);
  }
  impl.configure();
  if (o.port == 0) {
    impl.port = impl.http->bind_to_any_port(o.host);
  } else {
    impl.port = impl.http->bind_to_port(o.host, o.port) ? o.port : -1;
  }
  if (impl.port <= 0) {
    throw Error(ErrorKind::io, "cannot listen on " + o.host + ":" + std::to_string(o.port) + ": " +
                                   why_not_bound(o.host, o.port));
  }
  // cpp-httplib 0.11 listens with a backlog of 5: a burst of new connections (clients coming
  // back after a restart) overflowed it, and each client whose SYN was dropped waited a second
  // or more for its retransmission (wrk -c500: requests timed out). Listening again raises it,
  // to net.core.somaxconn at most.
  if (impl.listen_sock >= 0 && ::listen(impl.listen_sock, SOMAXCONN) != 0) {
    p.log("warning: cannot raise the listen backlog: " + std::string(std::strerror(errno)));
  }
  impl.lock->describe("pid " + std::to_string(::getpid()) + ", " + url());
  p.log("storage ready in " + std::to_string(static_cast<int>(storage_ms)) + " ms (" +
        o.data_dir.string() + ")");
}

Server::~Server() = default;

int Server::port() const noexcept {
  return m_impl->port;
}

std::string Server::url() const {
  const auto& o = m_impl->platform.options;
  const bool v6 = o.host.find(':') != std::string::npos;
  return std::string(o.tls_cert.empty() ? "http" : "https") + "://" +
         (v6 ? "[" + o.host + "]" : o.host) + ":" + std::to_string(m_impl->port);
}

void Server::run() {
  auto& impl = *m_impl;
  // httplib's stop() only works once its accept loop runs, and must be called once; this
  // thread turns any number of stop() calls, at any time, into exactly that.
  std::thread stopper([&impl] {
    std::unique_lock lock(impl.stop_mutex);
    impl.stop_cv.wait(lock, [&] { return impl.stop_requested || impl.listen_done; });
    if (impl.listen_done) {
      return;
    }
    while (!impl.http->is_running() && !impl.listen_done) {
      impl.stop_cv.wait_for(lock, std::chrono::milliseconds(5));
    }
    if (!impl.listen_done) {
      impl.http->stop();
    }
  });
  impl.platform.ready = true;
  impl.platform.log("listening on " + url());
  const bool ok = impl.http->listen_after_bind();
  {
    const std::lock_guard lock(impl.stop_mutex);
    impl.listen_done = true;
  }
  impl.stop_cv.notify_all();
  stopper.join();
  impl.platform.ready = false;
  impl.platform.rollouts->stop();
  impl.platform.gateway->stop();
  detail::stop_monitoring(impl.platform);
  // Requests answered before the stop are written before `run()` returns.
  impl.platform.request_store->close();
  // The last connection to close checkpoints the WAL into the database file.
  impl.platform.registry->pool().close_idle();
  if (!ok && !impl.platform.stopping.load()) {
    throw Error(ErrorKind::internal, "the HTTP listener stopped unexpectedly");
  }
}

void Server::reopen_logs() {
  m_impl->access_log->reopen();
}

void Server::stop() {
  auto& impl = *m_impl;
  auto& p = impl.platform;
  if (!p.stopping.exchange(true)) {
    const auto deadline = std::chrono::steady_clock::now() + p.options.shutdown_grace;
    p.stop_deadline_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
  }
  {
    const std::lock_guard lock(impl.stop_mutex);
    impl.stop_requested = true;
  }
  impl.stop_cv.notify_all();
}

} // namespace mlctl::server

#include "server/http_connection.hpp"

#include "util/text.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace mlctl::server {

namespace {

using Clock = std::chrono::steady_clock;

// How often a blocked read wakes up to look at its deadline and at the server's state.
constexpr auto k_wake_interval = std::chrono::milliseconds(100);
constexpr std::size_t k_input_buffer = 128 * 1024;
// Responses are gathered up to this size and sent in one call; larger ones stream through.
constexpr std::size_t k_output_buffer = 64 * 1024;
// What a request may read beyond the body limit: its head (cpp-httplib takes 100 fields of up
// to 8 KB) and a chunked body's framing.
constexpr std::uint64_t k_head_allowance = 1 << 20;

// How long a refused body is read and dropped, at most, before the connection closes.
constexpr auto k_drain_time = std::chrono::seconds(1);

// See `request_over_limit`: set by `Connection::read`, on the worker serving the request.
thread_local bool t_over_limit = false;

// Whether the answer cpp-httplib is writing on this worker says `Connection: close`.
thread_local bool t_answer_closes = false;

// True when the comma-separated field value `value` (of Connection) lists `token` (lowercase),
// in any case (RFC 9110, 7.6.1).
bool lists_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const auto comma = std::min(value.find(','), value.size());
    if (util::iequals(util::trim_blanks(value.substr(0, comma)), token)) {
      return true;
    }
    value.remove_prefix(std::min(comma + 1, value.size()));
  }
  return false;
}

void address_of(const sockaddr_storage& addr, std::string& ip, int& port) {
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(addr);
    ::inet_ntop(AF_INET, &a.sin_addr, text, sizeof text);
    port = ntohs(a.sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(addr);
    ::inet_ntop(AF_INET6, &a.sin6_addr, text, sizeof text);
    port = ntohs(a.sin6_port);
  }
  ip = text;
}

Clock::duration timeout_of(time_t sec, time_t usec) {
  return std::chrono::seconds(sec) + std::chrono::microseconds(usec);
}

// Makes a blocking socket non-blocking while it lives (nothing for -1).
class NonBlocking {
public:
  explicit NonBlocking(int sock) : m_sock(sock) {
    if (m_sock >= 0) {
      m_flags = ::fcntl(m_sock, F_GETFL);
      ::fcntl(m_sock, F_SETFL, m_flags | O_NONBLOCK);
    }
  }
  ~NonBlocking() {
    if (m_sock >= 0) {
      ::fcntl(m_sock, F_SETFL, m_flags);
    }
  }
  NonBlocking(const NonBlocking&) = delete;
  NonBlocking& operator=(const NonBlocking&) = delete;

private:
  int m_sock;
  int m_flags = 0;
};

// One connection's stream, kept from one request to the next (bytes a client sent ahead, as
// pipelined requests, stay in the buffer). One worker thread at a time serves it; between
// requests it may wait parked (see `Workers`). Closes the socket when destroyed.
class Connection final : public httplib::Stream {
public:
  // `ssl`, when given, is the connection's TLS session (set to `sock`, not yet accepted); the
  // connection owns it.
  Connection(int sock, SSL* ssl, Clock::duration read_timeout, Clock::duration write_timeout,
             const std::atomic<socket_t>& listener, std::size_t requests)
      : requests_left(requests), m_sock(sock), m_ssl(ssl), m_read_timeout(read_timeout),
        m_listener(listener), m_input(new char[k_input_buffer]) {
    const timeval wake{
        0, static_cast<suseconds_t>(std::chrono::microseconds(k_wake_interval).count())};
    ::setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &wake, sizeof wake);
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(write_timeout).count();
    const timeval send_limit{static_cast<time_t>(us / 1'000'000),
                             static_cast<suseconds_t>(us % 1'000'000)};
    ::setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &send_limit, sizeof send_limit);
    m_output.reserve(4096);
  }
  ~Connection() override {
    if (m_ssl != nullptr) {
      if (!m_failed && !m_shut) {
        ::SSL_shutdown(m_ssl); // the close_notify alert; no wait for the client's
      }
      ::SSL_free(m_ssl);
      ::ERR_clear_error(); // nothing left for the next connection this thread serves
    }
    ::shutdown(m_sock, SHUT_RDWR);
    ::close(m_sock);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  std::size_t requests_left;                     // before the keep-alive limit
  Clock::time_point idle_since = Clock::now();   // when the last answer went out
  std::optional<Clock::time_point> arriving_since; // of a request still arriving
  bool in_epoll = false;                         // registered with the parking lot's epoll

  enum class Wait { request, nothing_yet, closed };

  // Waits until `until` for the next request's first bytes. `closed`: the client closed, an
  // error, or the server is stopping.
  Wait wait_for_request(Clock::time_point until) {
    if (m_begin < m_end) {
      return Wait::request;
    }
    if (fill(until, true) > 0) {
      return Wait::request;
    }
    if (m_timed_out) {
      m_failed = m_timed_out = false;
      return Wait::nothing_yet;
    }
    return Wait::closed;
  }

  int sock() const { return m_sock; }
  bool tls() const { return m_ssl != nullptr; }

  // True when the request at the front of the buffer can be served without waiting on the
  // client: its head (request line and header fields) has arrived and, when its body
  // (Content-Length) fits the buffer, its body too. Larger bodies, chunked ones and those the
  // client sends only after `100 Continue` stream to the worker; a full buffer goes to
  // cpp-httplib, which refuses a head that long.
  bool request_arrived() const {
    if (m_end - m_begin == k_input_buffer) {
      return true;
    }
    const auto head = scan_head();
    if (head.size == 0) {
      return false;
    }
    if (head.streams || head.length.value_or(0) > k_input_buffer) {
      return true; // cpp-httplib answers it, or the body streams to the worker
    }
    const auto whole = head.size + head.length.value_or(0);
    return whole <= m_end - m_begin || whole > k_input_buffer;
  }

  // Before cpp-httplib reads the request at the front of the buffer: limits what it may read to
  // the body limit (see `request_over_limit`), or, for a request with neither Content-Length
  // nor Transfer-Encoding, which has no body (RFC 9112, 6.3), to its head: cpp-httplib 0.11
  // would read the body of such a POST until the client closed (`curl -X POST URL` waited the
  // read timeout, 10 s, and got no answer).
  void limit_next_request(std::uint64_t max_body) {
    const auto head = scan_head();
    hide_form_type(head.size);
    m_bodyless = head.size != 0 && !head.streams && !head.length;
    m_budget = m_bodyless ? head.size : max_body + k_head_allowance;
    m_head_size = head.size;
    m_http10 = head.http10;
    m_http10_keep_alive = head.http10 && head.keep_alive && !head.close;
    m_asks_close = head.close;
    m_request_size.reset();
    if (head.size != 0 && !head.streams && head.length) {
      m_request_size = head.size + *head.length;
    }
    m_read = 0;
    t_over_limit = false;
  }

  // Whether the request `limit_next_request` looked at closes the connection after its answer:
  // when its Connection field lists close (in any case of the letters; cpp-httplib 0.11 looks
  // for "close" alone), and when it is an HTTP/1.0 one that did not ask for keep-alive (in any
  // case: ApacheBench's `ab -k` sends `Keep-Alive`). cpp-httplib 0.11 keeps an HTTP/1.0
  // connection for exactly `Keep-Alive` only, and answers `Keep-Alive: timeout=5, ...` unless
  // told to close.
  bool request_closes() const { return m_asks_close || (m_http10 && !m_http10_keep_alive); }
  bool http10_keeps_alive() const { return m_http10_keep_alive; }

  // After cpp-httplib answered the request: sends the answer; false when the connection must
  // close. A body it left unread (refused before it was read: 401, 415) is read and dropped,
  // so that the next request starts where it should and a client that sends its whole body
  // before it reads (Python's http.client) gets the answer, not a send stalled on a full window
  // (30 s, then a timeout). A chunked body left unread, one past the limit, or one not in
  // within `k_drain_time`, is drained for a moment as the connection closes (`linger`): the
  // answer is not lost to a reset. A stopping server just closes.
  bool finish_request() {
    if (!flush()) {
      return false;
    }
    if (m_listener.load() == INVALID_SOCKET) {
      return !t_over_limit && (!m_request_size || m_read == *m_request_size);
    }
    bool unread = t_over_limit || (!m_request_size && !m_bodyless && m_read <= m_head_size);
    if (!unread && m_request_size && m_read < *m_request_size) {
      auto left = *m_request_size - m_read;
      const auto until = Clock::now() + k_drain_time;
      while (left > 0 && !unread) {
        if (m_begin == m_end && fill(until, false) <= 0) {
          return false; // closed, failed, or too slow
        }
        const auto n = std::min<std::uint64_t>(left, m_end - m_begin);
        m_begin += n;
        left -= n;
        unread = left > 0 && Clock::now() >= until;
      }
    }
    if (unread) {
      linger();
      return false;
    }
    return true;
  }

  // Before the connection closes because the answer said so: what the client is still sending
  // (the rest of a chunked body refused at the limit) is drained for a moment, as the
  // connection closes, so that the close does not reset the connection before the client read
  // the answer (the kernel resets it when unread bytes are left).
  void close_after_answer() {
    if (buffered() || readable_within(std::chrono::milliseconds(0))) {
      linger();
    }
  }

  // Appends what has arrived to the buffer (over TLS: all the session can decrypt now),
  // waiting up to `wait` when nothing has; false when the client closed or the connection
  // failed.
  bool read_more_now(std::chrono::milliseconds wait = std::chrono::milliseconds(0)) {
    if (m_begin > 0) {
      std::memmove(m_input.get(), m_input.get() + m_begin, m_end - m_begin);
      m_end -= m_begin;
      m_begin = 0;
    }
    const NonBlocking during(m_ssl != nullptr ? m_sock : -1); // OpenSSL reads the socket itself
    for (bool waited = wait.count() == 0; m_end < k_input_buffer;) {
      const auto n = m_ssl != nullptr ? receive(m_input.get() + m_end, k_input_buffer - m_end)
                                      : ::recv(m_sock, m_input.get() + m_end,
                                               k_input_buffer - m_end, MSG_DONTWAIT);
      if (n > 0) {
        m_end += static_cast<std::size_t>(n);
        waited = true; // then read on only what is there already
        continue;
      }
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (waited) {
          return true;
        }
        readable_within(wait);
        waited = true;
        continue;
      }
      m_failed = true;
      return false;
    }
    return true;
  }

  // True when the socket has something to read within `wait` (or an error to report).
  bool readable_within(std::chrono::milliseconds wait) const {
    pollfd readable{m_sock, POLLIN, 0};
    return ::poll(&readable, 1, static_cast<int>(wait.count())) > 0;
  }

  bool handshaken() const { return m_handshaken; }
  bool failed() const { return m_failed; }

  enum class Step { done, more, failed };

  // Goes on with the TLS handshake as far as what has arrived allows, without waiting.
  Step handshake_now() {
    const NonBlocking during(m_sock);
    ::ERR_clear_error(); // SSL_get_error reads this thread's queue: empty it first
    const int r = ::SSL_accept(m_ssl);
    if (r == 1) {
      m_handshaken = true;
      return Step::done;
    }
    const int error = ::SSL_get_error(m_ssl, r);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE ||
        (error == SSL_ERROR_SYSCALL && errno == EINTR)) {
      return Step::more;
    }
    m_failed = true;
    return Step::failed;
  }

  // True when request bytes are buffered: here, or decrypted and waiting in the TLS session.
  bool buffered() const {
    return m_begin < m_end || (m_ssl != nullptr && ::SSL_pending(m_ssl) > 0);
  }

  // Offers the request at the front of the buffer to `fast` when it arrived whole; true when
  // `fast` answered it (its response is in the output buffer, its bytes consumed).
  bool try_fast(const FastHandler& fast, bool last, bool& close) {
    const std::string_view data(m_input.get() + m_begin, m_end - m_begin);
    const auto head_end = data.find("\r\n\r\n");
    if (head_end == std::string_view::npos) {
      return false;
    }
    const auto line_end = data.find("\r\n");
    const std::string_view line = data.substr(0, line_end);
    const auto sp1 = line.find(' ');
    const auto sp2 = line.rfind(' ');
    if (sp1 == std::string_view::npos || sp2 <= sp1 || line.substr(sp2 + 1) != "HTTP/1.1") {
      return false;
    }
    RawRequest req;
    req.method = line.substr(0, sp1);
    req.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    req.close = last;
    m_headers.clear();
    std::optional<std::size_t> length;
    for (auto rest = data.substr(line_end + 2, head_end + 2 - (line_end + 2)); !rest.empty();) {
      const auto eol = rest.find("\r\n");
      const auto header = rest.substr(0, eol);
      rest.remove_prefix(eol + 2);
      const auto colon = header.find(':');
      if (colon == std::string_view::npos) {
        return false; // cpp-httplib answers malformed headers
      }
      const auto name = header.substr(0, colon);
      const auto value = util::trim_blanks(header.substr(colon + 1));
      if (util::iequals(name, "content-length")) {
        std::size_t n = 0;
        const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (length || ec != std::errc() || end != value.data() + value.size()) {
          return false;
        }
        length = n;
      } else if (util::iequals(name, "transfer-encoding") || util::iequals(name, "expect")) {
        return false;
      } else if (util::iequals(name, "connection") && lists_token(value, "close")) {
        req.close = true;
      }
      m_headers.emplace_back(name, value);
    }
    req.headers = m_headers;
    if (!length || *length > data.size() - (head_end + 4)) {
      return false; // no body length, or a body still arriving
    }
    req.body = data.substr(head_end + 4, *length);
    lookup(m_remote, ::getpeername);
    req.remote_ip = m_remote.ip;
    req.remote_port = m_remote.port;
    bool closing = req.close;
    if (!fast(req, m_output, closing)) {
      return false;
    }
    m_begin += head_end + 4 + *length;
    close = closing;
    return true;
  }

  // True when the answers gathered so far should go out now.
  bool output_full() const { return m_output.size() >= k_output_buffer; }

  // Sends what the last response left in the buffer.
  bool flush() {
    const bool ok = send_all(m_output.data(), m_output.size());
    m_output.clear();
    return ok;
  }

  bool is_readable() const override { return m_begin < m_end; }
  bool is_writable() const override { return !m_failed; }

  ssize_t read(char* ptr, std::size_t size) override {
    if (m_budget == 0) {
      if (m_bodyless) {
        return 0; // the end of its (empty) body
      }
      t_over_limit = true;
      return -1;
    }
    if (m_begin == m_end) {
      // The client may wait for what we wrote (`100 Continue`) before it sends more.
      if (!flush() || fill(Clock::now() + m_read_timeout, false) <= 0) {
        return -1;
      }
    }
    const auto n = std::min<std::uint64_t>({size, m_end - m_begin, m_budget});
    std::memcpy(ptr, m_input.get() + m_begin, n);
    m_begin += n;
    m_budget -= n;
    m_read += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, std::size_t size) override {
    if (m_failed) {
      return -1;
    }
    if (m_output.size() + size > k_output_buffer) {
      if (!flush()) {
        return -1;
      }
      if (size >= k_output_buffer) {
        return send_all(ptr, size) ? static_cast<ssize_t>(size) : -1;
      }
    }
    m_output.append(ptr, size);
    return static_cast<ssize_t>(size);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    lookup(m_remote, ::getpeername);
    ip = m_remote.ip;
    port = m_remote.port;
  }

  void get_local_ip_and_port(std::string& ip, int& port) const override {
    lookup(m_local, ::getsockname);
    ip = m_local.ip;
    port = m_local.port;
  }

  socket_t socket() const override { return m_sock; }

private:
  // Ends the sending side and reads what the client still sends, dropping it, until it
  // closes, is quiet for 250 ms or `k_drain_time` has passed.
  void linger() {
    if (m_ssl != nullptr) {
      ::ERR_clear_error();
      ::SSL_shutdown(m_ssl);
      m_shut = true;
    }
    ::shutdown(m_sock, SHUT_WR);
    const auto until = Clock::now() + k_drain_time;
    for (char drop[64 * 1024];;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
      if (left.count() <= 0 || !readable_within(std::min(left, std::chrono::milliseconds(250))) ||
          ::recv(m_sock, drop, sizeof drop, MSG_DONTWAIT) <= 0) {
        return;
      }
    }
  }

  // What the head of the request at the front of the buffer says of its body.
  struct Head {
    std::size_t size = 0;                // with its blank line; 0: not all arrived
    std::optional<std::uint64_t> length; // Content-Length
    bool streams = false; // Transfer-Encoding, Expect, or a Content-Length that is no number
    bool http10 = false;  // the request line ends with HTTP/1.0
    bool keep_alive = false; // a Connection field lists keep-alive
    bool close = false;      // a Connection field lists close
  };

  // mlctl's routes read their body as JSON (or tensor bytes) whatever its Content-Type says,
  // as the inference routes' fast path does; but cpp-httplib 0.11 parses a body declared
  // `application/x-www-form-urlencoded`, which `curl -d` declares, as a form, and refuses one
  // over 8 KB with 413 (CPPHTTPLIB_FORM_URL_ENCODED_PAYLOAD_MAX_LENGTH, compiled into Debian's
  // library): `curl -d @batch.json` was refused as "larger than the server's limit". The field
  // of the head at the front of the buffer (`head_size` bytes) is renamed in place, to a name
  // of the same length, so that cpp-httplib does not see it.
  void hide_form_type(std::size_t head_size) {
    char* const head = m_input.get() + m_begin;
    for (std::size_t at = 0; at < head_size;) {
      const std::string_view rest(head + at, head_size - at);
      const auto eol = std::min(rest.find('\n'), rest.size());
      const auto line = rest.substr(0, eol);
      const auto colon = line.find(':');
      if (colon != std::string_view::npos && util::iequals(line.substr(0, colon), "content-type")) {
        auto value = util::trim_blanks(line.substr(colon + 1));
        if (value.ends_with('\r')) {
          value = util::trim_blanks(value.substr(0, value.size() - 1));
        }
        const auto type = util::trim_blanks(value.substr(0, value.find(';')));
        if (util::iequals(type, "application/x-www-form-urlencoded")) {
          std::memcpy(head + at, "X-Mlctl-Form", colon); // "Content-Type": 12 letters
        }
      }
      at += eol + 1;
    }
  }

  Head scan_head() const {
    const std::string_view data(m_input.get() + m_begin, m_end - m_begin);
    Head head;
    auto head_end = data.find("\r\n\r\n");
    std::size_t blank = 4;
    if (head_end == std::string_view::npos) {
      head_end = data.find("\n\n");
      blank = 2;
      if (head_end == std::string_view::npos) {
        return head;
      }
    }
    head.size = head_end + blank;
    auto request_line = data.substr(0, data.find('\n'));
    if (request_line.ends_with('\r')) {
      request_line.remove_suffix(1);
    }
    head.http10 = request_line.ends_with(" HTTP/1.0");
    for (auto rest = data.substr(0, head_end); !rest.empty();) {
      const auto eol = rest.find('\n');
      auto line = rest.substr(0, eol);
      rest.remove_prefix(eol == std::string_view::npos ? rest.size() : eol + 1);
      const auto colon = line.find(':');
      if (colon == std::string_view::npos) {
        continue; // the request line (cpp-httplib judges the rest)
      }
      const auto name = line.substr(0, colon);
      if (util::iequals(name, "expect") || util::iequals(name, "transfer-encoding")) {
        head.streams = true;
      } else if (util::iequals(name, "connection")) {
        auto value = line.substr(colon + 1);
        if (value.ends_with('\r')) {
          value.remove_suffix(1);
        }
        head.keep_alive = head.keep_alive || lists_token(value, "keep-alive");
        head.close = head.close || lists_token(value, "close");
      } else if (util::iequals(name, "content-length")) {
        const auto value = util::trim_blanks(line.substr(colon + 1));
        std::uint64_t length = 0;
        const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
        head.streams = head.streams || ec != std::errc();
        head.length = length;
      }
    }
    return head;
  }

  struct Address {
    bool known = false;
    std::string ip;
    int port = 0;
  };

  void lookup(Address& a, int (*query)(int, sockaddr*, socklen_t*)) const {
    if (a.known) {
      return;
    }
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (query(m_sock, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      address_of(addr, a.ip, a.port);
    }
    a.known = true;
  }

  // Reads what arrives into the (empty) buffer, waiting until `deadline`. Between requests
  // (`idle`) a stopping server ends the wait, and the deadline passing is no failure
  // (`m_timed_out`); inside one, the request may finish.
  ssize_t fill(Clock::time_point deadline, bool idle) {
    m_begin = m_end = 0;
    while (!m_failed) {
      const auto n = receive(m_input.get(), k_input_buffer);
      if (n >= 0) {
        m_end = static_cast<std::size_t>(n);
        return n;
      }
      if (errno == EINTR) {
        continue;
      }
      if ((errno != EAGAIN && errno != EWOULDBLOCK) ||
          (idle && m_listener.load() == INVALID_SOCKET)) {
        m_failed = true;
      } else if (Clock::now() >= deadline) {
        m_failed = true;
        m_timed_out = idle;
      }
    }
    return -1;
  }

  // recv(2), or a read of the TLS session, with recv's results: bytes read, 0 at the end of the
  // stream, or -1 with errno (EAGAIN: the socket's receive timeout passed).
  ssize_t receive(char* data, std::size_t size) {
    if (m_ssl == nullptr) {
      return ::recv(m_sock, data, size, 0);
    }
    ::ERR_clear_error();
    const int n = ::SSL_read(m_ssl, data, static_cast<int>(std::min<std::size_t>(size, INT_MAX)));
    return n > 0 ? n : tls_failure(n);
  }

  // send(2), or a write to the TLS session, with send's results.
  ssize_t transmit(const char* data, std::size_t size) {
    if (m_ssl == nullptr) {
      return ::send(m_sock, data, size, MSG_NOSIGNAL);
    }
    ::ERR_clear_error();
    const int n = ::SSL_write(m_ssl, data, static_cast<int>(std::min<std::size_t>(size, INT_MAX)));
    return n > 0 ? n : tls_failure(n);
  }

  // What a failed TLS read or write means, as recv/send would say it.
  ssize_t tls_failure(int result) {
    switch (::SSL_get_error(m_ssl, result)) {
    case SSL_ERROR_ZERO_RETURN:
      return 0;
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_SYSCALL:
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) {
        return -1;
      }
      break;
    default:
      break;
    }
    errno = ECONNRESET;
    return -1;
  }

  bool send_all(const char* data, std::size_t size) {
    while (size > 0 && !m_failed) {
      const auto n = transmit(data, size);
      if (n >= 0) {
        data += n;
        size -= static_cast<std::size_t>(n);
      } else if (errno != EINTR) {
        m_failed = true; // an error, or the write timeout (SO_SNDTIMEO) passed
      }
    }
    return !m_failed;
  }

  int m_sock;
  SSL* m_ssl;
  Clock::duration m_read_timeout;
  const std::atomic<socket_t>& m_listener;
  std::unique_ptr<char[]> m_input;
  std::size_t m_begin = 0;
  std::size_t m_end = 0;
  std::string m_output;
  bool m_failed = false;
  bool m_timed_out = false;
  bool m_handshaken = false; // TLS
  std::uint64_t m_budget = UINT64_MAX; // bytes the current request may still read
  bool m_bodyless = false;             // the current request has no body
  std::size_t m_head_size = 0;         // of the current request
  bool m_http10 = false;               // the current request is an HTTP/1.0 one
  bool m_http10_keep_alive = false;    // ... that asked to keep the connection
  bool m_asks_close = false;           // the current request lists close in Connection
  std::optional<std::uint64_t> m_request_size; // head and Content-Length body
  std::uint64_t m_read = 0;                    // of the current request, by cpp-httplib
  bool m_shut = false;                         // `linger` sent the TLS close_notify
  mutable Address m_remote;
  mutable Address m_local;
  std::vector<std::pair<std::string_view, std::string_view>> m_headers; // of `try_fast`
};

// How long a worker waits for a connection's next request before it parks the connection.
constexpr auto k_linger = k_wake_interval;

// The worker threads of a listening `ConnectionServer`, and its parking lot. A worker serves one
// connection request after request while they keep coming (under load the next one arrives
// within a millisecond: no hand-over, no extra wake-up). A connection idle for `k_linger`, or
// one just answered while other connections wait for a worker, is parked: an epoll thread
// watches it and queues it again when its next request arrives, and closes it once idle past
// the keep-alive timeout. So idle keep-alive connections hold no thread, and more busy
// connections than workers take turns instead of waiting for one to close.
//
// cpp-httplib's accept loop queues each new connection here (`enqueue`) and calls `shutdown`
// when it stops: parked connections close at once, the requests being served finish.
class Workers final : public httplib::TaskQueue {
public:
  using Serve = std::function<void(std::unique_ptr<Connection>)>;
  Workers(Serve serve, std::size_t threads, Clock::duration keep_alive,
          Clock::duration arrival_timeout);
  ~Workers() override { shutdown(); }
  Workers(const Workers&) = delete;
  Workers& operator=(const Workers&) = delete;

  void enqueue(std::function<void()> fn) override;
  void shutdown() override;

  // True when work is queued that no worker has taken yet.
  bool others_waiting() const { return m_queued.load(std::memory_order_relaxed) > 0; }
  // Watches `conn` until its next request arrives (or closes it: stopping, expired).
  void park(std::unique_ptr<Connection> conn);

private:
  void run_worker();
  void run_parking();
  void resume(Connection* conn);

  Serve m_serve;
  Clock::duration m_keep_alive;
  Clock::duration m_arrival_timeout; // from a request's first bytes to its end (parked)
  std::vector<std::thread> m_threads;
  std::mutex m_mutex; // guards m_jobs, m_stopping
  std::condition_variable m_cv;
  std::deque<std::function<void()>> m_jobs;
  std::atomic<std::size_t> m_queued{0};
  bool m_stopping = false;
  bool m_shut_down = false;

  int m_epoll = -1;
  int m_wake = -1; // an eventfd, written by `shutdown`
  std::thread m_parking;
  std::mutex m_parked_mutex; // guards m_parked, m_parking_closed
  std::unordered_map<Connection*, std::unique_ptr<Connection>> m_parked;
  bool m_parking_closed = false;
};

Workers::Workers(Serve serve, std::size_t threads, Clock::duration keep_alive,
                 Clock::duration arrival_timeout)
    : m_serve(std::move(serve)), m_keep_alive(keep_alive), m_arrival_timeout(arrival_timeout) {
  m_epoll = ::epoll_create1(EPOLL_CLOEXEC);
  m_wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr; // the wake-up
  if (m_epoll < 0 || m_wake < 0 || ::epoll_ctl(m_epoll, EPOLL_CTL_ADD, m_wake, &ev) != 0) {
    const int error = errno;
    ::close(m_epoll);
    ::close(m_wake);
    throw std::system_error(error, std::generic_category(), "cannot create an epoll instance");
  }
  m_parking = std::thread([this] { run_parking(); });
  for (std::size_t i = 0; i < std::max<std::size_t>(threads, 1); ++i) {
    m_threads.emplace_back([this] { run_worker(); });
  }
}

void Workers::enqueue(std::function<void()> fn) {
  {
    const std::lock_guard lock(m_mutex);
    m_jobs.push_back(std::move(fn));
    ++m_queued;
  }
  m_cv.notify_one();
}

void Workers::run_worker() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(m_mutex);
      m_cv.wait(lock, [&] { return m_stopping || !m_jobs.empty(); });
      if (m_jobs.empty()) {
        return; // stopping, and every queued job ran
      }
      job = std::move(m_jobs.front());
      m_jobs.pop_front();
      --m_queued;
    }
    job();
  }
}

void Workers::park(std::unique_ptr<Connection> conn) {
  // Armed and filed under one lock: the parking thread neither takes the connection (an event)
  // nor expires it before both are done. `conn`, a parameter, closes after the unlock.
  const std::lock_guard lock(m_parked_mutex);
  if (m_parking_closed) {
    return; // stopping: closes the connection
  }
  // Armed once: the event hands the connection to one worker, which parks it again after.
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
  ev.data.ptr = conn.get();
  if (::epoll_ctl(m_epoll, conn->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, conn->sock(), &ev) !=
      0) {
    return;
  }
  conn->in_epoll = true;
  auto* c = conn.get();
  m_parked.emplace(c, std::move(conn));
}

// Queues a parked connection whose next request (or its end) arrived.
void Workers::resume(Connection* conn) {
  std::unique_ptr<Connection> owned;
  {
    const std::lock_guard lock(m_parked_mutex);
    const auto it = m_parked.find(conn);
    if (it == m_parked.end()) {
      return;
    }
    owned = std::move(it->second);
    m_parked.erase(it);
  }
  // A connection whose request is still arriving goes on with it here, as far as what has
  // arrived allows, rather than on a worker: clients that send slowly hold no thread (with 40 of
  // them sending a byte a second, a 32-worker server answered no one else). A TLS handshake
  // goes on on a worker (its signature would hold up this thread).
  if (owned->arriving_since && (!owned->tls() || owned->handshaken())) {
    if (!owned->read_more_now()) {
      return; // closed
    }
    if (!owned->request_arrived()) {
      park(std::move(owned));
      return;
    }
  }
  enqueue([this, c = owned.release()] { m_serve(std::unique_ptr<Connection>(c)); });
}

void Workers::run_parking() {
  constexpr int k_events = 64;
  epoll_event events[k_events];
  auto last_sweep = Clock::now();
  for (;;) {
    const int n = ::epoll_wait(m_epoll, events, k_events, 250);
    for (int i = 0; i < n; ++i) {
      if (events[i].data.ptr == nullptr) {
        return; // shutdown
      }
      resume(static_cast<Connection*>(events[i].data.ptr));
    }
    // Connections idle past the keep-alive timeout, or whose request has been arriving for
    // longer than the read timeout, close (within a quarter second of it).
    if (const auto now = Clock::now(); now - last_sweep >= std::chrono::milliseconds(250)) {
      last_sweep = now;
      std::vector<std::unique_ptr<Connection>> expired;
      const std::lock_guard lock(m_parked_mutex);
      for (auto it = m_parked.begin(); it != m_parked.end();) {
        const auto& c = *it->second;
        if (c.arriving_since ? now - *c.arriving_since >= m_arrival_timeout
                             : now - c.idle_since >= m_keep_alive) {
          expired.push_back(std::move(it->second));
          it = m_parked.erase(it);
        } else {
          ++it;
        }
      }
    }
  }
}

void Workers::shutdown() {
  if (m_shut_down) {
    return;
  }
  m_shut_down = true;
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto written = ::write(m_wake, &one, sizeof one);
  m_parking.join();
  {
    std::unordered_map<Connection*, std::unique_ptr<Connection>> parked;
    {
      const std::lock_guard lock(m_parked_mutex);
      m_parking_closed = true;
      parked.swap(m_parked);
    }
  } // closes them
  {
    const std::lock_guard lock(m_mutex);
    m_stopping = true;
  }
  m_cv.notify_all();
  for (auto& t : m_threads) {
    t.join();
  }
  ::close(m_wake);
  ::close(m_epoll);
}

// cpp-httplib's server (`httplib::Server`, or `httplib::SSLServer` for HTTPS) over our
// connections and workers.
template <class Base>
class ConnectionServer final : public Base {
public:
  template <class... Args>
  ConnectionServer(FastHandler fast, std::size_t threads, Args&&... args)
      : Base(std::forward<Args>(args)...), m_fast(std::move(fast)) {
    // Runs once the answer's headers are set, before they are written (cpp-httplib 0.11).
    this->set_post_routing_handler([](const httplib::Request& req, httplib::Response& res) {
      if (req.version == "HTTP/1.0" && res.get_header_value("Connection") != "close") {
        res.set_header("Connection", "keep-alive"); // an HTTP/1.0 client expects it said
      }
      t_answer_closes = res.get_header_value("Connection") == "close";
    });
    this->new_task_queue = [this, threads] {
      auto* workers =
          new Workers([this](std::unique_ptr<Connection> conn) { serve(std::move(conn)); }, threads,
                      std::chrono::seconds(this->keep_alive_timeout_sec_),
                      timeout_of(this->read_timeout_sec_, this->read_timeout_usec_));
      m_workers = workers;
      return workers;
    };
  }

private:
  // Parks `conn`, whose request (or TLS handshake) is still arriving: the read timeout runs
  // from its first bytes (see `Workers::run_parking`).
  void park_arriving(std::unique_ptr<Connection> conn) {
    if (!conn->arriving_since) {
      conn->arriving_since = Clock::now();
    }
    m_workers->park(std::move(conn));
  }

  // Serves `conn` until it closes, goes idle or should make way (then it is parked).
  void serve(std::unique_ptr<Connection> conn) {
    auto& c = *conn;
    // The TLS handshake goes on here while the client keeps up (10 ms at most for each of its
    // flights: with 1 ms, 16 clients connecting for each request lost a fifth of their rate to
    // the extra hand-overs), then waits parked: silent clients hold no worker (12 of them made
    // a 4-worker server's other handshakes time out). Closed after the read timeout from the
    // connection.
    for (int flight = 0; c.tls() && !c.handshaken(); ++flight) {
      switch (c.handshake_now()) {
      case Connection::Step::failed:
        return;
      case Connection::Step::more:
        if (flight == 3 || !c.readable_within(std::chrono::milliseconds(10))) {
          park_arriving(std::move(conn));
          return;
        }
        break;
      case Connection::Step::done:
        c.arriving_since.reset(); // then idle until its first request
        break;
      }
    }
    const auto keep_alive = std::chrono::seconds(this->keep_alive_timeout_sec_);
    // A turn is at least one request: a connection queued because its request arrived is
    // served, not parked again.
    for (bool served = false; c.requests_left > 0 && this->svr_sock_ != INVALID_SOCKET;
         served = true) {
      if (!c.is_readable()) {
        if (served && !c.buffered() && m_workers->others_waiting()) {
          m_workers->park(std::move(conn));
          return;
        }
        // A connection's first request in this turn (a new connection, or a parked one woken)
        // is waited for a millisecond at most (a client's request follows its connection within
        // microseconds), then parked: 600 silent new connections, each holding a worker for
        // `k_linger`, delayed a normal request by 1.9 s.
        if (!served) {
          if (!c.read_more_now(std::chrono::milliseconds(1))) {
            return; // closed
          }
          if (!c.is_readable()) {
            m_workers->park(std::move(conn));
            return;
          }
        }
        const auto expires = c.idle_since + keep_alive;
        const auto wait = c.wait_for_request(std::min(Clock::now() + k_linger, expires));
        if (wait == Connection::Wait::closed) {
          return;
        }
        if (wait == Connection::Wait::nothing_yet) {
          if (Clock::now() < expires) {
            m_workers->park(std::move(conn));
          }
          return;
        }
      }
      const bool last = c.requests_left == 1;
      bool closed = false;
      bool ok = false;
      if (m_fast && c.try_fast(m_fast, last, closed)) { // only a request that arrived whole
        --c.requests_left;
        c.arriving_since.reset();
        // Answers to pipelined requests go out together, after the last one that arrived.
        const bool more = c.is_readable() && !closed && !c.output_full();
        ok = more || c.flush();
      } else {
        // The rest of a request still arriving is awaited parked (see `Workers::resume`), for
        // up to the read timeout from its first bytes, after what has arrived meanwhile (over
        // TLS, with what the session holds decrypted: no event would announce that).
        if (!c.request_arrived() && (!c.read_more_now() || !c.request_arrived())) {
          if (c.failed()) {
            return; // closed
          }
          park_arriving(std::move(conn));
          return;
        }
        --c.requests_left;
        c.arriving_since.reset();
        c.limit_next_request(this->payload_max_length_);
        // Answered with `Connection: close`, and closed, when the request asks it (see
        // `request_closes`). The connection closes when the answer says so, and only then.
        t_answer_closes = false;
        ok = this->process_request(c, last || c.request_closes(), closed, nullptr);
        closed = t_answer_closes || (closed && !c.http10_keeps_alive());
        ok = c.finish_request() && ok;
        if (ok && closed) {
          c.close_after_answer();
        }
      }
      if (!ok || closed) {
        return;
      }
      c.idle_since = Clock::now();
    }
  }

  // Called by the accept loop's task, on a worker (a virtual of httplib::Server).
  bool process_and_close_socket(socket_t sock) override {
    const auto read_timeout = timeout_of(this->read_timeout_sec_, this->read_timeout_usec_);
    SSL* ssl = nullptr;
    if constexpr (std::is_same_v<Base, httplib::SSLServer>) {
      ssl = ::SSL_new(this->ssl_context());
      if (ssl == nullptr || ::SSL_set_fd(ssl, sock) != 1) {
        ::SSL_free(ssl);
        ::close(sock);
        return false;
      }
    }
    auto conn = std::make_unique<Connection>(
        sock, ssl, read_timeout, timeout_of(this->write_timeout_sec_, this->write_timeout_usec_),
        this->svr_sock_, this->keep_alive_max_count_);
    serve(std::move(conn));
    return true;
  }

  FastHandler m_fast;
  Workers* m_workers = nullptr; // owned by cpp-httplib's accept loop, alive while we serve
};

} // namespace

bool request_over_limit() {
  return t_over_limit;
}

std::unique_ptr<httplib::Server> make_plain_http_server(FastHandler fast, std::size_t threads) {
  return std::make_unique<ConnectionServer<httplib::Server>>(std::move(fast), threads);
}

std::unique_ptr<httplib::Server> make_tls_http_server(const std::string& cert,
                                                      const std::string& key, FastHandler fast,
                                                      std::size_t threads) {
  return std::make_unique<ConnectionServer<httplib::SSLServer>>(std::move(fast), threads,
                                                                cert.c_str(), key.c_str());
}

} // namespace mlctl::server

#include "server/http_connection.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
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

// True when `a` equals `lower` (lowercase) but for the case of its letters.
bool iequals(std::string_view a, std::string_view lower) {
  return a.size() == lower.size() &&
         std::equal(a.begin(), a.end(), lower.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == y;
         });
}

Clock::duration timeout_of(time_t sec, time_t usec) {
  return std::chrono::seconds(sec) + std::chrono::microseconds(usec);
}

// One connection's stream, kept from one request to the next (bytes a client sent ahead, as
// pipelined requests, stay in the buffer). One worker thread serves a connection.
class Connection final : public httplib::Stream {
public:
  Connection(int sock, Clock::duration read_timeout, Clock::duration write_timeout,
             const std::atomic<socket_t>& listener)
      : m_sock(sock), m_read_timeout(read_timeout), m_listener(listener),
        m_input(new char[k_input_buffer]) {
    const timeval wake{
        0, static_cast<suseconds_t>(std::chrono::microseconds(k_wake_interval).count())};
    ::setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &wake, sizeof wake);
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(write_timeout).count();
    const timeval send_limit{static_cast<time_t>(us / 1'000'000),
                             static_cast<suseconds_t>(us % 1'000'000)};
    ::setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &send_limit, sizeof send_limit);
    m_output.reserve(4096);
  }

  // Waits up to `idle` for the next request's first bytes. False: the client closed, the
  // connection stayed idle, or the server is stopping.
  bool wait_for_request(Clock::duration idle) {
    return m_begin < m_end || fill(Clock::now() + idle, true) > 0;
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
      auto value = header.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
        value.remove_prefix(1);
      }
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
        value.remove_suffix(1);
      }
      if (iequals(name, "content-length")) {
        std::size_t n = 0;
        const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (length || ec != std::errc() || end != value.data() + value.size()) {
          return false;
        }
        length = n;
      } else if (iequals(name, "transfer-encoding") || iequals(name, "expect")) {
        return false;
      } else if (iequals(name, "connection") && value == "close") {
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
    if (m_begin == m_end) {
      // The client may wait for what we wrote (`100 Continue`) before it sends more.
      if (!flush() || fill(Clock::now() + m_read_timeout, false) <= 0) {
        return -1;
      }
    }
    const auto n = std::min(size, m_end - m_begin);
    std::memcpy(ptr, m_input.get() + m_begin, n);
    m_begin += n;
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
  // (`idle`) a stopping server ends the wait; inside one, the request may finish.
  ssize_t fill(Clock::time_point deadline, bool idle) {
    m_begin = m_end = 0;
    while (!m_failed) {
      const auto n = ::recv(m_sock, m_input.get(), k_input_buffer, 0);
      if (n >= 0) {
        m_end = static_cast<std::size_t>(n);
        return n;
      }
      if (errno != EINTR &&
          ((errno != EAGAIN && errno != EWOULDBLOCK) || Clock::now() >= deadline ||
           (idle && m_listener.load() == INVALID_SOCKET))) {
        m_failed = true;
      }
    }
    return -1;
  }

  bool send_all(const char* data, std::size_t size) {
    while (size > 0 && !m_failed) {
      const auto n = ::send(m_sock, data, size, MSG_NOSIGNAL);
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
  Clock::duration m_read_timeout;
  const std::atomic<socket_t>& m_listener;
  std::unique_ptr<char[]> m_input;
  std::size_t m_begin = 0;
  std::size_t m_end = 0;
  std::string m_output;
  bool m_failed = false;
  mutable Address m_remote;
  mutable Address m_local;
  std::vector<std::pair<std::string_view, std::string_view>> m_headers; // of `try_fast`
};

class PlainServer final : public httplib::Server {
public:
  explicit PlainServer(FastHandler fast) : m_fast(std::move(fast)) {}

private:
  // Replaces cpp-httplib's per-connection loop (a virtual of httplib::Server).
  bool process_and_close_socket(socket_t sock) override {
    bool ret = false;
    {
      Connection conn(sock, timeout_of(read_timeout_sec_, read_timeout_usec_),
                      timeout_of(write_timeout_sec_, write_timeout_usec_), svr_sock_);
      const auto idle = std::chrono::seconds(keep_alive_timeout_sec_);
      for (auto left = keep_alive_max_count_; left > 0 && svr_sock_ != INVALID_SOCKET; --left) {
        if (!conn.wait_for_request(idle)) {
          break;
        }
        bool connection_closed = false;
        if (m_fast && conn.try_fast(m_fast, left == 1, connection_closed)) {
          // Answers to pipelined requests go out together, after the last one that arrived.
          const bool more = conn.is_readable() && !connection_closed && !conn.output_full();
          ret = more || conn.flush();
        } else {
          ret = process_request(conn, left == 1, connection_closed, nullptr);
          ret = conn.flush() && ret;
        }
        if (!ret || connection_closed) {
          break;
        }
      }
    }
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    return ret;
  }

  FastHandler m_fast;
};

} // namespace

std::unique_ptr<httplib::Server> make_plain_http_server(FastHandler fast) {
  return std::make_unique<PlainServer>(std::move(fast));
}

} // namespace mlctl::server

// mlctl_bench_http_floor: the least an HTTP/1.1 server can do per request, plus a chosen amount
// of CPU work: what share of nginx a server that spends W µs per request beyond HTTP can reach
// on this machine (tests/bench/bench_floor.py runs it next to nginx under wrk).
//
//   mlctl_bench_http_floor --port P [--mode threads|events] [--work-us W] [--event-threads N]
//
// Answers every request (keep-alive, pipelining, a Content-Length body) with the same small JSON
// answer after W µs of arithmetic (calibrated at start). `threads`: a thread per connection,
// blocking in recv(2), as mlctl's workers serve busy connections; `events`: N threads, each
// with an epoll set of its own (edge-triggered), as nginx's workers. Runs until killed.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

int usage() {
  std::fprintf(stderr, "usage: mlctl_bench_http_floor --port P [--mode threads|events] "
                       "[--work-us W] [--event-threads N]\n");
  return 2;
}

volatile double g_sink = 0; // keeps the work from being optimized away

// A dependent chain of multiply-adds: `iterations` of them take a fixed time on one core.
void work(std::int64_t iterations) {
  double a = 1.0;
  for (std::int64_t i = 0; i < iterations; ++i) {
    a = a * 1.0000001 + 1e-9;
  }
  g_sink = a;
}

// The iterations of `work` that take `us` µs here (the fastest of 5 timings of 20 ms).
std::int64_t calibrate(double us) {
  constexpr std::int64_t k_probe = 1'000'000;
  double best = 1e300;
  for (int round = 0; round < 5; ++round) {
    const auto start = std::chrono::steady_clock::now();
    work(k_probe);
    best = std::min(
        best, std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                  .count());
  }
  return static_cast<std::int64_t>(us * static_cast<double>(k_probe) / best);
}

// The answer: as large as mlctl's simple-form answer and bench_gateway's nginx body.
const std::string& answer() {
  static const std::string text = [] {
    std::string body = R"({"predictions": [{"class": 7, "probabilities": [)";
    for (int i = 0; i < 10; ++i) {
      body += i == 0 ? "0.1" : ", 0.1";
    }
    body += R"(]}], "model": "bench:1", "trace_id": ")" + std::string(32, '0') + "\"}";
    return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\nKeep-Alive: timeout=5\r\n\r\n" + body;
  }();
  return text;
}

// The Content-Length of the head `head` (0 when it has none).
std::size_t content_length(std::string_view head) {
  static constexpr std::string_view k_name = "\r\ncontent-length:";
  for (std::size_t i = 0; i + k_name.size() <= head.size(); ++i) {
    std::size_t j = 0;
    while (j < k_name.size() &&
           (head[i + j] | (std::isalpha(static_cast<unsigned char>(head[i + j])) ? 0x20 : 0)) ==
               k_name[j]) {
      ++j;
    }
    if (j == k_name.size()) {
      return std::strtoull(head.data() + i + j, nullptr, 10);
    }
  }
  return 0;
}

// A connection's unread input, and the answers to whole requests in it.
struct Connection {
  int sock = -1;
  std::string input;
  std::string output;

  // Takes every whole request off `input`, appending its answer to `output`.
  void answer_requests(std::int64_t iterations) {
    std::size_t used = 0;
    for (;;) {
      const std::string_view rest(input.data() + used, input.size() - used);
      const auto end = rest.find("\r\n\r\n");
      if (end == std::string_view::npos) {
        break;
      }
      const auto size = end + 4 + content_length(rest.substr(0, end + 2));
      if (rest.size() < size) {
        break;
      }
      used += size;
      work(iterations);
      output += answer();
    }
    input.erase(0, used);
  }
};

bool send_all(int sock, const std::string& data) {
  for (std::size_t sent = 0; sent < data.size();) {
    const auto n = ::send(sock, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      return false;
    }
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

void serve_thread(int sock, std::int64_t iterations) {
  Connection conn{sock, {}, {}};
  std::vector<char> buffer(64 * 1024);
  for (;;) {
    const auto n = ::recv(sock, buffer.data(), buffer.size(), 0);
    if (n <= 0) {
      break;
    }
    conn.input.append(buffer.data(), static_cast<std::size_t>(n));
    conn.answer_requests(iterations);
    if (!conn.output.empty() && !send_all(sock, conn.output)) {
      break;
    }
    conn.output.clear();
  }
  ::close(sock);
}

// One event thread: reads every ready connection until the socket is drained, answers, and
// goes back to its epoll set. A small answer goes out whole: one the socket cannot take at once
// (a slow reader) is finished with blocking sends, which is enough for a benchmark.
void run_events(int epoll, std::int64_t iterations) {
  std::vector<char> buffer(64 * 1024);
  epoll_event events[64];
  for (;;) {
    const int n = ::epoll_wait(epoll, events, 64, -1);
    for (int i = 0; i < n; ++i) {
      auto* conn = static_cast<Connection*>(events[i].data.ptr);
      bool open = true;
      for (;;) {
        const auto got = ::recv(conn->sock, buffer.data(), buffer.size(), MSG_DONTWAIT);
        if (got > 0) {
          conn->input.append(buffer.data(), static_cast<std::size_t>(got));
          if (static_cast<std::size_t>(got) < buffer.size()) {
            break; // drained: edge-triggered epoll reports the next bytes
          }
          continue;
        }
        open = got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
        break;
      }
      conn->answer_requests(iterations);
      if (open && !conn->output.empty()) {
        open = send_all(conn->sock, conn->output);
        conn->output.clear();
      }
      if (!open) {
        ::close(conn->sock);
        delete conn;
      }
    }
  }
}

} // namespace

int main(int argc, char** argv) {
  int port = 0;
  std::string mode = "threads";
  double work_us = 0;
  int event_threads = 2;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (i + 1 >= argc) {
      return usage();
    }
    if (arg == "--port") {
      port = std::atoi(argv[++i]);
    } else if (arg == "--mode") {
      mode = argv[++i];
    } else if (arg == "--work-us") {
      work_us = std::atof(argv[++i]);
    } else if (arg == "--event-threads") {
      event_threads = std::atoi(argv[++i]);
    } else {
      return usage();
    }
  }
  if (port <= 0 || port > 65535 || (mode != "threads" && mode != "events") || work_us < 0 ||
      event_threads < 1) {
    return usage();
  }
  const auto iterations = work_us > 0 ? calibrate(work_us) : 0;

  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int yes = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener, 512) != 0) {
    std::fprintf(stderr, "mlctl_bench_http_floor: cannot listen on 127.0.0.1:%d: %s\n", port,
                 std::strerror(errno));
    return 1;
  }

  std::vector<int> epolls;
  if (mode == "events") {
    for (int t = 0; t < event_threads; ++t) {
      epolls.push_back(::epoll_create1(EPOLL_CLOEXEC));
      std::thread(run_events, epolls.back(), iterations).detach();
    }
  }
  for (std::size_t accepted = 0;; ++accepted) {
    const int sock = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (sock < 0) {
      continue;
    }
    ::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    if (epolls.empty()) {
      std::thread(serve_thread, sock, iterations).detach();
      continue;
    }
    auto conn = std::make_unique<Connection>();
    conn->sock = sock;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET | EPOLLRDHUP;
    ev.data.ptr = conn.get();
    if (::epoll_ctl(epolls[accepted % epolls.size()], EPOLL_CTL_ADD, sock, &ev) == 0) {
      conn.release(); // owned by its event thread from now on
    } else {
      ::close(sock);
    }
  }
}

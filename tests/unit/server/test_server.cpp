// The whole platform in-process: a real `Server` on 127.0.0.1 (port 0) and the real REST client.
#include "artifact/tar.hpp"
#include "client/api_client.hpp"
#include "model/card.hpp"
#include "onnx/runtime.hpp"
#include "server/http_connection.hpp"
#include "server/server.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <doctest/doctest.h>
#include <filesystem>
#include <memory>
#include <mutex>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;
namespace api = mlctl::api;
using mlctl::Error;
using mlctl::ErrorKind;

namespace {

fs::path packed_model(const fs::path& parent) {
  const fs::path onnx =
      fs::path(MLCTL_SOURCE_DIR) / "tests" / "fixtures" / "torch" / "normalized_softmax.onnx";
  const auto dir = parent / "model";
  fs::create_directories(dir);
  fs::copy_file(onnx, dir / "model.onnx");
  mlctl::util::write_file_atomic(dir / "model.yaml",
                                 mlctl::model::card_to_yaml(mlctl::model::card_from_onnx(
                                     mlctl::onnx::Model::load_file(onnx), "fixture")));
  mlctl::artifact::pack_directory(dir, parent / "model.tar.gz");
  return parent / "model.tar.gz";
}

// Options of a server on a free loopback port with its data and access log in `tmp`.
mlctl::server::ServerOptions options_in(const mlctl::util::TempDir& tmp, int threads) {
  mlctl::server::ServerOptions o;
  o.data_dir = tmp.path() / "data";
  o.port = 0;
  o.threads = threads;
  o.log_file = tmp.path() / "access.log";
  return o;
}

struct Running {
  mlctl::server::Server server;
  std::thread thread;
  explicit Running(mlctl::server::ServerOptions o) : server(std::move(o), {}) {
    thread = std::thread([this] { server.run(); });
  }
  ~Running() {
    server.stop();
    thread.join();
  }
};

// A raw TCP client: what the HTTP library of a test would hide (how bytes are split and joined).
struct RawConnection {
  int fd = -1;
  explicit RawConnection(int port) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const timeval limit{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~RawConnection() { ::close(fd); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  void send(std::string_view bytes) const {
    REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(bytes.size()));
  }
  // Reads until `count` complete responses (head and Content-Length body) have arrived, or
  // the server closes, or 5 s pass; returns what arrived.
  std::string receive(int count) const {
    std::string in;
    char buf[4096];
    while (complete_responses(in) < count) {
      const auto n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        break;
      }
      in.append(buf, static_cast<std::size_t>(n));
    }
    return in;
  }
  bool closed_by_server() const {
    char c = 0;
    return ::recv(fd, &c, 1, 0) == 0;
  }
  static int complete_responses(std::string_view in) {
    int n = 0;
    for (;;) {
      const auto end = in.find("\r\n\r\n");
      const auto cl = in.find("Content-Length: ");
      if (end == std::string_view::npos || cl == std::string_view::npos || cl > end) {
        return n;
      }
      const auto body = std::stoul(std::string(in.substr(cl + 16, in.find("\r\n", cl) - cl - 16)));
      if (in.size() < end + 4 + body) {
        return n;
      }
      in.remove_prefix(end + 4 + body);
      ++n;
    }
  }
};

} // namespace

TEST_CASE("server connections: pipelined and split requests, keep-alive, Connection: close") {
  mlctl::util::TempDir tmp;
  auto o = options_in(tmp, 2);
  Running running(o);
  RawConnection c(running.server.port());

  // Two requests in one segment: both answered, in order, on the same connection.
  c.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /readyz HTTP/1.1\r\nHost: t\r\n\r\n");
  const auto two = c.receive(2);
  REQUIRE(RawConnection::complete_responses(two) == 2);
  CHECK(two.find("\"ok\"") < two.find("\"ready\""));

  // A request (with a body) split across segments, with a pause inside the head.
  const std::string body = R"({"n": 1})";
  c.send("POST /api/v1/models/Bad/versions HTTP/1.1\r\nHost: t\r\nContent-Le");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  c.send("ngth: " + std::to_string(body.size()) + "\r\n\r\n" + body.substr(0, 3));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  c.send(body.substr(3));
  const auto refused = c.receive(1);
  CHECK(refused.starts_with("HTTP/1.1 400"));
  CHECK(refused.find("invalid_input") != std::string::npos);

  // The client ends the connection: the answer comes, then the server closes.
  c.send("GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  CHECK(c.receive(1).starts_with("HTTP/1.1 200"));
  CHECK(c.closed_by_server());

  // Each request is logged once, with the client's address (the log is written within 50 ms).
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto log = mlctl::util::read_file(o.log_file);
  CHECK(std::count(log.begin(), log.end(), '\n') == 4);
  CHECK(log.find("\"remote\":\"127.0.0.1\"") != std::string::npos);
}

// The header names of one HTTP response, lowercase and sorted.
std::vector<std::string> header_names(std::string_view response) {
  std::vector<std::string> names;
  const auto head = response.substr(0, response.find("\r\n\r\n"));
  for (std::size_t pos = head.find("\r\n"); pos != std::string_view::npos;) {
    const auto next = head.find("\r\n", pos + 2);
    const auto line = head.substr(pos + 2, next == std::string_view::npos ? next : next - pos - 2);
    std::string name(line.substr(0, line.find(':')));
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    names.push_back(name);
    pos = next;
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST_CASE("server connections: inference requests answered without cpp-httplib's parsing") {
  mlctl::util::TempDir tmp;
  auto o = options_in(tmp, 2);
  Running running(o);
  RawConnection c(running.server.port());
  const std::string body = R"({"images": [[0.5]]})";
  const auto post = [&](const std::string& target, const std::string& extra) {
    return "POST " + target + " HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n" + extra +
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  };

  // Whole requests (here two in one segment) take the fast path; a chunked one cpp-httplib's.
  c.send(post("/api/v1/applications/ghost/predict", "") + post("/v2/models/ghost/infer", ""));
  const auto two = c.receive(2);
  REQUIRE(RawConnection::complete_responses(two) == 2);
  const auto second = two.find("HTTP/1.1", 1);
  const std::string fast = two.substr(0, second);
  CHECK(fast.starts_with("HTTP/1.1 404 Not Found\r\n"));
  CHECK(fast.find("\"code\":\"not_found\"") != std::string::npos);
  CHECK(fast.find("application 'ghost'") != std::string::npos);
  CHECK(two.substr(second).starts_with("HTTP/1.1 404"));
  CHECK(two.substr(second).find("{\"error\":") != std::string::npos); // the V2 error shape

  std::string chunked = "POST /api/v1/applications/ghost/predict HTTP/1.1\r\nHost: t\r\n"
                        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
  char size[16];
  std::snprintf(size, sizeof size, "%zx", body.size());
  chunked += std::string(size) + "\r\n" + body + "\r\n0\r\n\r\n";
  c.send(chunked);
  const auto slow = c.receive(1);
  CHECK(slow.starts_with("HTTP/1.1 404 Not Found\r\n"));
  // The same headers either way (traceparent, Keep-Alive, Content-Type, Content-Length) and
  // the same body.
  CHECK(header_names(fast) == header_names(slow));
  CHECK(header_names(fast) ==
        std::vector<std::string>{"content-length", "content-type", "keep-alive", "traceparent"});
  CHECK(fast.substr(fast.find("\r\n\r\n")) == slow.substr(slow.find("\r\n\r\n")));

  // A client's trace id is kept; `Connection: close` is honoured.
  c.send(post("/api/v1/applications/ghost/predict",
              "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
              "Connection: close\r\n"));
  const auto last = c.receive(1);
  CHECK(last.find("traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-") != std::string::npos);
  CHECK(last.find("Connection: close") != std::string::npos);
  CHECK(c.closed_by_server());

  // Each request is logged once (the log is written within 50 ms).
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto log = mlctl::util::read_file(o.log_file);
  CHECK(std::count(log.begin(), log.end(), '\n') == 4);
}

TEST_CASE(
    "the connection loop offers whole requests to its fast handler, the rest to cpp-httplib") {
  std::mutex mutex;
  std::vector<std::string> fast_bodies;
  auto http = mlctl::server::make_plain_http_server([&](const mlctl::server::RawRequest& r,
                                                        std::string& out, bool&) {
    if (r.target != "/x") {
      return false; // declined: cpp-httplib answers
    }
    const std::lock_guard lock(mutex);
    fast_bodies.emplace_back(r.body);
    const std::string body = "fast:" + std::string(r.body);
    out += "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    return true;
  }, 2);
  http->Post("/x", [](const httplib::Request& req, httplib::Response& res) {
    res.set_content("slow:" + req.body, "text/plain");
  });
  const int port = http->bind_to_any_port("127.0.0.1");
  REQUIRE(port > 0);
  std::thread loop([&] { http->listen_after_bind(); });
  const auto post = [](const std::string& target, const std::string& body, const char* version) {
    return "POST " + target + " " + version +
           "\r\nHost: t\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  };
  {
    RawConnection c(port);
    // Two whole requests in one segment: both fast, in order.
    c.send(post("/x", "a", "HTTP/1.1") + post("/x", "bb", "HTTP/1.1"));
    const auto two = c.receive(2);
    CHECK(two.find("fast:a") < two.find("fast:bb"));
    CHECK(two.find("fast:bb") != std::string::npos);
    // A body still arriving waits (parked, holding no worker) until it is whole: fast.
    c.send("POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nhal");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    c.send("ves");
    CHECK(c.receive(1).ends_with("fast:halves"));
    // A chunked body, HTTP/1.0: cpp-httplib's path.
    c.send(
        "POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    CHECK(c.receive(1).ends_with("slow:abc"));
    // A route the handler declines.
    c.send(post("/y", "z", "HTTP/1.1"));
    CHECK(c.receive(1).starts_with("HTTP/1.1 404"));
  }
  {
    // `Expect: 100-continue`: the body comes only once the server asks for it (not waited for).
    RawConnection c(port);
    c.send("POST /x HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
    char interim[64] = {};
    const auto n = ::recv(c.fd, interim, sizeof interim, 0);
    REQUIRE(n > 0);
    CHECK(std::string_view(interim, static_cast<std::size_t>(n))
              .starts_with("HTTP/1.1 100 Continue"));
    c.send("xyz");
    CHECK(c.receive(1).ends_with("slow:xyz"));
  }
  {
    RawConnection c(port);
    c.send(post("/x", "old", "HTTP/1.0"));
    CHECK(c.receive(1).ends_with("slow:old"));
  }
  http->stop();
  loop.join();
  CHECK(fast_bodies == std::vector<std::string>{"a", "bb", "halves"});
}

TEST_CASE("connections take turns on the workers: idle ones hold none, busy ones share them") {
  auto http = mlctl::server::make_plain_http_server(
      [](const mlctl::server::RawRequest&, std::string& out, bool&) {
        out += "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        return true;
      },
      2);
  http->set_keep_alive_timeout(2);
  http->set_keep_alive_max_count(100'000);
  const int port = http->bind_to_any_port("127.0.0.1");
  REQUIRE(port > 0);
  std::thread loop([&] { http->listen_after_bind(); });
  const std::string request = "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n";
  const auto start = std::chrono::steady_clock::now();
  const auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };

  // Six keep-alive connections on two workers, each answered in turn, then each again. Were
  // an idle connection to keep its worker until the keep-alive timeout, the third would wait 2 s.
  std::vector<std::unique_ptr<RawConnection>> idle;
  for (int i = 0; i < 6; ++i) {
    idle.push_back(std::make_unique<RawConnection>(port));
    idle.back()->send(request);
    CHECK(idle.back()->receive(1).ends_with("ok"));
  }
  for (auto& c : idle) {
    c->send(request);
    CHECK(c->receive(1).ends_with("ok"));
  }
  CHECK(seconds() < 1.5);

  // Four connections sending without pause on two workers: every one is answered, often.
  std::vector<int> answered(4, 0);
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&, i] {
      RawConnection c(port);
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
      while (std::chrono::steady_clock::now() < until) {
        c.send(request);
        if (!c.receive(1).ends_with("ok")) {
          return;
        }
        ++answered[static_cast<std::size_t>(i)];
      }
    });
  }
  for (auto& t : clients) {
    t.join();
  }
  for (const int n : answered) {
    CHECK(n >= 10);
  }

  // A parked connection still closes once idle past the keep-alive timeout (2 s).
  const auto parked_at = std::chrono::steady_clock::now();
  CHECK(idle.front()->closed_by_server());
  const auto waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - parked_at);
  CHECK(waited.count() > 1.0);
  http->stop();
  loop.join();
}

TEST_CASE("server and client: upload, list, get, download, alias, delete, errors") {
  mlctl::util::TempDir tmp;
  auto o = options_in(tmp, 4);
  Running running(o);
  REQUIRE(running.server.port() > 0);
  mlctl::client::ApiClientOptions co;
  co.server = running.server.url();
  co.user = "unit";
  mlctl::client::ApiClient client(co);
  CHECK(client.ready().status == "ready");

  const auto tgz = packed_model(tmp.path());
  const auto up = client.upload("fixture", tgz, false);
  CHECK(up.created);
  CHECK(up.version.ref() == "fixture:1");
  CHECK(up.version.uploader == "unit");
  CHECK_FALSE(client.upload("fixture", tgz, false).created);

  CHECK(client.list_models({}).models.at(0).name == "fixture");
  CHECK(client.list_versions("fixture", {}).versions.size() == 1);
  const auto ref = api::parse_model_ref("fixture:1");
  CHECK(client.get_version(ref).contract["inputs"].is_array());

  const auto got = client.download_artifact(
      api::parse_model_ref("fixture", api::RefVersion::optional), tmp.path() / "back.tar.gz");
  CHECK(got.version == 1);
  CHECK(got.sha256 == up.version.sha256);
  CHECK(mlctl::util::read_file(tmp.path() / "back.tar.gz") == mlctl::util::read_file(tgz));

  client.set_alias("fixture", "production", 1);
  CHECK(client.get_version(api::parse_model_ref("fixture@production")).version == 1);
  api::TagUpdate t;
  t.set = {{"k", "v"}};
  CHECK(client.update_tags(ref, t).tags.at("k") == "v");
  CHECK(client.events({}).events.size() == 3);

  // Errors come back with their kind and the server's message.
  try {
    client.get_version(api::parse_model_ref("fixture:7"));
    FAIL("no throw");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::not_found);
    CHECK(std::string(e.what()) == "model fixture:7 not found");
  }
  CHECK_THROWS_AS(client.call("GET", "/api/v1/models/Bad"), Error);

  const auto del = client.delete_version(ref);
  CHECK(del.artifact_removed);
  CHECK(client.gc(true).files_removed == 0);
}

TEST_CASE("a rollout running when the server stops resumes after a restart, its way back intact") {
  mlctl::util::TempDir tmp;
  const auto o = options_in(tmp, 4);
  const auto tgz = packed_model(tmp.path());
  const auto client_of = [](const Running& r) {
    mlctl::client::ApiClientOptions co;
    co.server = r.server.url();
    return mlctl::client::ApiClient(co);
  };
  const nlohmann::json manifest = {{"apiVersion", "mlctl/v1"},
                                   {"kind", "Application"},
                                   {"metadata", {{"name", "app"}}},
                                   {"spec", {{"singular", {{"model", "fixture:1"}}}}}};
  {
    Running running(o);
    auto client = client_of(running);
    client.upload("fixture", tgz, false);
    client.upload("fixture", tgz, true); // fixture:2, the canary
    client.call("PUT", "/api/v1/applications/app", manifest);
    const auto started = client.call("POST", "/api/v1/applications/app/rollouts",
                                     {{"model", "fixture:2"}, {"weight", 20}}, false);
    CHECK(started["status"] == "running");
  }
  // On start the server reads the running rollout back with the revision it would return to
  // (found in the application's history).
  Running running(o);
  auto client = client_of(running);
  CHECK(client.call("GET", "/api/v1/applications/app/rollout")["status"] == "running");
  const auto aborted = client.call("POST", "/api/v1/applications/app/rollout/abort", nullptr, false);
  CHECK(aborted["status"] == "aborted");
  const auto app = client.call("GET", "/api/v1/applications/app");
  CHECK(app.dump().find("fixture:2") == std::string::npos);
  CHECK(app.dump().find("fixture:1") != std::string::npos);
}

TEST_CASE("the server requires the bearer token when configured") {
  mlctl::util::TempDir tmp;
  mlctl::util::write_file_atomic(tmp.path() / "token", "unit-test-token-0123456789\n");
  fs::permissions(tmp.path() / "token", fs::perms::owner_read | fs::perms::owner_write);
  auto o = options_in(tmp, 2);
  o.token_file = tmp.path() / "token";
  Running running(o);
  mlctl::client::ApiClientOptions co;
  co.server = running.server.url();
  co.retries = 0;
  CHECK_THROWS_WITH_AS(mlctl::client::ApiClient(co).list_models({}),
                       doctest::Contains("missing bearer token"), Error);
  co.token = "unit-test-token-0123456789";
  CHECK(mlctl::client::ApiClient(co).list_models({}).models.empty());
}

TEST_CASE("server options are checked before anything is opened") {
  mlctl::util::TempDir tmp;
  mlctl::server::ServerOptions o;
  o.data_dir = tmp.path() / "data";
  o.host = "0.0.0.0";
  o.port = 0;
  CHECK_THROWS_WITH_AS(mlctl::server::Server(o, {}), doctest::Contains("without --token-file"),
                       Error);
  o.host = "127.0.0.1";
  o.tls_cert = tmp.path() / "cert.pem";
  CHECK_THROWS_WITH_AS(mlctl::server::Server(o, {}), "--tls-cert and --tls-key go together", Error);
  mlctl::server::ServerOptions l;
  mlctl::server::parse_listen("[::1]:8080", l);
  CHECK((l.host == "::1" && l.port == 8080));
  mlctl::server::parse_listen(":0", l);
  CHECK((l.host == "127.0.0.1" && l.port == 0));
  CHECK_THROWS_AS(mlctl::server::parse_listen("localhost", l), Error);
  CHECK_THROWS_AS(mlctl::server::parse_listen("h:99999", l), Error);
  CHECK(mlctl::server::is_loopback("127.0.0.2"));
  CHECK(mlctl::server::is_loopback("localhost"));
  CHECK_FALSE(mlctl::server::is_loopback("10.0.0.1"));
}

// http_perform and download_cached against a real cpp-httplib server on 127.0.0.1.
#include "artifact/sha256.hpp"
#include "client/api_client.hpp"
#include "client/http.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <atomic>
#include <chrono>
#include <doctest/doctest.h>
#include <filesystem>
#include <functional>
#include <httplib.h>
#include <mutex>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;
using mlctl::Error;
using mlctl::ErrorKind;
using mlctl::client::ApiClientOptions;
using mlctl::client::download_cached;
using mlctl::client::http_options;
using mlctl::client::http_perform;
using mlctl::client::HttpOptions;
using mlctl::client::HttpRequest;

namespace {

// A real HTTP server on 127.0.0.1 and a port chosen by the kernel, stopped by the destructor.
class TestServer {
public:
  explicit TestServer(const std::function<void(httplib::Server&)>& routes) {
    routes(m_server);
    // One request per connection: stop() then need not wait for idle keep-alive connections.
    m_server.set_keep_alive_max_count(1);
    m_port = m_server.bind_to_any_port("127.0.0.1");
    REQUIRE(m_port > 0);
    // The socket listens from bind_to_any_port on: early connections wait in the backlog.
    m_thread = std::thread([this] { m_server.listen_after_bind(); });
  }
  ~TestServer() {
    m_server.stop();
    m_thread.join();
  }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(m_port) + path;
  }

private:
  httplib::Server m_server;
  int m_port = 0;
  std::thread m_thread;
};

// A port nothing listens on: bound by the kernel's choice, then closed.
int dead_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

HttpOptions quick_options() {
  HttpOptions o;
  o.backoff = std::chrono::milliseconds(1);
  o.connect_timeout = std::chrono::milliseconds(2000);
  return o;
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) {
    s[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
  }
  return s;
}

std::size_t count_entries(const fs::path& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) {
    ++n;
  }
  return n;
}

} // namespace

TEST_CASE("http_perform: a 200 gives the body and lowercase headers") {
  TestServer server([](httplib::Server& s) {
    s.Get("/hello", [](const httplib::Request& req, httplib::Response& res) {
      res.set_header("X-Answer", "42");
      res.set_content("hello " + req.get_header_value("X-Name"), "text/plain");
    });
  });
  HttpRequest req;
  req.url = server.url("/hello");
  req.headers = {{"X-Name", "mlctl"}};
  const auto res = http_perform(req, quick_options());
  CHECK(res.status == 200);
  CHECK(res.body == "hello mlctl");
  REQUIRE(res.headers.count("x-answer") == 1);
  CHECK(res.headers.at("x-answer") == "42");
  CHECK(res.headers.at("content-type") == "text/plain");
}

TEST_CASE("http_perform: 500 twice then 200 is retried with a log line per retry") {
  std::atomic<int> calls{0};
  TestServer server([&](httplib::Server& s) {
    s.Get("/flaky", [&](const httplib::Request&, httplib::Response& res) {
      if (++calls <= 2) {
        res.status = 500;
        res.set_content("boom", "text/plain");
        return;
      }
      res.set_content("ok", "text/plain");
    });
  });
  std::vector<std::string> log;
  auto opts = quick_options();
  opts.log = [&](const std::string& line) { log.push_back(line); };
  HttpRequest req;
  req.url = server.url("/flaky");
  const auto res = http_perform(req, opts);
  CHECK(res.status == 200);
  CHECK(res.body == "ok");
  CHECK(calls == 3);
  REQUIRE(log.size() == 2);
  CHECK(log[0].rfind("GET " + req.url + ": HTTP 500, retry 1/3 in ", 0) == 0);
  CHECK(log[1].rfind("GET " + req.url + ": HTTP 500, retry 2/3 in ", 0) == 0);
}

TEST_CASE("http_perform: a persistent 503 is returned after the retries, not thrown") {
  std::atomic<int> calls{0};
  TestServer server([&](httplib::Server& s) {
    s.Get("/down", [&](const httplib::Request&, httplib::Response& res) {
      ++calls;
      res.status = 503;
      res.set_content("maintenance", "text/plain");
    });
  });
  auto opts = quick_options();
  opts.retries = 2;
  HttpRequest req;
  req.url = server.url("/down");
  const auto res = http_perform(req, opts);
  CHECK(res.status == 503);
  CHECK(res.body == "maintenance");
  CHECK(calls == 3);

  opts.retry_server_errors = false;
  calls = 0;
  CHECK(http_perform(req, opts).status == 503);
  CHECK(calls == 1);
}

TEST_CASE("http_perform: a 404 is returned at once and download_cached makes it not_found") {
  std::atomic<int> calls{0};
  TestServer server([&](httplib::Server& s) {
    s.Get("/missing.gz", [&](const httplib::Request&, httplib::Response& res) {
      ++calls;
      res.status = 404;
    });
  });
  HttpRequest req;
  req.url = server.url("/missing.gz");
  CHECK(http_perform(req, quick_options()).status == 404);
  CHECK(calls == 1);

  mlctl::util::TempDir cache;
  try {
    download_cached(req.url, cache.path(), quick_options());
    FAIL("no exception");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::not_found);
    CHECK(std::string(e.what()) == req.url + ": HTTP 404");
  }
}

TEST_CASE("http_perform: a dead port fails fast as unavailable: connection refused") {
  const std::string url = "http://127.0.0.1:" + std::to_string(dead_port()) + "/x";
  std::vector<std::string> log;
  auto opts = quick_options();
  opts.retries = 2;
  opts.log = [&](const std::string& line) { log.push_back(line); };
  HttpRequest req;
  req.url = url;
  const auto start = std::chrono::steady_clock::now();
  try {
    http_perform(req, opts);
    FAIL("no exception");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::unavailable);
    CHECK(std::string(e.what()) == url + ": connection refused");
  }
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
  REQUIRE(log.size() == 2);
  CHECK(log[0].rfind("GET " + url + ": connection refused, retry 1/2 in ", 0) == 0);

  // Without connect retries (the `auto` source's mirrors), one attempt only.
  log.clear();
  opts.retry_connect_failures = false;
  CHECK_THROWS_AS(http_perform(req, opts), Error);
  CHECK(log.empty());

  // The platform client's options say where the address came from.
  ApiClientOptions platform;
  platform.server_source = "cluster 'prod'";
  auto with_hint = http_options(platform);
  with_hint.retries = 0;
  CHECK_THROWS_WITH_AS(http_perform(req, with_hint),
                       (url + ": connection refused (is mlctl serve running there? The address "
                              "comes from cluster 'prod': mlctl cluster list)")
                           .c_str(),
                       Error);
  platform.server_source = "default";
  CHECK(http_options(platform).connect_failure_hint.find("this is the default address") !=
        std::string::npos);
}

TEST_CASE("http_perform: refuses other schemes") {
  HttpRequest req;
  req.url = "ftp://127.0.0.1/x";
  CHECK_THROWS_WITH_AS(http_perform(req, quick_options()),
                       "ftp://127.0.0.1/x: unsupported url (expected http:// or https://)", Error);
}

TEST_CASE("http_perform: a slow server hits the timeout") {
  TestServer server([](httplib::Server& s) {
    s.Get("/slow", [](const httplib::Request&, httplib::Response& res) {
      std::this_thread::sleep_for(std::chrono::milliseconds(800));
      res.set_content("late", "text/plain");
    });
  });
  auto opts = quick_options();
  opts.retries = 0;
  opts.timeout = std::chrono::milliseconds(150);
  HttpRequest req;
  req.url = server.url("/slow");
  try {
    http_perform(req, opts);
    FAIL("no exception");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::unavailable);
    CHECK(std::string(e.what()).find("timed out") != std::string::npos);
  }
}

TEST_CASE("http_perform: streams a file upload (PUT and POST) and reports upload progress") {
  mlctl::util::TempDir dir;
  const std::string content = pattern(3 * 1024 * 1024 + 17);
  const fs::path file = dir.path() / "model.tar.gz";
  mlctl::util::write_file_atomic(file, content);
  std::mutex mutex;
  std::string received_method;
  TestServer server([&](httplib::Server& s) {
    auto handler = [&](const httplib::Request& req, httplib::Response& res) {
      {
        const std::lock_guard lock(mutex);
        received_method = req.method;
      }
      res.set_content(std::to_string(req.body.size()) + " " +
                          mlctl::artifact::sha256_hex(req.body) + " " +
                          req.get_header_value("Content-Type"),
                      "text/plain");
    };
    s.Put("/upload", handler);
    s.Post("/upload", handler);
  });
  for (const std::string method : {"PUT", "POST"}) {
    CAPTURE(method);
    std::uint64_t last_done = 0;
    std::uint64_t last_total = 0;
    auto opts = quick_options();
    opts.progress = [&](const mlctl::util::Progress& p) {
      CHECK(p.unit == "B");
      CHECK(p.stage == "upload model.tar.gz");
      last_done = p.done;
      last_total = p.total;
    };
    HttpRequest req;
    req.method = method;
    req.url = server.url("/upload");
    req.body_file = file;
    req.headers = {{"Content-Type", "application/gzip"}};
    const auto res = http_perform(req, opts);
    CHECK(res.status == 200);
    CHECK(res.body == std::to_string(content.size()) + " " + mlctl::artifact::sha256_hex(content) +
                          " application/gzip");
    CHECK(received_method == method);
    CHECK(last_done == content.size());
    CHECK(last_total == content.size());
  }

  HttpRequest missing;
  missing.method = "PUT";
  missing.url = server.url("/upload");
  missing.body_file = dir.path() / "nope.bin";
  CHECK_THROWS_WITH_AS(http_perform(missing, quick_options()),
                       (missing.body_file.string() + ": no such file").c_str(), Error);
}

TEST_CASE("http_perform: a body in memory is sent with the given method") {
  TestServer server([](httplib::Server& s) {
    s.Patch("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(req.method + ":" + req.body, "application/json");
    });
    s.Delete("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.status = 204;
      (void)req;
    });
  });
  HttpRequest req;
  req.method = "PATCH";
  req.url = server.url("/echo");
  req.body = R"({"a":1})";
  req.headers = {{"Content-Type", "application/json"}};
  const auto res = http_perform(req, quick_options());
  CHECK(res.body == R"(PATCH:{"a":1})");
  HttpRequest del;
  del.method = "DELETE";
  del.url = server.url("/echo");
  CHECK(http_perform(del, quick_options()).status == 204);
}

TEST_CASE("http_perform: response_file is written atomically, only for a 2xx") {
  const std::string content = pattern(2 * 1024 * 1024 + 5);
  std::atomic<int> status{200};
  TestServer server([&](httplib::Server& s) {
    s.Get("/data.bin", [&](const httplib::Request&, httplib::Response& res) {
      res.status = status.load();
      res.set_content(res.status == 200 ? content : std::string("server error"),
                      "application/octet-stream");
    });
  });
  mlctl::util::TempDir dir;
  const fs::path out = dir.path() / "sub" / "data.bin";
  HttpRequest req;
  req.url = server.url("/data.bin");
  req.response_file = out;
  std::uint64_t last_done = 0;
  auto opts = quick_options();
  opts.progress = [&](const mlctl::util::Progress& p) {
    CHECK(p.stage == "download data.bin");
    last_done = p.done;
  };
  const auto ok = http_perform(req, opts);
  CHECK(ok.status == 200);
  CHECK(ok.body.empty());
  CHECK(mlctl::util::read_file(out) == content);
  CHECK(last_done == content.size());
  CHECK(count_entries(out.parent_path()) == 1);

  // A 500 leaves the previous file untouched and no temporary file; the body is returned.
  status = 500;
  opts.retries = 1;
  const auto bad = http_perform(req, opts);
  CHECK(bad.status == 500);
  CHECK(bad.body == "server error");
  CHECK(mlctl::util::read_file(out) == content);
  CHECK(count_entries(out.parent_path()) == 1);
}

TEST_CASE("download_cached: a second call downloads nothing; sha256 is verified") {
  const std::string content = pattern(100000);
  const std::string sha = mlctl::artifact::sha256_hex(content);
  std::atomic<int> calls{0};
  TestServer server([&](httplib::Server& s) {
    s.Get("/files/train-labels-idx1-ubyte.gz",
          [&](const httplib::Request&, httplib::Response& res) {
            ++calls;
            res.set_content(content, "application/octet-stream");
          });
  });
  mlctl::util::TempDir cache;
  const std::string url = server.url("/files/train-labels-idx1-ubyte.gz");
  const fs::path first = download_cached(url, cache.path(), quick_options(), sha);
  CHECK(first.filename() == "train-labels-idx1-ubyte.gz");
  CHECK(mlctl::util::read_file(first) == content);
  CHECK(calls == 1);
  const fs::path second = download_cached(url, cache.path(), quick_options(), sha);
  CHECK(second == first);
  CHECK(calls == 1);

  // A wrong expected sha256: the cached copy is not trusted, the new download is refused
  // and not kept.
  const std::string wrong(64, '0');
  try {
    download_cached(url, cache.path(), quick_options(), wrong);
    FAIL("no exception");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::corrupt);
    CHECK(std::string(e.what()) == url + ": sha256 mismatch: expected " + wrong + ", got " + sha);
  }
  CHECK(calls == 2);
  CHECK_FALSE(fs::exists(first));
  CHECK(count_entries(first.parent_path()) == 0);
}

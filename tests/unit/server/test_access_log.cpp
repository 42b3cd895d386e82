#include "server/access_log.hpp"
#include "util/fs.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

using mlctl::server::AccessLog;
using mlctl::server::AccessRecord;

TEST_CASE("the access log appends one JSON object per line") {
  mlctl::util::TempDir dir;
  const auto path = dir.path() / "access.log";
  AccessRecord r{
      "2026-11-28T12:00:00.000Z", "GET", "/api/v1/models", 200, 1.23456, "abc", "127.0.0.1", 0, 42};
  {
    AccessLog log(path);
    log.write(r);
    r.status = 404;
    log.write(r);
  }
  AccessLog(path).write(r); // appends, never truncates
  const auto text = mlctl::util::read_file(path);
  std::size_t lines = 0;
  for (std::size_t pos = 0; (pos = text.find('\n', pos)) != std::string::npos; ++pos) {
    ++lines;
  }
  CHECK(lines == 3);
  const auto first = nlohmann::json::parse(text.substr(0, text.find('\n')));
  CHECK(first["method"] == "GET");
  CHECK(first["status"] == 200);
  CHECK(first["latency_ms"] == doctest::Approx(1.235));
  CHECK(first["trace_id"] == "abc");
  CHECK(first["bytes_out"] == 42);
  CHECK(first.size() == 9);
}

TEST_CASE("the access log escapes paths and replaces invalid UTF-8, keeping each line valid JSON") {
  AccessRecord r{"2026-11-28T12:00:00.000Z",
                 "GET",
                 std::string("/a\"b\\c\n\x01/\xc3\xa9/\xff\xc3"),
                 200,
                 2.0,
                 "",
                 "127.0.0.1",
                 0,
                 0};
  const auto line = AccessLog::format(r);
  CHECK(line.find('\n') == std::string::npos);
  const auto j = nlohmann::json::parse(line);
  CHECK(j["path"] == "/a\"b\\c\n\x01/\xc3\xa9/\xef\xbf\xbd\xef\xbf\xbd");
  CHECK(j["latency_ms"].is_number_float());
  CHECK(line.find("\"latency_ms\":2.0,") != std::string::npos);
  CHECK(line.rfind("{\"bytes_in\":0,", 0) == 0);
}

namespace {

// The access record of one inference request.
AccessRecord inference_line() {
  return {"2026-11-28T12:00:00.000Z",
          "POST",
          "/v2/models/a/infer",
          200,
          0.5,
          "t",
          "127.0.0.1",
          6000,
          300};
}

} // namespace

TEST_CASE("the access log writes gathered lines within its interval, whole and all of them") {
  mlctl::util::TempDir dir;
  const auto path = dir.path() / "access.log";
  const auto r = inference_line();
  const auto count_lines = [&] {
    const auto text = mlctl::util::read_file(path);
    return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
  };
  AccessLog log(path, std::chrono::milliseconds(20));
  log.write(r);
  // The flusher writes it without being asked (the file exists at once: opened for appending).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (count_lines() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(count_lines() == 1);

  // Four threads, far more than one 64 KB buffer: every line arrives whole.
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) {
        log.write(r);
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  log.flush();
  const auto text = mlctl::util::read_file(path);
  std::size_t lines = 0;
  for (std::size_t pos = 0, next = 0; (next = text.find('\n', pos)) != std::string::npos;
       pos = next + 1) {
    CHECK(nlohmann::json::parse(text.substr(pos, next - pos))["status"] == 200);
    ++lines;
  }
  CHECK(lines == 20001);
}

TEST_CASE(
    "the access log never makes a request wait for a stalled file: lines past 16 MB are dropped") {
  mlctl::util::TempDir dir;
  const auto fifo = dir.path() / "stalled";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  // A reader that reads nothing yet: once the pipe's buffer is full, the flusher's write blocks.
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  REQUIRE(reader >= 0);
  std::mutex notes_mutex;
  std::vector<std::string> notes;
  const auto noted = [&] {
    const std::lock_guard lock(notes_mutex);
    return !notes.empty();
  };
  {
    AccessLog log(fifo, std::chrono::milliseconds(5), [&](const std::string& note) {
      const std::lock_guard lock(notes_mutex);
      notes.push_back(note);
    });
    const auto r = inference_line();
    const auto start = std::chrono::steady_clock::now();
    // ~50 MB of lines: more than the 16 MB waiting plus the 16 MB the flusher took at most.
    for (int i = 0; i < 300000; ++i) {
      log.write(r);
    }
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
    CHECK(log.dropped() > 0);
    // Draining the pipe lets the flusher write the rest; it then notes the drop.
    std::atomic<bool> done{false};
    std::thread drain([&] {
      char buf[65536];
      while (!done.load()) {
        if (::read(reader, buf, sizeof buf) <= 0) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      }
    });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      log.flush();
      if (noted()) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    done = true;
    drain.join();
  }
  ::close(reader);
  REQUIRE(notes.size() == 1);
  CHECK(notes[0].find("line(s) dropped") != std::string::npos);
}

#include "server/access_log.hpp"
#include "util/fs.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using mlctl::server::AccessLog;
using mlctl::server::AccessRecord;

TEST_CASE("the access log appends one JSON object per line") {
  mlctl::util::TempDir dir;
  const auto path = dir.path() / "access.log";
  AccessRecord r{"2026-11-28T12:00:00.000Z", "GET", "/api/v1/models", 200, 1.23456, "abc", "127.0.0.1", 0, 42};
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

#include "server/auth.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <doctest/doctest.h>
#include <sys/stat.h>

namespace server = mlctl::server;
using mlctl::Error;

TEST_CASE("token files: trimmed, checked, and a warning for loose permissions") {
  mlctl::util::TempDir dir;
  const auto path = dir.path() / "token";
  mlctl::util::write_file_atomic(path, "  0123456789abcdef-token \n");
  ::chmod(path.c_str(), 0600);
  auto t = server::load_token_file(path);
  CHECK(t.token == "0123456789abcdef-token");
  CHECK_FALSE(t.warning.has_value());
  ::chmod(path.c_str(), 0640);
  t = server::load_token_file(path);
  REQUIRE(t.warning.has_value());
  CHECK(t.warning->find("mode 0640") != std::string::npos);
  CHECK(t.warning->find("chmod 600") != std::string::npos);

  mlctl::util::write_file_atomic(path, "\n\n");
  CHECK_THROWS_WITH_AS(server::load_token_file(path), (path.string() + ": the token file is empty").c_str(), Error);
  mlctl::util::write_file_atomic(path, "short");
  CHECK_THROWS_WITH_AS(server::load_token_file(path), doctest::Contains("shorter than 16"), Error);
  CHECK_THROWS_AS(server::load_token_file(dir.path() / "missing"), Error);
}

TEST_CASE("bearer tokens are parsed case-insensitively and compared exactly") {
  CHECK(server::bearer_token("Bearer abc") == std::string_view("abc"));
  CHECK(server::bearer_token("bearer   abc  ") == std::string_view("abc"));
  CHECK_FALSE(server::bearer_token("Basic abc").has_value());
  CHECK_FALSE(server::bearer_token("Bearer ").has_value());
  CHECK_FALSE(server::bearer_token("").has_value());
  CHECK(server::token_matches("same-token", "same-token"));
  CHECK_FALSE(server::token_matches("same-token", "same-tokem"));
  CHECK_FALSE(server::token_matches("same-token", "same-token-longer"));
  CHECK_FALSE(server::token_matches("", "x"));
}

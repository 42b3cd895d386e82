#include "client/cluster_config.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <doctest/doctest.h>
#include <filesystem>
#include <sys/stat.h>

namespace client = mlctl::client;
using mlctl::Error;

TEST_CASE("clusters are added, used, saved and read back") {
  mlctl::util::TempDir dir;
  const auto path = dir.path() / "mlctl" / "config.yaml";
  auto config = client::load_cluster_config(path); // missing: empty
  CHECK(config.clusters.empty());
  mlctl::util::write_file_atomic(dir.path() / "tok", "token-from-file-0123\n");
  client::add_cluster(config,
                      {"local", "http://127.0.0.1:9090/", (dir.path() / "tok").string(), ""});
  mlctl::util::write_file_atomic(dir.path() / "ca.pem", "-----BEGIN CERTIFICATE-----\n");
  client::add_cluster(config,
                      {"prod", "https://mlctl.example:443", "", (dir.path() / "ca.pem").string()});
  CHECK(config.current == "local"); // the first one
  CHECK(config.find("local")->server == "http://127.0.0.1:9090");
  client::save_cluster_config(path, config);
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto back = client::load_cluster_config(path);
  CHECK(back.current == "local");
  REQUIRE(back.clusters.size() == 2);
  CHECK(back.clusters[1].server == "https://mlctl.example:443");

  auto e = client::resolve_endpoint("", "", "", back);
  CHECK(e.server == "http://127.0.0.1:9090");
  CHECK(e.token == "token-from-file-0123");
  CHECK(e.source == "cluster 'local'");
  // Flags win; the cluster's token never goes to another server.
  e = client::resolve_endpoint("http://10.0.0.1:1", "", "", back);
  CHECK(e.server == "http://10.0.0.1:1");
  CHECK(e.token.empty());
  e = client::resolve_endpoint("", "flag-token", "", back);
  CHECK(e.token == "flag-token");
  CHECK(e.ca_file.empty()); // local has no CA file
  client::use_cluster(back, "prod");
  e = client::resolve_endpoint("", "", "", back);
  CHECK(e.server == "https://mlctl.example:443");
  CHECK(e.ca_file == (dir.path() / "ca.pem").string()); // saved and read back, absolute
  // --cacert wins; the cluster's CAs, as its token, go only with its own server.
  CHECK(client::resolve_endpoint("", "", "/flag/ca.pem", back).ca_file == "/flag/ca.pem");
  CHECK(client::resolve_endpoint("https://other:1", "", "", back).ca_file.empty());
  CHECK(client::resolve_endpoint("https://mlctl.example:443", "", "", back).ca_file == e.ca_file);
  CHECK(client::resolve_endpoint("", "", "", client::ClusterConfig{}).server ==
        "http://127.0.0.1:9090");

  CHECK_THROWS_WITH_AS(client::use_cluster(back, "nope"), "cluster 'nope' not found (known: local, prod)", Error);
  CHECK_THROWS_AS(client::add_cluster(back, {"Bad Name", "http://x", "", ""}), Error);
  CHECK_THROWS_AS(client::add_cluster(back, {"x", "ftp://x", "", ""}), Error);
  CHECK_THROWS_AS(
      client::add_cluster(back, {"x", "http://x", (dir.path() / "missing").string(), ""}), Error);
  CHECK_THROWS_WITH_AS(
      client::add_cluster(back, {"x", "https://x", "", (dir.path() / "no-ca.pem").string()}),
      ((dir.path() / "no-ca.pem").string() + ": no such file").c_str(), Error);
}

TEST_CASE("a malformed config file names the field") {
  mlctl::util::TempDir dir;
  const auto path = dir.path() / "config.yaml";
  mlctl::util::write_file_atomic(path, "clusters:\n  - {name: a}\n");
  CHECK_THROWS_WITH_AS(
      client::load_cluster_config(path),
      (path.string() + ": clusters[0]: expected {name, server, token_file?, ca_file?}").c_str(),
      Error);
  mlctl::util::write_file_atomic(path, "[1, 2]\n");
  CHECK_THROWS_AS(client::load_cluster_config(path), Error);
}

TEST_CASE("the config path follows XDG_CONFIG_HOME") {
  const char* saved = std::getenv("XDG_CONFIG_HOME");
  const std::string keep = saved != nullptr ? saved : "";
  ::setenv("XDG_CONFIG_HOME", "/tmp/xdg-test", 1);
  CHECK(client::default_config_path() == "/tmp/xdg-test/mlctl/config.yaml");
  ::unsetenv("XDG_CONFIG_HOME");
  CHECK(client::default_config_path().string().find("/.config/mlctl/config.yaml") != std::string::npos);
  if (saved != nullptr) {
    ::setenv("XDG_CONFIG_HOME", keep.c_str(), 1);
  }
}

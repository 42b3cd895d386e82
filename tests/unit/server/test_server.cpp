// The whole platform in-process: a real `Server` on 127.0.0.1 (port 0) and the real REST client.
#include "artifact/tar.hpp"
#include "client/api_client.hpp"
#include "model/card.hpp"
#include "onnx/runtime.hpp"
#include "server/server.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <doctest/doctest.h>
#include <filesystem>
#include <thread>

namespace fs = std::filesystem;
namespace api = mlctl::api;
using mlctl::Error;
using mlctl::ErrorKind;

namespace {

fs::path packed_model(const fs::path& parent) {
  const fs::path onnx = fs::path(MLCTL_SOURCE_DIR) / "tests" / "fixtures" / "torch" / "normalized_softmax.onnx";
  const auto dir = parent / "model";
  fs::create_directories(dir);
  fs::copy_file(onnx, dir / "model.onnx");
  mlctl::util::write_file_atomic(
      dir / "model.yaml",
      mlctl::model::card_to_yaml(mlctl::model::card_from_onnx(mlctl::onnx::Model::load_file(onnx), "fixture")));
  mlctl::artifact::pack_directory(dir, parent / "model.tar.gz");
  return parent / "model.tar.gz";
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

} // namespace

TEST_CASE("server and client: upload, list, get, download, alias, delete, errors") {
  mlctl::util::TempDir tmp;
  mlctl::server::ServerOptions o;
  o.data_dir = tmp.path() / "data";
  o.port = 0;
  o.threads = 4;
  o.log_file = tmp.path() / "access.log";
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

  const auto got = client.download_artifact(api::parse_model_ref("fixture", api::RefVersion::optional),
                                            tmp.path() / "back.tar.gz");
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

TEST_CASE("the server requires the bearer token when configured") {
  mlctl::util::TempDir tmp;
  mlctl::util::write_file_atomic(tmp.path() / "token", "unit-test-token-0123456789\n");
  fs::permissions(tmp.path() / "token", fs::perms::owner_read | fs::perms::owner_write);
  mlctl::server::ServerOptions o;
  o.data_dir = tmp.path() / "data";
  o.port = 0;
  o.threads = 2;
  o.log_file = tmp.path() / "access.log";
  o.token_file = tmp.path() / "token";
  Running running(o);
  mlctl::client::ApiClientOptions co;
  co.server = running.server.url();
  co.retries = 0;
  CHECK_THROWS_WITH_AS(mlctl::client::ApiClient(co).list_models({}), doctest::Contains("missing bearer token"), Error);
  co.token = "unit-test-token-0123456789";
  CHECK(mlctl::client::ApiClient(co).list_models({}).models.empty());
}

TEST_CASE("server options are checked before anything is opened") {
  mlctl::util::TempDir tmp;
  mlctl::server::ServerOptions o;
  o.data_dir = tmp.path() / "data";
  o.host = "0.0.0.0";
  o.port = 0;
  CHECK_THROWS_WITH_AS(mlctl::server::Server(o, {}), doctest::Contains("without --token-file"), Error);
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

// Validation of uploaded artifacts, with a real ONNX graph (a PyTorch export from the fixtures)
// packed into real tar.gz archives.
#include "artifact/tar.hpp"
#include "model/card.hpp"
#include "onnx/runtime.hpp"
#include "server/artifact_check.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <doctest/doctest.h>
#include <filesystem>

namespace fs = std::filesystem;
namespace server = mlctl::server;
using mlctl::Error;

namespace {

const fs::path k_onnx =
    fs::path(MLCTL_SOURCE_DIR) / "tests" / "fixtures" / "torch" / "normalized_softmax.onnx";

// A model directory: the fixture graph plus a card generated from it.
fs::path model_dir(const fs::path& parent) {
  const auto dir = parent / "model";
  fs::create_directories(dir);
  fs::copy_file(k_onnx, dir / "model.onnx");
  const auto card = mlctl::model::card_from_onnx(mlctl::onnx::Model::load_file(k_onnx), "fixture");
  mlctl::util::write_file_atomic(dir / "model.yaml", mlctl::model::card_to_yaml(card));
  return dir;
}

server::CheckedArtifact check(const fs::path& dir, const fs::path& work) {
  const auto tgz = work / "a.tar.gz";
  fs::remove(tgz);
  mlctl::artifact::pack_directory(dir, tgz);
  return server::check_artifact(tgz, {});
}

} // namespace

TEST_CASE("a real model directory passes and its card comes back as JSON") {
  mlctl::util::TempDir tmp;
  const auto dir = model_dir(tmp.path());
  const auto checked = check(dir, tmp.path());
  CHECK(checked.files == std::vector<std::string>{"model.onnx", "model.yaml"});
  CHECK(checked.card["kind"] == "Model");
  CHECK(checked.card["metadata"]["name"] == "fixture");
  CHECK(checked.card["spec"]["lineage"]["imported"] == true);
  CHECK(checked.card["spec"]["contract"]["inputs"][0]["shape"][0] == -1);
}

TEST_CASE("artifacts that are not model directories are refused, naming what is wrong") {
  mlctl::util::TempDir tmp;
  const auto dir = model_dir(tmp.path());
  SUBCASE("missing model.yaml") {
    fs::remove(dir / "model.yaml");
    CHECK_THROWS_WITH_AS(
        check(dir, tmp.path()),
        "artifact: missing model.yaml (a model directory holds model.yaml and model.onnx)", Error);
  }
  SUBCASE("missing model.onnx") {
    fs::remove(dir / "model.onnx");
    CHECK_THROWS_WITH_AS(check(dir, tmp.path()), doctest::Contains("artifact: missing model.onnx"),
                         Error);
  }
  SUBCASE("an ONNX file that does not load") {
    mlctl::util::write_file_atomic(dir / "model.onnx", std::string("\x08\x07 not a model", 14));
    CHECK_THROWS_WITH_AS(check(dir, tmp.path()), doctest::Contains("artifact: model.onnx: "),
                         Error);
  }
  SUBCASE("a card that does not parse") {
    mlctl::util::write_file_atomic(dir / "model.yaml", "apiVersion: mlctl/v2\nkind: Model\n");
    CHECK_THROWS_WITH_AS(check(dir, tmp.path()),
                         doctest::Contains("artifact: model.yaml: apiVersion"), Error);
  }
  SUBCASE("a contract that names a tensor the graph does not have") {
    auto text = mlctl::util::read_file(dir / "model.yaml");
    const auto input = mlctl::onnx::Model::load_file(k_onnx).inputs().at(0).name;
    const auto pos = text.find("name: " + input);
    REQUIRE(pos != std::string::npos);
    text.replace(pos, 6 + input.size(), "name: nonexistent");
    mlctl::util::write_file_atomic(dir / "model.yaml", text);
    CHECK_THROWS_WITH_AS(
        check(dir, tmp.path()),
        doctest::Contains(
            "spec.contract.inputs[0].name: 'nonexistent' is not an input of model.onnx"),
        Error);
  }
  SUBCASE("bytes that are not a tar.gz") {
    const auto tgz = tmp.path() / "junk.tar.gz";
    mlctl::util::write_file_atomic(tgz, "junk junk junk junk");
    try {
      server::check_artifact(tgz, {});
      FAIL("no throw");
    } catch (const Error& e) {
      CHECK(e.kind() == mlctl::ErrorKind::invalid_input);
      CHECK(std::string(e.what()) == "artifact: not a gzip-compressed tar archive");
    }
  }
}

namespace {

// Feeds the packed `dir` to a streaming check in `piece`-byte pieces, as an upload would.
server::CheckedArtifact check_streamed(const fs::path& dir, const fs::path& work,
                                       std::size_t piece) {
  const auto tgz = work / "s.tar.gz";
  fs::remove(tgz);
  mlctl::artifact::pack_directory(dir, tgz);
  const auto bytes = mlctl::util::read_file(tgz);
  server::ArtifactCheck check({});
  for (std::size_t at = 0; at < bytes.size(); at += piece) {
    check.feed(bytes.data() + at, std::min(piece, bytes.size() - at));
  }
  return check.finish(tgz);
}

// Gives the card of `dir` an autoencoder named `file` (a copy of the model's graph).
void add_autoencoder(const fs::path& dir, const std::string& file) {
  fs::create_directories((dir / file).parent_path());
  fs::copy_file(dir / "model.onnx", dir / file);
  auto card =
      mlctl::model::card_from_yaml(mlctl::util::read_file(dir / "model.yaml"), "model.yaml");
  card.monitoring = mlctl::model::Monitoring{};
  card.monitoring->autoencoder = file;
  card.monitoring->reconstruction = {0.5, 0.1, 0.2, 0.3, 0.4};
  mlctl::util::write_file_atomic(dir / "model.yaml", mlctl::model::card_to_yaml(card));
}

} // namespace

TEST_CASE("the streaming check gives the file check's verdict, whatever the pieces") {
  mlctl::util::TempDir tmp;
  const auto dir = model_dir(tmp.path());
  const auto whole = check(dir, tmp.path());
  for (const std::size_t piece : {std::size_t{1} << 22, std::size_t{7777}, std::size_t{1}}) {
    CAPTURE(piece);
    const auto streamed = check_streamed(dir, tmp.path(), piece);
    CHECK(streamed.files == whole.files);
    CHECK(streamed.card == whole.card);
  }
  SUBCASE("a broken graph") {
    mlctl::util::write_file_atomic(dir / "model.onnx", std::string("\x08\x07 not a model", 14));
    CHECK_THROWS_WITH_AS(check_streamed(dir, tmp.path(), 4096),
                         doctest::Contains("artifact: model.onnx: "), Error);
  }
  SUBCASE("bytes that are not a tar.gz, and a truncated one") {
    const std::string junk = "junk junk junk junk";
    server::ArtifactCheck check({});
    check.feed(junk.data(), junk.size());
    CHECK_THROWS_WITH_AS(check.finish(tmp.path() / "unused"),
                         "artifact: not a gzip-compressed tar archive", Error);
    const auto tgz = tmp.path() / "t.tar.gz";
    mlctl::artifact::pack_directory(dir, tgz);
    const auto bytes = mlctl::util::read_file(tgz);
    server::ArtifactCheck cut({});
    cut.feed(bytes.data(), bytes.size() / 2);
    try {
      cut.finish(tgz);
      FAIL("no throw");
    } catch (const Error& e) {
      CHECK(e.kind() == mlctl::ErrorKind::invalid_input);
      CHECK(std::string(e.what()).starts_with("artifact: "));
    }
  }
  SUBCASE("the unpacked-size cap, enforced by both") {
    // Hostile entries are covered in the tar tests; here the message must come back through
    // the check thread as the file check gives it.
    const auto tgz = tmp.path() / "cap.tar.gz";
    mlctl::artifact::pack_directory(dir, tgz);
    const std::string body = mlctl::util::read_file(tgz);
    server::ArtifactCheck check(server::ArtifactLimits{100, 1000});
    check.feed(body.data(), body.size());
    CHECK_THROWS_WITH_AS(check.finish(tgz), doctest::Contains("archive expands past 100 bytes"),
                         Error);
    CHECK_THROWS_WITH_AS(server::check_artifact(tgz, server::ArtifactLimits{100, 1000}),
                         doctest::Contains("archive expands past 100 bytes"), Error);
  }
}

TEST_CASE("an abandoned streaming check stops without waiting for more bytes") {
  mlctl::util::TempDir tmp;
  const auto dir = model_dir(tmp.path());
  const auto tgz = tmp.path() / "a.tar.gz";
  mlctl::artifact::pack_directory(dir, tgz);
  const auto bytes = mlctl::util::read_file(tgz);
  server::ArtifactCheck check({});
  check.feed(bytes.data(), bytes.size() / 3);
  // Leaving the scope must return (the thread is waiting for input).
}

TEST_CASE("the card's autoencoder is loaded, whatever its file name") {
  mlctl::util::TempDir tmp;
  const auto dir = model_dir(tmp.path());
  // The autoencoder is found and loaded by both checks; once broken, both name it.
  const auto loaded_by_both = [&](const std::string& name) {
    add_autoencoder(dir, name);
    CHECK(check_streamed(dir, tmp.path(), 65536).files ==
          std::vector<std::string>{name, "model.onnx", "model.yaml"});
    CHECK(check(dir, tmp.path()).files.size() == 3);
    mlctl::util::write_file_atomic(dir / name, std::string("\x08\x07 broken", 9));
    const std::string named = "artifact: " + name + ": ";
    CHECK_THROWS_WITH_AS(check_streamed(dir, tmp.path(), 65536), doctest::Contains(named.c_str()),
                         Error);
    CHECK_THROWS_WITH_AS(check(dir, tmp.path()), doctest::Contains(named.c_str()), Error);
  };
  SUBCASE("an .onnx name: kept by the single pass") {
    loaded_by_both("autoencoder.onnx");
  }
  SUBCASE("another name: read again from the file") {
    loaded_by_both("autoencoder.bin");
  }
  SUBCASE("a name that is not in the artifact") {
    add_autoencoder(dir, "autoencoder.onnx");
    fs::remove(dir / "autoencoder.onnx");
    CHECK_THROWS_WITH_AS(check_streamed(dir, tmp.path(), 65536),
                         "artifact: model.yaml: spec.monitoring.autoencoder: 'autoencoder.onnx' is "
                         "not in the artifact",
                         Error);
  }
}

TEST_CASE("yaml_to_json keeps quoted strings and reads plain scalars") {
  const auto j = server::yaml_to_json(
      "a: 1\nb: -2.5\nc: true\nd: ~\ne: \"7\"\nf: [x, 'y']\ng: {h: null}\n", "t");
  CHECK(j["a"] == 1);
  CHECK(j["b"] == -2.5);
  CHECK(j["c"] == true);
  CHECK(j["d"].is_null());
  CHECK(j["e"] == "7");
  CHECK(j["f"] == nlohmann::json::array({"x", "y"}));
  CHECK(j["g"]["h"].is_null());
  CHECK_THROWS_WITH_AS(server::yaml_to_json("a: [1, 2", "model.yaml"),
                       doctest::Contains("model.yaml: "), Error);
}

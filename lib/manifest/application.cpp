#include "manifest/application.hpp"
#include "util/yaml_json.hpp"

#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/problems.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <yaml-cpp/yaml.h>

namespace mlctl::manifest {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error(ErrorKind::invalid_input, path + ": " + what);
}

// How a value is shown in a message: strings quoted, the rest as JSON (cut short).
std::string shown(const json& v) {
  std::string s = v.is_string() ? "'" + v.get<std::string>() + "'" : v.dump();
  if (s.size() > 60) {
    s = s.substr(0, 57) + "...";
  }
  return s;
}

std::string type_name(const json& v) {
  switch (v.type()) {
  case json::value_t::object:
    return "a mapping";
  case json::value_t::array:
    return "a list";
  case json::value_t::string:
    return "a string";
  case json::value_t::boolean:
    return "a boolean";
  case json::value_t::null:
    return "nothing";
  default:
    return "a number";
  }
}

const json& require_object(const json& v, const std::string& path) {
  if (!v.is_object()) {
    fail(path, "expected a mapping, got " + type_name(v));
  }
  return v;
}

// Refuses keys of `obj` outside `known` (a typo must not silently change the meaning).
void check_fields(const json& obj, const std::string& path,
                  std::initializer_list<std::string_view> known) {
  for (const auto& [key, value] : obj.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string list;
      for (const auto k : known) {
        list += (list.empty() ? "" : ", ") + std::string(k);
      }
      fail(path.empty() ? key : path + "." + key, "unknown field (expected one of: " + list + ")");
    }
  }
}

double finite_number(const json& v, const std::string& path, const std::string& expected) {
  if (!v.is_number()) {
    fail(path, "must be " + expected + ", got " + shown(v));
  }
  const double d = v.get<double>();
  if (!std::isfinite(d)) {
    fail(path, "must be " + expected + ", got " + shown(v));
  }
  return d;
}

std::int64_t integer(const json& v, const std::string& path, const std::string& expected) {
  if (v.is_number_integer()) {
    return v.get<std::int64_t>();
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::abs(d) < 9e15) {
      return static_cast<std::int64_t>(d);
    }
  }
  fail(path, "must be " + expected + ", got " + shown(v));
}

api::ModelRef model_ref(const json& v, const std::string& path) {
  if (!v.is_string()) {
    fail(path, "expected NAME:VERSION or NAME@ALIAS, got " + shown(v));
  }
  try {
    return api::parse_model_ref(v.get<std::string>(), api::RefVersion::required);
  } catch (const Error& e) {
    fail(path, e.what());
  }
}

Variant variant_from_json(const json& v, const std::string& path) {
  require_object(v, path);
  check_fields(v, path, {"model", "weight", "shadow"});
  if (!v.contains("model")) {
    fail(path + ".model", "is required (NAME:VERSION or NAME@ALIAS)");
  }
  Variant out;
  out.model = model_ref(v["model"], path + ".model");
  const bool has_weight = v.contains("weight");
  const bool has_shadow = v.contains("shadow");
  if (has_weight && has_shadow) {
    fail(path, "give either weight or shadow, not both");
  }
  if (!has_weight && !has_shadow) {
    fail(path, "needs weight (0..100) or shadow (a percentage of the stage's traffic)");
  }
  if (has_weight) {
    const auto w = integer(v["weight"], path + ".weight", "an integer 0..100");
    if (w < 0 || w > 100) {
      fail(path + ".weight", "must be 0..100, got " + std::to_string(w));
    }
    out.weight = static_cast<int>(w);
  } else {
    const auto s = finite_number(v["shadow"], path + ".shadow", "a percentage in (0, 100]");
    if (s <= 0 || s > 100) {
      fail(path + ".shadow", "must be a percentage in (0, 100], got " + shown(v["shadow"]));
    }
    out.shadow = s;
  }
  return out;
}

// Reads a stage; a bad variant goes to `problems` and the others are still read.
Stage stage_from_json(const json& v, const std::string& path, Problems& problems) {
  require_object(v, path);
  check_fields(v, path, {"variants"});
  if (!v.contains("variants")) {
    fail(path + ".variants", "is required (a list of {model, weight} or {model, shadow})");
  }
  const auto& list = v["variants"];
  const auto list_path = path + ".variants";
  if (!list.is_array()) {
    fail(list_path, "expected a list, got " + type_name(list));
  }
  if (list.empty()) {
    fail(list_path, "needs at least one variant");
  }
  if (list.size() > k_max_variants) {
    fail(list_path, "at most " + std::to_string(k_max_variants) + " variants, got " +
                        std::to_string(list.size()));
  }
  Stage stage;
  std::set<std::string> seen;
  int total = 0;
  bool all_valid = true;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const auto vpath = list_path + "[" + std::to_string(i) + "]";
    all_valid &= problems.check([&] {
      auto variant = variant_from_json(list[i], vpath);
      if (!seen.insert(variant.model.to_string()).second) {
        fail(vpath + ".model", variant.model.to_string() + " appears twice in the stage");
      }
      total += variant.weight;
      stage.variants.push_back(std::move(variant));
    });
  }
  // The sum means something only when every weight could be read.
  if (all_valid && total != 100) {
    fail(path, "weights must sum to 100, got " + std::to_string(total));
  }
  return stage;
}

json monitoring_from_json(const json& v, const std::string& path) {
  require_object(v, path);
  check_fields(v, path, {"reconstruction_threshold", "min_accuracy", "window"});
  json out = json::object();
  if (v.contains("reconstruction_threshold")) {
    const auto p = path + ".reconstruction_threshold";
    const double t = finite_number(v["reconstruction_threshold"], p, "a number >= 0");
    if (t < 0) {
      fail(p, "must be a number >= 0, got " + shown(v["reconstruction_threshold"]));
    }
    out["reconstruction_threshold"] = t;
  }
  if (v.contains("min_accuracy")) {
    const auto p = path + ".min_accuracy";
    const double a = finite_number(v["min_accuracy"], p, "0..1");
    if (a < 0 || a > 1) {
      fail(p, "must be 0..1, got " + shown(v["min_accuracy"]));
    }
    out["min_accuracy"] = a;
  }
  if (v.contains("window")) {
    const auto p = path + ".window";
    const auto w = integer(v["window"], p, "an integer >= 1");
    if (w < 1 || w > 1'000'000'000) {
      fail(p, "must be 1..1000000000, got " + std::to_string(w));
    }
    out["window"] = w;
  }
  return out;
}

// Reads spec.singular or spec.stages into `app`; a bad stage goes to `problems` and the others
// are still read.
void read_serving(const json& spec, Application& app, Problems& problems) {
  const bool has_singular = spec.contains("singular");
  const bool has_stages = spec.contains("stages");
  if (has_singular == has_stages) {
    fail("spec", has_singular ? "give either singular or stages, not both"
                              : "needs singular ({model: NAME:VERSION}) or stages");
  }
  if (has_singular) {
    const auto& singular = require_object(spec["singular"], "spec.singular");
    check_fields(singular, "spec.singular", {"model"});
    if (!singular.contains("model")) {
      fail("spec.singular.model", "is required (NAME:VERSION or NAME@ALIAS)");
    }
    app.singular = true;
    Variant v;
    v.model = model_ref(singular["model"], "spec.singular.model");
    v.weight = 100;
    app.stages.push_back(Stage{{std::move(v)}});
    return;
  }
  const auto& stages = spec["stages"];
  if (!stages.is_array()) {
    fail("spec.stages", "expected a list, got " + type_name(stages));
  }
  if (stages.empty()) {
    fail("spec.stages", "needs at least one stage");
  }
  if (stages.size() > k_max_stages) {
    fail("spec.stages", "at most " + std::to_string(k_max_stages) + " stages, got " +
                            std::to_string(stages.size()));
  }
  for (std::size_t i = 0; i < stages.size(); ++i) {
    problems.check([&] {
      app.stages.push_back(
          stage_from_json(stages[i], "spec.stages[" + std::to_string(i) + "]", problems));
    });
  }
}

} // namespace

Application application_from_json(const json& doc) {
  if (!doc.is_object()) {
    throw Error(ErrorKind::invalid_input,
                "expected an Application document (a mapping), got " + type_name(doc));
  }
  // Independent parts are checked one by one: the message names every problem. A document of
  // another kind (a ConfigMap in a directory given to `apply -f`) is named as such, without the
  // fields it lacks for being an Application.
  Problems problems;
  const bool other_kind = doc.contains("kind") && doc["kind"] != k_kind_application;
  if (!other_kind) {
    problems.check([&] { check_fields(doc, "", {"apiVersion", "kind", "metadata", "spec"}); });
  }
  problems.check([&] {
    if (!doc.contains("apiVersion")) {
      fail("apiVersion", "is required (" + std::string(k_api_version) + ")");
    }
    if (doc["apiVersion"] != k_api_version) {
      fail("apiVersion",
           "expected " + std::string(k_api_version) + ", got " + shown(doc["apiVersion"]));
    }
  });
  problems.check([&] {
    if (!doc.contains("kind")) {
      fail("kind", "is required (" + std::string(k_kind_application) + ")");
    }
    if (doc["kind"] != k_kind_application) {
      fail("kind", "expected " + std::string(k_kind_application) + ", got " + shown(doc["kind"]) +
                       " (not an mlctl manifest)");
    }
  });
  if (other_kind) {
    problems.raise();
  }
  Application app;
  problems.check([&] {
    if (!doc.contains("metadata")) {
      fail("metadata.name", "is required");
    }
    const auto& metadata = require_object(doc["metadata"], "metadata");
    check_fields(metadata, "metadata", {"name"});
    if (!metadata.contains("name")) {
      fail("metadata.name", "is required");
    }
    const auto& name = metadata["name"];
    if (!name.is_string() || !api::is_valid_name(name.get<std::string>())) {
      fail("metadata.name",
           "must match " + std::string(api::k_name_pattern) + ", got " + shown(name));
    }
    app.name = name.get<std::string>();
  });
  problems.check([&] {
    if (!doc.contains("spec")) {
      fail("spec", "is required (spec.singular or spec.stages)");
    }
    const auto& spec = require_object(doc["spec"], "spec");
    problems.check([&] {
      check_fields(spec, "spec", {"singular", "stages", "capture", "monitoring"});
    });
    problems.check([&] { read_serving(spec, app, problems); });
    problems.check([&] {
      if (spec.contains("capture")) {
        const auto& capture = require_object(spec["capture"], "spec.capture");
        check_fields(capture, "spec.capture", {"sample"});
        if (capture.contains("sample")) {
          const double s = finite_number(capture["sample"], "spec.capture.sample", "0..1");
          if (s < 0 || s > 1) {
            fail("spec.capture.sample", "must be 0..1, got " + shown(capture["sample"]));
          }
          app.capture_sample = s;
        }
      }
    });
    problems.check([&] {
      if (spec.contains("monitoring") && !spec["monitoring"].is_null()) {
        app.monitoring = monitoring_from_json(spec["monitoring"], "spec.monitoring");
      }
    });
  });
  problems.raise();
  return app;
}

json to_json(const Application& app) {
  json spec = json::object();
  if (app.singular) {
    spec["singular"] = {{"model", app.stages.at(0).variants.at(0).model.to_string()}};
  } else {
    json stages = json::array();
    for (const auto& stage : app.stages) {
      json variants = json::array();
      for (const auto& v : stage.variants) {
        json item = {{"model", v.model.to_string()}};
        if (v.shadow) {
          item["shadow"] = *v.shadow;
        } else {
          item["weight"] = v.weight;
        }
        variants.push_back(std::move(item));
      }
      stages.push_back({{"variants", std::move(variants)}});
    }
    spec["stages"] = std::move(stages);
  }
  spec["capture"] = {{"sample", app.capture_sample}};
  if (app.monitoring.is_object()) {
    spec["monitoring"] = app.monitoring;
  }
  return {{"apiVersion", k_api_version},
          {"kind", k_kind_application},
          {"metadata", {{"name", app.name}}},
          {"spec", std::move(spec)}};
}

std::size_t primary_variant(const Stage& stage) {
  std::size_t best = 0;
  int best_weight = -1;
  for (std::size_t i = 0; i < stage.variants.size(); ++i) {
    const auto& v = stage.variants[i];
    if (!v.shadow && v.weight > best_weight) {
      best = i;
      best_weight = v.weight;
    }
  }
  return best;
}

std::string_view variant_role(const Stage& stage, std::size_t index) {
  if (stage.variants.at(index).shadow) {
    return "shadow";
  }
  return index == primary_variant(stage) ? "primary" : "canary";
}

json yaml_to_json(std::string_view yaml, std::string_view name) {
  try {
    return util::yaml_to_json(YAML::Load(std::string(yaml)));
  } catch (const YAML::Exception& e) {
    throw Error(ErrorKind::invalid_input, std::string(name) + ": " + util::yaml_error(e));
  }
}

std::vector<Document> parse_manifests(std::string_view text, std::string_view name) {
  std::vector<YAML::Node> nodes;
  try {
    nodes = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    throw Error(ErrorKind::invalid_input, std::string(name) + ": " + util::yaml_error(e));
  }
  std::vector<Document> out;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (!nodes[i] || nodes[i].IsNull()) {
      continue;
    }
    const auto source = i == 0 ? std::string(name)
                               : std::string(name) + " (document " + std::to_string(i + 1) + ")";
    json doc;
    try {
      doc = util::yaml_to_json(nodes[i]);
    } catch (const YAML::Exception& e) {
      throw Error(ErrorKind::invalid_input, source + ": " + util::yaml_error(e));
    }
    out.push_back(
        Document{source, with_context(source, [&] { return application_from_json(doc); })});
  }
  if (out.empty()) {
    throw Error(ErrorKind::invalid_input, std::string(name) + ": no manifest documents");
  }
  return out;
}

void check_unique_names(const std::vector<Document>& documents) {
  std::map<std::string, std::string> first;
  for (const auto& d : documents) {
    const auto [it, inserted] = first.emplace(d.application.name, d.source);
    if (!inserted) {
      throw Error(ErrorKind::invalid_input, d.source + ": application '" + d.application.name +
                                                "' is also defined in " + it->second);
    }
  }
}

std::vector<Document> load_manifests(const fs::path& path) {
  std::error_code ec;
  std::vector<Document> out;
  if (fs::is_directory(path, ec)) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(path, ec)) {
      const auto ext = entry.path().extension();
      if ((ext == ".yaml" || ext == ".yml") && entry.is_regular_file(ec)) {
        files.push_back(entry.path());
      }
    }
    if (ec) {
      throw Error(ErrorKind::io, path.string() + ": cannot list the directory: " + ec.message());
    }
    if (files.empty()) {
      throw Error(ErrorKind::invalid_input,
                  path.string() + ": no *.yaml or *.yml files in the directory");
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      auto docs = parse_manifests(util::read_file(f), f.string());
      out.insert(out.end(), std::make_move_iterator(docs.begin()),
                 std::make_move_iterator(docs.end()));
    }
  } else {
    out = parse_manifests(util::read_file(path), path.string());
  }
  check_unique_names(out);
  return out;
}

namespace {

void collect_changes(const std::string& field, const nlohmann::json* before,
                     const nlohmann::json* after, std::vector<SpecChange>& out) {
  if (before != nullptr && after != nullptr) {
    if (*before == *after) {
      return;
    }
    if (before->is_object() && after->is_object()) {
      std::set<std::string> keys;
      for (const auto* side : {before, after}) {
        for (const auto& [k, _] : side->items()) {
          keys.insert(k);
        }
      }
      for (const auto& k : keys) {
        const auto b = before->find(k);
        const auto a = after->find(k);
        collect_changes(field.empty() ? k : field + "." + k, b == before->end() ? nullptr : &*b,
                        a == after->end() ? nullptr : &*a, out);
      }
      return;
    }
    if (before->is_array() && after->is_array()) {
      for (std::size_t i = 0; i < std::max(before->size(), after->size()); ++i) {
        collect_changes(field + "[" + std::to_string(i) + "]",
                        i < before->size() ? &(*before)[i] : nullptr,
                        i < after->size() ? &(*after)[i] : nullptr, out);
      }
      return;
    }
  }
  const auto value = [](const nlohmann::json* v) {
    return v == nullptr ? std::nullopt : std::optional<nlohmann::json>(*v);
  };
  out.push_back({field, value(before), value(after)});
}

} // namespace

std::vector<SpecChange> spec_changes(const nlohmann::json& before, const nlohmann::json& after) {
  static const nlohmann::json empty = nlohmann::json::object();
  const auto spec = [](const nlohmann::json& doc) -> const nlohmann::json& {
    return doc.is_object() && doc.contains("spec") ? doc["spec"] : empty;
  };
  std::vector<SpecChange> out;
  collect_changes("", &spec(before), &spec(after), out);
  return out;
}

} // namespace mlctl::manifest

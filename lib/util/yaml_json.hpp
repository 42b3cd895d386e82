#pragma once
// The one conversion between YAML (yaml-cpp) and JSON values (nlohmann) that model cards,
// manifests and `-o yaml` share, so that all of them read and write numbers the same way.

#include <nlohmann/json.hpp>
#include <string>
#include <yaml-cpp/yaml.h>

namespace mlctl::util {

// Shortest round-trip text of `value`, always with a '.' or an exponent so that YAML 1.1
// readers (PyYAML) see a float too: 0.01, 1.0, 1.0e-05; `.nan`, `.inf`, `-.inf`.
std::string format_yaml_double(double value);

// Emits `value` (block style; strings double-quoted, floats through `format_yaml_double`).
void emit_yaml(YAML::Emitter& out, const nlohmann::json& value);

// Converts a parsed YAML node: maps, sequences, and plain scalars by the YAML 1.2 core schema
// (null, true/false, integers, floats, .inf/.nan); quoted scalars stay strings.
nlohmann::json yaml_to_json(const YAML::Node& node);

// What a yaml-cpp error says, for a message: "line 3, column 5: illegal map value", and for
// text nested past yaml-cpp's limit (which it calls "bad file") "nested more than 499 levels
// deep" (Debian's yaml-cpp stops at 500).
std::string yaml_error(const YAML::Exception& e);

} // namespace mlctl::util

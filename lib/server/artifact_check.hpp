#pragma once
// Validation of an uploaded model artifact before it may become a version: a well-formed
// tar.gz with no entry that could escape (absolute paths, `..`, links, devices), under the
// unpacked-size cap, holding `model.yaml` and `model.onnx`; the card parses and the ONNX graph
// loads in the runtime (so does the autoencoder the card names); the contract's tensor names
// exist in the graph.

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mlctl::server {

struct ArtifactLimits {
  std::uint64_t max_unpacked_bytes = 1ull << 30; // all files together, counted while extracting
  std::uint64_t max_entries = 1000;
};

struct CheckedArtifact {
  std::vector<std::string> files; // sorted
  nlohmann::json card;            // model.yaml as JSON (apiVersion, kind, metadata, spec)
};

// Unpacks `tgz` into the empty directory `scratch` and validates it as described above.
// Throws `Error{invalid_input}` with a message naming the entry or field, e.g.
// "artifact: missing model.yaml", "artifact: ../x: path escapes the destination",
// "artifact: model.onnx: unsupported operator 'Conv' (node 3)".
CheckedArtifact check_artifact(const std::filesystem::path& tgz, const std::filesystem::path& scratch,
                               const ArtifactLimits& limits);

// Converts a YAML document to JSON: mappings to objects, sequences to arrays, plain scalars
// to null/bool/integer/number when they read as one, everything else to strings.
// Throws `Error{invalid_input}` "<name>: <yaml-cpp's message>" for invalid YAML.
nlohmann::json yaml_to_json(std::string_view yaml, std::string_view name);

} // namespace mlctl::server

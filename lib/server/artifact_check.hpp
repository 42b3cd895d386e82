#pragma once
// Validation of an uploaded model artifact before it may become a version: a well-formed
// tar.gz with no entry that could escape (absolute paths, `..`, links, devices), under the
// unpacked-size cap, holding `model.yaml` and `model.onnx`; the card parses and the ONNX graph
// loads in the runtime (so does the autoencoder the card names); the contract's tensor names
// exist in the graph.

#include <cstdint>
#include <filesystem>
#include <memory>
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

// Validates the tar.gz at `tgz` as described above, in one streaming pass that writes nothing.
// Throws `Error{invalid_input}` with a message naming the entry or field, e.g.
// "artifact: missing model.yaml", "artifact: ../x: '..' components are not allowed",
// "artifact: model.onnx: unsupported operator 'Conv' (node 3)".
CheckedArtifact check_artifact(const std::filesystem::path& tgz, const ArtifactLimits& limits);

// The same validation, run on a thread of its own while the bytes arrive (an upload is checked
// as it is received, not after). Feed the bytes in order, then call `finish`. Destroying it
// before `finish` abandons the check (and waits for the thread).
class ArtifactCheck {
public:
  explicit ArtifactCheck(ArtifactLimits limits);
  ~ArtifactCheck();
  ArtifactCheck(const ArtifactCheck&) = delete;
  ArtifactCheck& operator=(const ArtifactCheck&) = delete;

  // Passes the next bytes of the artifact (copied; waits while the check is several MiB
  // behind; returns at once when the check has already failed).
  void feed(const char* data, std::size_t size);
  // Marks the end of the bytes; the check finishes on its thread (call `finish` later).
  void end_input();
  // Waits for the check and returns its result; throws like `check_artifact`. `tgz` holds the
  // same bytes, complete: it is read again only when the card names an autoencoder file whose
  // bytes the streaming pass did not keep (any name not ending in `.onnx`).
  CheckedArtifact finish(const std::filesystem::path& tgz);

private:
  struct State;
  std::unique_ptr<State> m_state;
};

// Converts a YAML document to JSON: mappings to objects, sequences to arrays, plain scalars
// to null/bool/integer/number when they read as one, everything else to strings.
// Throws `Error{invalid_input}` "<name>: <yaml-cpp's message>" for invalid YAML.
nlohmann::json yaml_to_json(std::string_view yaml, std::string_view name);

} // namespace mlctl::server

#pragma once
// Step caching, as Kubeflow Pipelines does it: a step (fetch-mnist, train, catalog upload)
// computes a cache key from the digests of its inputs, its parameters and the mlctl build; a
// record (JSON) under the cache directory maps the key to the step's outputs and their
// digests. When the key matches and the recorded outputs still exist with the same digests,
// the step is skipped and its recorded result reused.
//
// Layout: `<cache root>/steps/<step>/<hex key>.json`, format "mlctl.step-cache/v1". The cache
// root is the one fetch-mnist keeps its downloads in (`--cache-dir`, env `MLCTL_CACHE_DIR`,
// default `$XDG_CACHE_HOME/mlctl`).

#include "util/progress.hpp"

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mlctl::pipeline {

inline constexpr std::string_view k_record_format = "mlctl.step-cache/v1";

// Returns "sha256:<hex>" of a file's bytes, or for a directory the SHA-256 of the lines
// "<sha256 hex>  <relative path>\n" of every regular file under it (recursively, '/'
// separators, sorted bytewise): for a flat directory the same value as
// `model::model_dir_digest`. Symbolic links and other special files are ignored.
// Throws `Error{not_found}` "<path>: no such file or directory", `Error{io}`.
std::string path_digest(const std::filesystem::path& path);

// How a local path enters a key or a record: absolute, normalised, symbolic links resolved as
// far as it exists, no trailing separator. `data`, `./data/` and the same directory from another
// working directory are one key (otherwise a run spelled one way re-ran the step and overwrote
// the outputs the other spelling had recorded, and neither was cached again).
std::filesystem::path key_path(const std::filesystem::path& path);

// What identifies one execution of a step.
struct StepSpec {
  std::string step;                                    // "fetch-mnist", "train", "catalog-upload"
  nlohmann::json inputs = nlohmann::json::object();     // name -> digest of an input
  nlohmann::json parameters = nlohmann::json::object(); // name -> value
};

// Returns "sha256:<hex>" of the canonical JSON (sorted keys, no spaces) of
// {"format", "step", "mlctl": "<version> (<git commit>)", "inputs", "parameters"}.
std::string cache_key(const StepSpec& spec);

// A file or directory the step wrote, with its `path_digest`.
struct StepOutput {
  std::string name;
  std::filesystem::path path; // absolute
  std::string digest;
};

struct StepRecord {
  std::string key;
  std::string step;
  std::string created_at; // RFC 3339 UTC
  std::string mlctl;      // "<version> (<git commit>)" of the build that ran the step
  nlohmann::json inputs = nlohmann::json::object();
  nlohmann::json parameters = nlohmann::json::object();
  std::vector<StepOutput> outputs;
  nlohmann::json result; // what the step printed with `-o json` (without "cached")
  double seconds = 0;    // wall time of the run that made the record
};

// Return the record as the JSON stored on disk, and back. `from_json` throws
// `Error{corrupt}` "<what>: ..." naming the field for anything else.
nlohmann::json record_to_json(const StepRecord& record);
StepRecord record_from_json(const nlohmann::json& j, std::string_view what);

struct Lookup {
  std::optional<StepRecord> record; // set on a hit
  std::string miss;                 // on a miss: why ("no record", "<path>: changed since ...")
};

class StepCache {
public:
  // `root` is the cache root (records go to `root/steps`); `enabled` false (--no-cache)
  // makes every lookup miss ("caching disabled") while runs are still recorded.
  StepCache(std::filesystem::path root, bool enabled);

  bool enabled() const noexcept { return m_enabled; }
  // Returns the record file of `key` for `step`.
  std::filesystem::path record_path(std::string_view step, std::string_view key) const;

  // Looks the key up: a hit needs a readable record of the same key and step and every
  // recorded output present with its recorded digest. An unreadable or corrupt record is a
  // miss (saying so), never an error. Throws only `Error{io}` from hashing the outputs.
  Lookup lookup(std::string_view step, std::string_view key) const;
  // Writes the record atomically (replacing an older one of the same key). Throws `Error{io}`.
  void store(const StepRecord& record) const;

private:
  std::filesystem::path m_root;
  bool m_enabled;
};

// What a step's body returns: the result it printed and the outputs it wrote.
struct StepOutcome {
  nlohmann::json result;
  std::vector<std::pair<std::string, std::filesystem::path>> outputs; // name, path
};

struct StepRun {
  nlohmann::json result;
  bool cached = false;
  std::string key;
  std::string note; // how a hit was served ("key sha256:1234abcd..., recorded <time>")
};

// Runs a step through the cache: computes the key of `spec`, and on a hit whose `still_valid`
// (may be empty; e.g. the registry still has the version) agrees, returns the recorded result
// with `cached` true and logs "<step>: cached (...)". Otherwise runs `body`, hashes its
// outputs, stores a record and returns its result; logs why it was not cached with --verbose
// detail through `debug` (may be empty). Errors of `body` propagate, no record is written;
// a record that cannot be written is logged, not thrown.
StepRun run_step(const StepCache& cache, const StepSpec& spec,
                 const std::function<StepOutcome()>& body,
                 const std::function<bool(const StepRecord&)>& still_valid,
                 const util::LogFn& log, const util::LogFn& debug);

} // namespace mlctl::pipeline

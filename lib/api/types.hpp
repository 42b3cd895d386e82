#pragma once
// Wire types of the registry API and their JSON: the one definition the server writes and
// the client reads. `to_json`/`from_json` follow nlohmann's ADL convention; `from_json` uses
// `at()` so a missing field throws (callers wrap it with `parse_json`).

#include "util/error.hpp"

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mlctl::api {

// A model version. Listings carry the summary fields; `GET .../versions/{v}` and uploads
// carry the details too (`detailed` = true).
struct VersionInfo {
  std::string name;
  std::int64_t version = 0;
  std::string sha256;    // of the artifact (tar.gz), lowercase hex
  std::uint64_t size = 0; // artifact bytes
  std::string created_at; // RFC 3339 UTC, milliseconds
  std::string uploader;
  std::vector<std::string> aliases;       // sorted
  std::map<std::string, std::string> tags;

  bool detailed = false;
  nlohmann::json contract;   // spec.contract of model.yaml
  nlohmann::json lineage;    // spec.lineage
  nlohmann::json metrics;    // spec.metrics (null when absent)
  nlohmann::json monitoring; // spec.monitoring (null when absent)
  std::vector<std::string> files;   // files of the artifact, sorted
  std::vector<std::string> used_by; // e.g. "application/mnist-app"; deletion is refused while not empty
  bool artifact_missing = false;    // its file is gone from the server's data directory

  // Returns `name:version`.
  std::string ref() const;
};

struct UploadResult {
  bool created = false; // false: identical bytes were already registered (idempotent upload)
  bool restored = false; // those bytes had been lost from the data directory and are back
  VersionInfo version;
};

struct VersionList {
  std::string name;
  std::vector<VersionInfo> versions;
  std::string next_page_token; // empty on the last page
};

struct ModelSummary {
  std::string name;
  std::int64_t latest_version = 0; // 0 when every version was deleted
  std::int64_t version_count = 0;
  std::string created_at;
  std::string updated_at;
  std::map<std::string, std::int64_t> aliases;
};

struct ModelList {
  std::vector<ModelSummary> models;
  std::string next_page_token;
};

struct AliasInfo {
  std::string name;
  std::string alias;
  std::int64_t version = 0;
  std::string updated_at;
};

struct AliasList {
  std::string name;
  std::vector<AliasInfo> aliases;
};

// Body of `PUT .../aliases/{alias}`.
struct AliasUpdate {
  std::int64_t version = 0;
};

// Body of `PATCH .../versions/{v}/tags`.
struct TagUpdate {
  std::map<std::string, std::string> set;
  std::vector<std::string> remove;
};

// One entry of the audit log.
struct Event {
  std::int64_t id = 0;    // increasing; `?since=<id>` returns later events
  std::string time;       // RFC 3339 UTC
  std::string actor;      // who asked (the uploader / user header) and from where
  std::string action;     // "version.created", "version.restored", "version.deleted", "alias.set",
                          // "alias.deleted", "tags.updated", "gc", ...
  std::string name;       // model (or, later, application) name; empty for global events
  std::optional<std::int64_t> version;
  std::string alias;
  nlohmann::json detail = nlohmann::json::object();
};

struct EventList {
  std::vector<Event> events;
  std::int64_t next_since = 0; // pass as `since` to continue after the last event
};

struct DeleteResult {
  std::string name;
  std::int64_t version = 0;
  bool artifact_removed = false; // false when another version shares the bytes
  std::uint64_t bytes_freed = 0;
};

struct GcReport {
  bool dry_run = false;
  std::int64_t files_removed = 0;
  std::uint64_t bytes_freed = 0;
  std::vector<std::string> removed; // paths relative to the data directory
};

struct Health {
  std::string status; // "ok" (live), "ready", "starting"
  std::string version;
};

void to_json(nlohmann::json& j, const VersionInfo& v);
void from_json(const nlohmann::json& j, VersionInfo& v);
void to_json(nlohmann::json& j, const UploadResult& v);
void from_json(const nlohmann::json& j, UploadResult& v);
void to_json(nlohmann::json& j, const VersionList& v);
void from_json(const nlohmann::json& j, VersionList& v);
void to_json(nlohmann::json& j, const ModelSummary& v);
void from_json(const nlohmann::json& j, ModelSummary& v);
void to_json(nlohmann::json& j, const ModelList& v);
void from_json(const nlohmann::json& j, ModelList& v);
void to_json(nlohmann::json& j, const AliasInfo& v);
void from_json(const nlohmann::json& j, AliasInfo& v);
void to_json(nlohmann::json& j, const AliasList& v);
void from_json(const nlohmann::json& j, AliasList& v);
void to_json(nlohmann::json& j, const AliasUpdate& v);
void from_json(const nlohmann::json& j, AliasUpdate& v);
void to_json(nlohmann::json& j, const TagUpdate& v);
void from_json(const nlohmann::json& j, TagUpdate& v);
void to_json(nlohmann::json& j, const Event& v);
void from_json(const nlohmann::json& j, Event& v);
void to_json(nlohmann::json& j, const EventList& v);
void from_json(const nlohmann::json& j, EventList& v);
void to_json(nlohmann::json& j, const DeleteResult& v);
void from_json(const nlohmann::json& j, DeleteResult& v);
void to_json(nlohmann::json& j, const GcReport& v);
void from_json(const nlohmann::json& j, GcReport& v);
void to_json(nlohmann::json& j, const Health& v);
void from_json(const nlohmann::json& j, Health& v);

// Returns exactly `nlohmann::json(list).dump()` (invalid UTF-8 replaced), written without
// building a JSON tree: a page may hold 10,000 versions.
std::string to_json_text(const VersionList& list);

// Parses `text` as JSON and converts it to `T`. Throws `Error{kind}` "<what>: <problem>"
// for invalid JSON or a missing/mistyped field.
template <class T>
T parse_json(std::string_view text, std::string_view what, ErrorKind kind = ErrorKind::invalid_input) {
  try {
    return nlohmann::json::parse(text).get<T>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(kind, std::string(what) + ": " + e.what());
  }
}

// Converts already parsed JSON to `T`, with the same errors as `parse_json`.
template <class T>
T from_json_value(const nlohmann::json& json, std::string_view what, ErrorKind kind = ErrorKind::invalid_input) {
  try {
    return json.get<T>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(kind, std::string(what) + ": " + e.what());
  }
}

} // namespace mlctl::api

#include "api/types.hpp"

#include <algorithm>

namespace mlctl::api {

using nlohmann::json;

namespace {

template <class T>
void get_optional(const json& j, const char* key, T& out) {
  if (const auto it = j.find(key); it != j.end() && !it->is_null()) {
    it->get_to(out);
  }
}

json or_null(const json& j) { return j.is_discarded() ? json() : j; }

} // namespace

std::string VersionInfo::ref() const { return name + ":" + std::to_string(version); }

void to_json(json& j, const VersionInfo& v) {
  j = json{{"name", v.name},           {"version", v.version},       {"ref", v.ref()},
           {"sha256", v.sha256},       {"size", v.size},             {"created_at", v.created_at},
           {"uploader", v.uploader},   {"aliases", v.aliases},       {"tags", v.tags}};
  if (v.detailed) {
    j["contract"] = or_null(v.contract);
    j["lineage"] = or_null(v.lineage);
    j["metrics"] = or_null(v.metrics);
    j["monitoring"] = or_null(v.monitoring);
    j["files"] = v.files;
    j["used_by"] = v.used_by;
    j["artifact_missing"] = v.artifact_missing;
  }
}

void from_json(const json& j, VersionInfo& v) {
  j.at("name").get_to(v.name);
  j.at("version").get_to(v.version);
  j.at("sha256").get_to(v.sha256);
  j.at("size").get_to(v.size);
  j.at("created_at").get_to(v.created_at);
  get_optional(j, "uploader", v.uploader);
  get_optional(j, "aliases", v.aliases);
  get_optional(j, "tags", v.tags);
  v.detailed = j.contains("contract");
  if (v.detailed) {
    v.contract = j.at("contract");
    v.lineage = j.value("lineage", json());
    v.metrics = j.value("metrics", json());
    v.monitoring = j.value("monitoring", json());
    get_optional(j, "files", v.files);
    get_optional(j, "used_by", v.used_by);
    v.artifact_missing = j.value("artifact_missing", false);
  }
}

namespace {

// Appends `s` as a JSON string the way nlohmann's dump does: a plain-ASCII fast path, and
// nlohmann itself for anything needing escapes or UTF-8 checks.
void append_string(std::string& out, std::string_view s) {
  const bool plain = std::all_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x20 && u < 0x7f && c != '"' && c != '\\';
  });
  if (plain) {
    out += '"';
    out += s;
    out += '"';
  } else {
    out += json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
  }
}

void append_summary(std::string& out, const VersionInfo& v) {
  // Keys in nlohmann's (sorted) order.
  out += "{\"aliases\":[";
  for (std::size_t i = 0; i < v.aliases.size(); ++i) {
    if (i != 0) {
      out += ',';
    }
    append_string(out, v.aliases[i]);
  }
  out += "],\"created_at\":";
  append_string(out, v.created_at);
  out += ",\"name\":";
  append_string(out, v.name);
  out += ",\"ref\":";
  append_string(out, v.ref());
  out += ",\"sha256\":";
  append_string(out, v.sha256);
  out += ",\"size\":";
  out += std::to_string(v.size);
  out += ",\"tags\":{";
  bool first = true;
  for (const auto& [k, val] : v.tags) {
    if (!first) {
      out += ',';
    }
    first = false;
    append_string(out, k);
    out += ':';
    append_string(out, val);
  }
  out += "},\"uploader\":";
  append_string(out, v.uploader);
  out += ",\"version\":";
  out += std::to_string(v.version);
  out += '}';
}

} // namespace

std::string to_json_text(const VersionList& list) {
  if (std::any_of(list.versions.begin(), list.versions.end(), [](const VersionInfo& v) { return v.detailed; })) {
    return json(list).dump(-1, ' ', false, json::error_handler_t::replace);
  }
  std::string out;
  out.reserve(64 + list.versions.size() * 256);
  out += "{\"name\":";
  append_string(out, list.name);
  out += ",\"next_page_token\":";
  append_string(out, list.next_page_token);
  out += ",\"versions\":[";
  for (std::size_t i = 0; i < list.versions.size(); ++i) {
    if (i != 0) {
      out += ',';
    }
    append_summary(out, list.versions[i]);
  }
  out += "]}";
  return out;
}

void to_json(json& j, const UploadResult& v) {
  j = json{{"created", v.created}, {"restored", v.restored}, {"version", v.version}};
}
void from_json(const json& j, UploadResult& v) {
  j.at("created").get_to(v.created);
  v.restored = j.value("restored", false);
  j.at("version").get_to(v.version);
}

void to_json(json& j, const VersionList& v) {
  j = json{{"name", v.name}, {"versions", v.versions}, {"next_page_token", v.next_page_token}};
}
void from_json(const json& j, VersionList& v) {
  get_optional(j, "name", v.name);
  j.at("versions").get_to(v.versions);
  get_optional(j, "next_page_token", v.next_page_token);
}

void to_json(json& j, const ModelSummary& v) {
  j = json{{"name", v.name},
           {"latest_version", v.latest_version},
           {"version_count", v.version_count},
           {"created_at", v.created_at},
           {"updated_at", v.updated_at},
           {"aliases", v.aliases}};
}
void from_json(const json& j, ModelSummary& v) {
  j.at("name").get_to(v.name);
  j.at("latest_version").get_to(v.latest_version);
  j.at("version_count").get_to(v.version_count);
  get_optional(j, "created_at", v.created_at);
  get_optional(j, "updated_at", v.updated_at);
  get_optional(j, "aliases", v.aliases);
}

void to_json(json& j, const ModelList& v) {
  j = json{{"models", v.models}, {"next_page_token", v.next_page_token}};
}
void from_json(const json& j, ModelList& v) {
  j.at("models").get_to(v.models);
  get_optional(j, "next_page_token", v.next_page_token);
}

void to_json(json& j, const AliasInfo& v) {
  j = json{{"name", v.name}, {"alias", v.alias}, {"version", v.version}, {"updated_at", v.updated_at}};
}
void from_json(const json& j, AliasInfo& v) {
  j.at("name").get_to(v.name);
  j.at("alias").get_to(v.alias);
  j.at("version").get_to(v.version);
  get_optional(j, "updated_at", v.updated_at);
}

void to_json(json& j, const AliasList& v) { j = json{{"name", v.name}, {"aliases", v.aliases}}; }
void from_json(const json& j, AliasList& v) {
  get_optional(j, "name", v.name);
  j.at("aliases").get_to(v.aliases);
}

void to_json(json& j, const AliasUpdate& v) { j = json{{"version", v.version}}; }
void from_json(const json& j, AliasUpdate& v) { j.at("version").get_to(v.version); }

void to_json(json& j, const TagUpdate& v) { j = json{{"set", v.set}, {"remove", v.remove}}; }
void from_json(const json& j, TagUpdate& v) {
  if (!j.is_object()) {
    throw json::type_error::create(302, "expected an object {\"set\": {...}, \"remove\": [...]}", &j);
  }
  get_optional(j, "set", v.set);
  get_optional(j, "remove", v.remove);
}

void to_json(json& j, const Event& v) {
  j = json{{"id", v.id},     {"time", v.time}, {"actor", v.actor},   {"action", v.action},
           {"name", v.name}, {"version", nullptr}, {"alias", v.alias}, {"detail", v.detail}};
  if (v.version) {
    j["version"] = *v.version;
  }
}
void from_json(const json& j, Event& v) {
  j.at("id").get_to(v.id);
  j.at("time").get_to(v.time);
  get_optional(j, "actor", v.actor);
  j.at("action").get_to(v.action);
  get_optional(j, "name", v.name);
  v.version.reset();
  if (const auto it = j.find("version"); it != j.end() && !it->is_null()) {
    v.version = it->get<std::int64_t>();
  }
  get_optional(j, "alias", v.alias);
  v.detail = j.value("detail", json::object());
}

void to_json(json& j, const EventList& v) { j = json{{"events", v.events}, {"next_since", v.next_since}}; }
void from_json(const json& j, EventList& v) {
  j.at("events").get_to(v.events);
  get_optional(j, "next_since", v.next_since);
}

void to_json(json& j, const DeleteResult& v) {
  j = json{{"name", v.name},
           {"version", v.version},
           {"ref", v.name + ":" + std::to_string(v.version)},
           {"artifact_removed", v.artifact_removed},
           {"bytes_freed", v.bytes_freed}};
}
void from_json(const json& j, DeleteResult& v) {
  j.at("name").get_to(v.name);
  j.at("version").get_to(v.version);
  get_optional(j, "artifact_removed", v.artifact_removed);
  get_optional(j, "bytes_freed", v.bytes_freed);
}

void to_json(json& j, const GcReport& v) {
  j = json{{"dry_run", v.dry_run},
           {"files_removed", v.files_removed},
           {"bytes_freed", v.bytes_freed},
           {"removed", v.removed}};
}
void from_json(const json& j, GcReport& v) {
  get_optional(j, "dry_run", v.dry_run);
  j.at("files_removed").get_to(v.files_removed);
  j.at("bytes_freed").get_to(v.bytes_freed);
  get_optional(j, "removed", v.removed);
}

void to_json(json& j, const Health& v) { j = json{{"status", v.status}, {"version", v.version}}; }
void from_json(const json& j, Health& v) {
  j.at("status").get_to(v.status);
  get_optional(j, "version", v.version);
}

} // namespace mlctl::api

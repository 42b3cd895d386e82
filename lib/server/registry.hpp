#pragma once
// The model registry: names, versions (numbered per name, never reused), content-addressed
// artifacts, aliases, tags, usage by applications and the audit log, in SQLite (WAL) under
// the data directory. Every change is one transaction; a crash at any moment leaves either
// the whole change or none of it (stray files are removed by `recover()` and `gc()`).

#include "api/names.hpp"
#include "api/types.hpp"
#include "server/artifact_check.hpp"
#include "server/artifact_store.hpp"
#include "server/events.hpp"
#include "server/sqlite.hpp"

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mlctl::server {

struct ModelQuery {
  std::string prefix;                                      // name prefix
  std::vector<std::pair<std::string, std::string>> tags;   // models having a version with each tag
  std::int64_t limit = 100;                                // 1..10000
  std::string page_token;                                  // the last name of the previous page
};

struct VersionQuery {
  std::vector<std::pair<std::string, std::string>> tags; // versions having each tag
  std::int64_t limit = 100;                              // 1..10000
  std::int64_t page_token = 0;                           // the last version of the previous page
  bool descending = false;
};

// Parses `key=value` (a tag filter or assignment). Throws `Error{invalid_input}`.
std::pair<std::string, std::string> parse_tag_assignment(std::string_view text);

class Registry {
public:
  // Opens the registry in `data_dir` (created when missing): `registry.db`, schema migrations,
  // the artifact store. `clock` defaults to the system clock. Throws `Error{io|corrupt|conflict}`.
  explicit Registry(const std::filesystem::path& data_dir, Clock clock = {});

  struct RecoveryReport {
    std::int64_t temporaries_removed = 0;
    std::int64_t orphans_removed = 0;
    std::uint64_t bytes_freed = 0;
    std::vector<std::string> missing_artifacts; // versions whose bytes are gone (never expected)
  };
  // Removes what an interrupted run left: everything under tmp/, artifact files no version
  // references. Call once at start, before serving.
  RecoveryReport recover();

  ArtifactStore& artifacts() noexcept { return m_store; }
  // The connection pool of the platform database (later modules keep their tables there).
  sql::ConnectionPool& pool() noexcept { return m_pool; }
  // Serialises writers inside this process (SQLite's lock still guards other processes).
  std::mutex& write_mutex() noexcept { return m_write_mutex; }
  std::string now() const;

  // Registers the finished, validated upload as the next version of `name`, or returns the
  // existing version with the same sha256 (`created` = false) unless `force_new`.
  api::UploadResult add_version(std::string_view name, ArtifactStore::Upload& upload,
                                const CheckedArtifact& checked, bool force_new, const Actor& actor);

  api::ModelList list_models(const ModelQuery& query);
  // Throws `Error{not_found}` "model 'x' not found".
  api::ModelSummary get_model(std::string_view name);
  api::VersionList list_versions(std::string_view name, const VersionQuery& query);
  // Returns the detailed version. Throws `Error{not_found}` "model x:3 not found" /
  // "model x@prod not found (no such alias)".
  api::VersionInfo get_version(std::string_view name, const api::VersionSelector& selector);
  // Returns the version number `selector` names. Throws `Error{not_found}`.
  std::int64_t resolve(std::string_view name, const api::VersionSelector& selector);
  // Returns what a reference to `name` can name, for messages about one that names nothing:
  // "mnist's latest version is 4; its aliases: production=3", "mnist has no versions",
  // "no model 'mnist' is registered".
  std::string what_exists(std::string_view name);

  struct ArtifactFile {
    std::int64_t version = 0;
    std::string sha256;
    std::uint64_t size = 0;
    std::filesystem::path path;
  };
  ArtifactFile artifact(std::string_view name, const api::VersionSelector& selector);

  // Deletes a version; its bytes go when no other version shares them. Throws
  // `Error{conflict}` naming the holders while the version is in use, `Error{not_found}`.
  api::DeleteResult delete_version(std::string_view name, const api::VersionSelector& selector,
                                   const Actor& actor);

  // Points `alias` at `version` (creating or moving it) atomically. Throws `Error{not_found}`.
  api::AliasInfo set_alias(std::string_view name, std::string_view alias, std::int64_t version,
                           const Actor& actor);
  // Throws `Error{not_found}` when the alias does not exist.
  void delete_alias(std::string_view name, std::string_view alias, const Actor& actor);
  api::AliasList list_aliases(std::string_view name);

  // Sets and removes tags of one version; returns the version. Throws `Error{invalid_input}`
  // for bad keys/values, `Error{not_found}`.
  api::VersionInfo update_tags(std::string_view name, const api::VersionSelector& selector,
                               const api::TagUpdate& update, const Actor& actor);

  api::EventList events(const EventQuery& query);

  // Removes artifact files no version references and abandoned temporaries; with `dry_run`
  // only reports them.
  api::GcReport gc(bool dry_run, const Actor& actor);

private:
  std::filesystem::path m_data_dir;
  Clock m_clock;
  ArtifactStore m_store;
  sql::ConnectionPool m_pool;
  std::mutex m_write_mutex;
};

// The usage hook for applications: inside the caller's transaction, replaces the versions
// `holder` (e.g. "application/mnist-app") uses. `delete_version` refuses versions in use.
void set_version_usage(sql::Database& db, std::string_view holder,
                       const std::vector<std::pair<std::string, std::int64_t>>& versions);

// Returns the holders of `name:version`, sorted.
std::vector<std::string> version_users(sql::Database& db, std::string_view name, std::int64_t version);

} // namespace mlctl::server

#pragma once
// The REST client of the platform (`mlctl serve`), on top of `http_perform`: base URL, bearer
// token, typed calls with the wire types of lib/api, and the error mapping back to
// `ErrorKind` (a 409 is `conflict` here as on the server; a server that cannot be reached is
// `unavailable`, which `mlctl` turns into exit code 4).

#include "api/names.hpp"
#include "api/types.hpp"
#include "client/http.hpp"
#include "util/progress.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace mlctl::client {

struct ApiClientOptions {
  std::string server;                             // base URL, e.g. http://127.0.0.1:9090
  std::string server_source; // where `server` came from: "--server", "cluster 'prod'", "default"
  std::string token;                              // bearer token; empty = none
  std::string user;                               // sent as X-Mlctl-User (the audit log's actor)
  std::filesystem::path ca_file;                  // CAs to trust for https (HttpOptions::ca_file)
  std::chrono::milliseconds timeout{60000};       // per call, except artifact transfers
  std::chrono::milliseconds connect_timeout{3000};
  int retries = 3;                                // idempotent calls, on connect errors and 502/503/504
  util::LogFn log;                                // retry notes; may be empty
  util::ProgressFn progress;                      // upload/download bytes; may be empty
};

// The HTTP options every call of a platform client shares: CAs, connect timeout, retries, log.
// Callers set the rest (the transfer timeout, which statuses are retried, progress).
HttpOptions http_options(const ApiClientOptions& options);

struct ModelListFilter {
  std::string prefix;
  std::vector<std::string> tags; // "k=v"
  std::int64_t limit = 0;        // 0 = server default
  std::string page_token;
};

struct VersionListFilter {
  std::vector<std::string> tags; // "k=v"
  std::int64_t limit = 0;
  std::string page_token;
  bool descending = false;
};

struct EventFilter {
  std::string since; // event id or RFC 3339 time
  std::string until;
  std::string name;
  std::int64_t limit = 0;
};

struct DownloadedArtifact {
  std::int64_t version = 0;
  std::string sha256; // from the server's ETag, verified against the bytes
  std::uint64_t size = 0;
};

class ApiClient {
public:
  // Throws `Error{invalid_input}` unless `options.server` is an http:// or https:// URL.
  explicit ApiClient(ApiClientOptions options);

  const std::string& server() const noexcept { return m_options.server; }

  // GET /readyz. Throws `Error{unavailable}` when the server is not ready or not reachable.
  api::Health ready();

  // Uploads a model artifact (tar.gz) as the next version of `name`.
  api::UploadResult upload(std::string_view name, const std::filesystem::path& tgz, bool force_new);
  api::ModelList list_models(const ModelListFilter& filter);
  api::ModelSummary get_model(std::string_view name);
  api::VersionList list_versions(std::string_view name, const VersionListFilter& filter);
  api::VersionInfo get_version(const api::ModelRef& ref);
  // Streams the artifact to `out_file` (atomically) and checks its sha256 against the ETag.
  // Throws `Error{corrupt}` "<url>: sha256 mismatch: ..." when they differ.
  DownloadedArtifact download_artifact(const api::ModelRef& ref, const std::filesystem::path& out_file);
  api::DeleteResult delete_version(const api::ModelRef& ref);
  api::AliasInfo set_alias(std::string_view name, std::string_view alias, std::int64_t version);
  void delete_alias(std::string_view name, std::string_view alias);
  api::AliasList list_aliases(std::string_view name);
  api::VersionInfo update_tags(const api::ModelRef& ref, const api::TagUpdate& update);
  api::EventList events(const EventFilter& filter);
  api::GcReport gc(bool dry_run);

  // Generic JSON call for routes without a typed method (later features): `body` is sent
  // when not null. `idempotent` enables retries on 502/503/504. Returns the parsed body
  // (null for an empty one). Throws the mapped `Error` for non-2xx answers.
  nlohmann::json call(const std::string& method, const std::string& path_and_query,
                      const nlohmann::json& body = nullptr, bool idempotent = true);

private:
  std::string url(const std::string& path_and_query) const;
  std::vector<std::pair<std::string, std::string>> headers() const;

  ApiClientOptions m_options;
};

// Returns the error for a non-2xx response: the kind from the status and the body's code
// (see `api::error_kind_for`), the server's message (with the URL for statuses that need
// it, and a hint for 401).
Error error_from_response(const std::string& url, long status, const std::string& body);

} // namespace mlctl::client

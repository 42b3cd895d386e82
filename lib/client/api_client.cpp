#include "client/api_client.hpp"

#include "api/errors.hpp"
#include "api/routes.hpp"
#include "artifact/sha256.hpp"
#include "client/http.hpp"
#include "util/error.hpp"

namespace mlctl::client {

namespace {

std::string strip_quotes(std::string s) {
  if (s.rfind("W/", 0) == 0) {
    s = s.substr(2);
  }
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') {
    s = s.substr(1, s.size() - 2);
  }
  return s;
}

template <class T>
T parse_response(const HttpResponse& response, const std::string& url) {
  return api::parse_json<T>(response.body, url + ": unexpected response", ErrorKind::internal);
}

} // namespace

Error error_from_response(const std::string& url, long status, const std::string& body) {
  const auto parsed = api::parse_error_body(body);
  const std::string code = parsed ? parsed->code : std::string();
  const auto kind = api::error_kind_for(static_cast<int>(status), code);
  std::string message = parsed && !parsed->message.empty() ? parsed->message : "HTTP " + std::to_string(status);
  if (status == 401) {
    return Error(kind, url + ": " + message +
                           " (pass --token, set MLCTL_TOKEN, or 'mlctl cluster add NAME --server URL --token-file F')");
  }
  if (status == 507) {
    return Error(kind, url + ": the server's disk is full (HTTP 507): " + message);
  }
  if (!parsed || status >= 500) {
    return Error(kind, url + ": " + (status >= 500 ? "server error (HTTP " + std::to_string(status) + "): " : "") +
                           message);
  }
  return Error(kind, message);
}

ApiClient::ApiClient(ApiClientOptions options) : m_options(std::move(options)) {
  auto& s = m_options.server;
  while (!s.empty() && s.back() == '/') {
    s.pop_back();
  }
  if (s.rfind("http://", 0) != 0 && s.rfind("https://", 0) != 0) {
    throw Error(ErrorKind::invalid_input,
                "server '" + s + "': expected an http:// or https:// URL, e.g. http://127.0.0.1:9090");
  }
}

std::string ApiClient::url(const std::string& path_and_query) const { return m_options.server + path_and_query; }

std::vector<std::pair<std::string, std::string>> ApiClient::headers() const {
  std::vector<std::pair<std::string, std::string>> h{{"Accept", "application/json"}};
  if (!m_options.token.empty()) {
    h.emplace_back("Authorization", "Bearer " + m_options.token);
  }
  if (!m_options.user.empty()) {
    h.emplace_back("X-Mlctl-User", m_options.user);
  }
  return h;
}

HttpOptions http_options(const ApiClientOptions& options) {
  HttpOptions o;
  o.ca_file = options.ca_file;
  o.connect_timeout = options.connect_timeout;
  o.retries = options.retries;
  o.log = options.log;
  if (options.server_source == "default") {
    o.connect_failure_hint = " (is mlctl serve running there? No --server, MLCTL_SERVER or "
                             "current cluster was given: this is the default address)";
  } else if (!options.server_source.empty()) {
    o.connect_failure_hint =
        " (is mlctl serve running there? The address comes from " +
        (options.server_source == "--server" ? std::string("--server or MLCTL_SERVER")
                                             : options.server_source + ": mlctl cluster list") +
        ")";
  }
  return o;
}

nlohmann::json ApiClient::call(const std::string& method, const std::string& path_and_query,
                               const nlohmann::json& body, bool idempotent) {
  HttpRequest req;
  req.method = method;
  req.url = url(path_and_query);
  req.headers = headers();
  if (!body.is_null()) {
    req.body = body.dump();
    req.headers.emplace_back("Content-Type", "application/json");
  }
  auto opts = http_options(m_options);
  opts.timeout = m_options.timeout;
  opts.retry_server_errors = idempotent;
  const auto res = http_perform(req, opts);
  if (res.status < 200 || res.status >= 300) {
    throw error_from_response(req.url, res.status, res.body);
  }
  if (res.body.empty()) {
    return nullptr;
  }
  auto json = nlohmann::json::parse(res.body, nullptr, false);
  if (json.is_discarded()) {
    throw Error(ErrorKind::internal, req.url + ": unexpected response: not JSON");
  }
  return json;
}

api::Health ApiClient::ready() {
  return api::from_json_value<api::Health>(call("GET", std::string(api::routes::k_readyz)), url("/readyz"),
                                           ErrorKind::internal);
}

api::UploadResult ApiClient::upload(std::string_view name, const std::filesystem::path& tgz, bool force_new) {
  api::validate_name(name);
  HttpRequest req;
  req.method = "POST";
  req.url = url(api::routes::versions(name) + api::routes::query({{"force_new", force_new ? "true" : ""}}));
  req.headers = headers();
  req.headers.emplace_back("Content-Type", "application/gzip");
  req.body_file = tgz;
  auto opts = http_options(m_options);
  opts.timeout = std::chrono::milliseconds(0);
  // Same bytes give the same version, so a retried upload cannot create a second one,
  // unless force_new asks for exactly that.
  opts.retry_server_errors = !force_new;
  opts.progress = m_options.progress;
  const auto res = http_perform(req, opts);
  if (res.status < 200 || res.status >= 300) {
    throw error_from_response(req.url, res.status, res.body);
  }
  return parse_response<api::UploadResult>(res, req.url);
}

api::ModelList ApiClient::list_models(const ModelListFilter& f) {
  std::vector<std::pair<std::string, std::string>> q{{"prefix", f.prefix},
                                                     {"limit", f.limit > 0 ? std::to_string(f.limit) : ""},
                                                     {"page_token", f.page_token}};
  for (const auto& t : f.tags) {
    q.emplace_back("tag", t);
  }
  const auto path = api::routes::models() + api::routes::query(q);
  return api::from_json_value<api::ModelList>(call("GET", path), url(path), ErrorKind::internal);
}

api::ModelSummary ApiClient::get_model(std::string_view name) {
  api::validate_name(name);
  const auto path = api::routes::model(name);
  return api::from_json_value<api::ModelSummary>(call("GET", path), url(path), ErrorKind::internal);
}

api::VersionList ApiClient::list_versions(std::string_view name, const VersionListFilter& f) {
  api::validate_name(name);
  std::vector<std::pair<std::string, std::string>> q{{"limit", f.limit > 0 ? std::to_string(f.limit) : ""},
                                                     {"page_token", f.page_token},
                                                     {"order", f.descending ? "desc" : ""}};
  for (const auto& t : f.tags) {
    q.emplace_back("tag", t);
  }
  const auto path = api::routes::versions(name) + api::routes::query(q);
  return api::from_json_value<api::VersionList>(call("GET", path), url(path), ErrorKind::internal);
}

api::VersionInfo ApiClient::get_version(const api::ModelRef& ref) {
  const auto path = api::routes::version(ref.name, ref.selector());
  return api::from_json_value<api::VersionInfo>(call("GET", path), url(path), ErrorKind::internal);
}

DownloadedArtifact ApiClient::download_artifact(const api::ModelRef& ref, const std::filesystem::path& out_file) {
  HttpRequest req;
  req.method = "GET";
  req.url = url(api::routes::artifact(ref.name, ref.selector()));
  req.headers = headers();
  req.response_file = out_file;
  auto opts = http_options(m_options);
  opts.timeout = std::chrono::milliseconds(0);
  opts.progress = m_options.progress;
  const auto res = http_perform(req, opts);
  if (res.status < 200 || res.status >= 300) {
    throw error_from_response(req.url, res.status, res.body);
  }
  DownloadedArtifact out;
  const auto header = [&](const char* key) {
    const auto it = res.headers.find(key);
    return it == res.headers.end() ? std::string() : it->second;
  };
  const auto expected = strip_quotes(header("etag"));
  const auto version = header("x-mlctl-version");
  out.version = version.empty() ? 0 : std::stoll(version);
  out.sha256 = artifact::sha256_file(out_file);
  std::error_code ec;
  out.size = std::filesystem::file_size(out_file, ec);
  if (!expected.empty() && expected != out.sha256) {
    std::filesystem::remove(out_file, ec);
    throw Error(ErrorKind::corrupt, req.url + ": sha256 mismatch: expected " + expected + ", got " + out.sha256);
  }
  return out;
}

api::DeleteResult ApiClient::delete_version(const api::ModelRef& ref) {
  const auto path = api::routes::version(ref.name, ref.selector());
  return api::from_json_value<api::DeleteResult>(call("DELETE", path), url(path), ErrorKind::internal);
}

api::AliasInfo ApiClient::set_alias(std::string_view name, std::string_view alias, std::int64_t version) {
  api::validate_name(name);
  api::validate_alias(alias);
  const auto path = api::routes::alias(name, alias);
  return api::from_json_value<api::AliasInfo>(call("PUT", path, api::AliasUpdate{version}), url(path),
                                              ErrorKind::internal);
}

void ApiClient::delete_alias(std::string_view name, std::string_view alias) {
  api::validate_name(name);
  api::validate_alias(alias);
  call("DELETE", api::routes::alias(name, alias));
}

api::AliasList ApiClient::list_aliases(std::string_view name) {
  api::validate_name(name);
  const auto path = api::routes::aliases(name);
  return api::from_json_value<api::AliasList>(call("GET", path), url(path), ErrorKind::internal);
}

api::VersionInfo ApiClient::update_tags(const api::ModelRef& ref, const api::TagUpdate& update) {
  const auto path = api::routes::tags(ref.name, ref.selector());
  return api::from_json_value<api::VersionInfo>(call("PATCH", path, update), url(path), ErrorKind::internal);
}

api::EventList ApiClient::events(const EventFilter& f) {
  const auto path = api::routes::events() + api::routes::query({{"since", f.since},
                                                                {"until", f.until},
                                                                {"name", f.name},
                                                                {"limit", f.limit > 0 ? std::to_string(f.limit) : ""}});
  return api::from_json_value<api::EventList>(call("GET", path), url(path), ErrorKind::internal);
}

api::GcReport ApiClient::gc(bool dry_run) {
  const auto path = api::routes::gc() + api::routes::query({{"dry_run", dry_run ? "true" : ""}});
  return api::from_json_value<api::GcReport>(call("POST", path, nullptr, true), url(path), ErrorKind::internal);
}

} // namespace mlctl::client

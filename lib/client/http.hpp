#pragma once
// HTTP over libcurl: the project's one HTTP client. A single call (`http_perform`) with
// timeouts, retries with exponential backoff and jitter, streamed uploads and downloads, and
// a download cache (`download_cached`). The REST client of the platform is built on it.

#include "util/progress.hpp"

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace mlctl::client {

struct HttpRequest {
  std::string method = "GET"; // GET, HEAD, POST, PUT, PATCH, DELETE, ...
  std::string url;            // http:// or https:// only
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;                    // sent as is (ignored when `body_file` is set)
  std::filesystem::path body_file;     // streamed upload when set (re-read on every attempt)
  std::filesystem::path response_file; // stream a 2xx body to this file (temporary file + rename)
};

struct HttpResponse {
  long status = 0;
  std::string body;                           // the body, unless a 2xx went to `response_file`
  std::map<std::string, std::string> headers; // lowercase names, last response of a redirect chain
};

struct HttpOptions {
  std::chrono::milliseconds connect_timeout{3000};
  std::chrono::milliseconds timeout{0};              // whole transfer; 0 = no limit
  std::chrono::milliseconds low_speed_window{30000}; // abort when no byte moved for this long
  int retries = 3;                                   // extra attempts after the first
  std::chrono::milliseconds backoff{200};            // first delay; doubles, with jitter
  bool retry_server_errors = true;                   // 429, 500, 502, 503, 504
  bool retry_connect_failures = true; // DNS failure, connection refused, connect timeout
  // PEM certificates of the CAs to trust for https:// (a private CA, a server's self-signed
  // certificate), as curl's --cacert; empty = the system's CA store.
  std::filesystem::path ca_file;
  util::ProgressFn progress;          // bytes up or down (unit "B"); may be empty
  util::LogFn log;                    // one line per retry; may be empty
  // Appended to the error when no connection could be made (refused, DNS, connect timeout),
  // e.g. where the address came from.
  std::string connect_failure_hint;
};

// Performs `request`, retrying transient failures (connection refused or reset, timeouts,
// and, with `retry_server_errors`, the statuses listed there) up to `options.retries` times
// with exponential backoff and jitter, logging each retry through `options.log`
// ("GET http://...: HTTP 500, retry 1/3 in 0.2s"). Returns the last response whatever its
// status (non-2xx is not an error here). Throws `Error{unavailable}` "<url>: <curl's error,
// lowercase>" (e.g. "<url>: connection refused") when no response arrived after the retries,
// `Error{invalid_input}` for a malformed URL or another scheme, for a server certificate no
// trusted CA signed (not retried: "<url>: SSL certificate problem: self-signed certificate
// (...)") and for an unreadable `ca_file`, `Error{io}` when
// `body_file` cannot be read or `response_file` cannot be written, `Error{interrupted}` on
// SIGINT/SIGTERM.
HttpResponse http_perform(const HttpRequest& request, const HttpOptions& options);

// Returns the path of `url`'s content in `cache_dir` ("<cache_dir>/downloads/<key>/<file
// name>"), downloading it only when it is not there yet (a second call downloads nothing).
// When `expected_sha256` (lowercase hex) is given, the file is verified: a cached copy that
// does not match is downloaded again, and a download that does not match is removed and
// throws `Error{corrupt}` "<url>: sha256 mismatch: expected <hex>, got <hex>". A final
// non-2xx answer throws `Error{not_found}` (404/410) or `Error{unavailable}` (others)
// "<url>: HTTP <status>". Other errors as `http_perform`.
std::filesystem::path download_cached(const std::string& url,
                                      const std::filesystem::path& cache_dir,
                                      const HttpOptions& options,
                                      const std::string& expected_sha256 = {});

} // namespace mlctl::client

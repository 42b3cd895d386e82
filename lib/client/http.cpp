#include "client/http.hpp"

#include "artifact/sha256.hpp"
#include "util/build_info.hpp"
#include "util/error.hpp"
#include "util/interrupt.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <curl/curl.h>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unistd.h>

namespace mlctl::client {
namespace fs = std::filesystem;

namespace {

// libcurl's global state is initialised once per process, before the first handle.
void global_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      throw Error(ErrorKind::internal, "libcurl: global initialisation failed");
    }
  });
}

struct EasyCleanup {
  void operator()(CURL* c) const noexcept { curl_easy_cleanup(c); }
};
using EasyPtr = std::unique_ptr<CURL, EasyCleanup>;

struct SlistFree {
  void operator()(curl_slist* l) const noexcept { curl_slist_free_all(l); }
};
using SlistPtr = std::unique_ptr<curl_slist, SlistFree>;

struct FileClose {
  void operator()(std::FILE* f) const noexcept { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileClose>;

// Each thread keeps one easy handle between calls: `curl_easy_reset` keeps its connection
// cache, so consecutive requests to one server reuse the keep-alive connection. A nested
// call (from a callback) gets a handle of its own.
thread_local EasyPtr t_handle;
thread_local bool t_handle_busy = false;

class HandleLease {
public:
  HandleLease() {
    if (!t_handle_busy) {
      t_handle_busy = true;
      m_shared = true;
      if (t_handle) {
        curl_easy_reset(t_handle.get());
      } else {
        t_handle.reset(curl_easy_init());
      }
      m_curl = t_handle.get();
    } else {
      m_own.reset(curl_easy_init());
      m_curl = m_own.get();
    }
    if (m_curl == nullptr) {
      release();
      throw Error(ErrorKind::internal, "libcurl: cannot create a handle");
    }
  }
  ~HandleLease() {
    if (m_shared) {
      curl_easy_reset(m_curl); // drop pointers to this call's buffers and callbacks
    }
    release();
  }
  HandleLease(const HandleLease&) = delete;
  HandleLease& operator=(const HandleLease&) = delete;
  CURL* get() const noexcept { return m_curl; }

private:
  void release() noexcept {
    if (m_shared) {
      t_handle_busy = false;
      m_shared = false;
    }
  }
  EasyPtr m_own;
  CURL* m_curl = nullptr;
  bool m_shared = false;
};

std::string lowercase(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// curl's messages start with a capital ("Could not resolve host: x"); ours are lowercase.
// Acronyms ("SSL certificate problem") keep their case.
std::string lowercase_first(std::string s) {
  if (s.size() >= 2 && std::isupper(static_cast<unsigned char>(s[0])) &&
      !std::isupper(static_cast<unsigned char>(s[1]))) {
    s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  }
  while (!s.empty() && (s.back() == '\n' || s.back() == '.' || s.back() == ' ')) {
    s.pop_back();
  }
  return s;
}

std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char k_alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s(10, 'x');
  for (auto& c : s) {
    c = k_alphabet[rng() % (sizeof(k_alphabet) - 1)];
  }
  return s;
}

// The last path segment of `url`, without query or fragment: the name a download is kept
// under and shown in progress. Characters outside a safe set become '_'.
std::string url_file_name(const std::string& url) {
  std::string path = url;
  if (const auto scheme = path.find("://"); scheme != std::string::npos) {
    path = path.substr(scheme + 3);
    const auto slash = path.find('/');
    path = slash == std::string::npos ? std::string() : path.substr(slash);
  }
  if (const auto cut = path.find_first_of("?#"); cut != std::string::npos) {
    path.resize(cut);
  }
  while (!path.empty() && path.back() == '/') {
    path.pop_back();
  }
  std::string name = path.substr(path.find_last_of('/') + 1);
  for (auto& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') {
      c = '_';
    }
  }
  if (name.empty() || name == "." || name == "..") {
    name = "download";
  }
  return name;
}

bool has_http_scheme(const std::string& url) {
  const std::string head = lowercase(url.substr(0, 8));
  return head.rfind("http://", 0) == 0 || head.rfind("https://", 0) == 0;
}

bool is_2xx(long status) {
  return status >= 200 && status < 300;
}

bool retryable_status(long status) {
  return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

// A response file is written to a temporary sibling and renamed into place only when the
// whole 2xx body arrived; destroyed uncommitted, the temporary file is removed.
class PartFile {
public:
  explicit PartFile(fs::path target) : m_target(std::move(target)) {}
  ~PartFile() { discard(); }
  PartFile(const PartFile&) = delete;
  PartFile& operator=(const PartFile&) = delete;

  // Opens the temporary file; returns false (with `error()` set) when it cannot.
  bool open() {
    std::error_code ec;
    if (m_target.has_parent_path()) {
      fs::create_directories(m_target.parent_path(), ec);
    }
    m_tmp = m_target;
    m_tmp += ".part-" + random_suffix();
    m_file.reset(std::fopen(m_tmp.c_str(), "wbx"));
    if (!m_file) {
      m_error = m_target.string() + ": cannot create: " + std::strerror(errno);
      return false;
    }
    std::setvbuf(m_file.get(), nullptr, _IOFBF, 1 << 18);
    return true;
  }
  bool write(const char* data, std::size_t n) {
    if (std::fwrite(data, 1, n, m_file.get()) != n) {
      m_error = m_target.string() + ": write failed: " + std::strerror(errno);
      return false;
    }
    return true;
  }
  bool is_open() const noexcept { return static_cast<bool>(m_file); }
  const std::string& error() const noexcept { return m_error; }

  // Flushes, syncs and renames the file into place. Throws `Error{io}`.
  void commit() {
    if (!m_file && !open()) {
      throw Error(ErrorKind::io, m_error);
    }
    std::FILE* f = m_file.get();
    if (std::fflush(f) != 0 || ::fsync(::fileno(f)) != 0) {
      throw Error(ErrorKind::io, m_target.string() + ": write failed: " + std::strerror(errno));
    }
    m_file.reset();
    if (::rename(m_tmp.c_str(), m_target.c_str()) != 0) {
      throw Error(ErrorKind::io,
                  m_target.string() + ": cannot rename into place: " + std::strerror(errno));
    }
    m_tmp.clear();
  }

  void discard() noexcept {
    m_file.reset();
    if (!m_tmp.empty()) {
      std::error_code ec;
      fs::remove(m_tmp, ec);
      m_tmp.clear();
    }
  }

private:
  fs::path m_target;
  fs::path m_tmp;
  FilePtr m_file;
  std::string m_error;
};

// The state of one attempt, shared with curl's callbacks.
struct Transfer {
  const HttpRequest* request = nullptr;
  const HttpOptions* options = nullptr;
  CURL* curl = nullptr;
  HttpResponse response;
  enum class Sink { undecided, memory, file } sink = Sink::undecided;
  std::optional<PartFile> part;
  FilePtr upload;
  std::string io_error;              // set when our side of the transfer failed (disk, upload file)
  std::exception_ptr callback_error; // an exception from a user callback, rethrown after curl
  bool aborted_by_interrupt = false;
  std::string stage;
  std::uint64_t last_done = 0;
  std::uint64_t last_total = 0;
};

void record_header(Transfer& t, std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
    line.remove_suffix(1);
  }
  if (line.rfind("HTTP/", 0) == 0) {
    // A new response (after a redirect or a 100 Continue): forget the previous headers.
    t.response.headers.clear();
    return;
  }
  const auto colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return;
  }
  std::string name = lowercase(std::string(line.substr(0, colon)));
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
    value.remove_prefix(1);
  }
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
    value.remove_suffix(1);
  }
  auto [it, inserted] = t.response.headers.try_emplace(std::move(name), value);
  if (!inserted) {
    it->second.append(", ").append(value);
  }
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const std::size_t len = size * n;
  try {
    record_header(t, std::string_view(data, len));
  } catch (...) {
    t.callback_error = std::current_exception();
    return 0;
  }
  return len;
}

std::size_t on_write(char* data, std::size_t size, std::size_t n, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const std::size_t len = size * n;
  if (t.sink == Transfer::Sink::undecided) {
    long status = 0;
    curl_easy_getinfo(t.curl, CURLINFO_RESPONSE_CODE, &status);
    t.sink = !t.request->response_file.empty() && is_2xx(status) ? Transfer::Sink::file
                                                                 : Transfer::Sink::memory;
    if (t.sink == Transfer::Sink::file) {
      t.part.emplace(t.request->response_file);
      if (!t.part->open()) {
        t.io_error = t.part->error();
        return 0; // CURLE_WRITE_ERROR
      }
    }
  }
  if (t.sink == Transfer::Sink::file) {
    if (!t.part->write(data, len)) {
      t.io_error = t.part->error();
      return 0;
    }
  } else {
    try {
      t.response.body.append(data, len);
    } catch (...) {
      t.callback_error = std::current_exception();
      return 0;
    }
  }
  return len;
}

std::size_t on_read(char* buffer, std::size_t size, std::size_t n, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const std::size_t got = std::fread(buffer, 1, size * n, t.upload.get());
  if (got == 0 && std::ferror(t.upload.get()) != 0) {
    t.io_error = t.request->body_file.string() + ": read failed: " + std::strerror(errno);
    return CURL_READFUNC_ABORT;
  }
  return got;
}

int on_progress(void* user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                curl_off_t ulnow) {
  auto& t = *static_cast<Transfer*>(user);
  if (util::interrupted()) {
    t.aborted_by_interrupt = true;
    return 1;
  }
  if (!t.options->progress) {
    return 0;
  }
  const bool upload = !t.request->body_file.empty();
  if (!upload) {
    // The body of an error answer is not the download the user waits for.
    long status = 0;
    curl_easy_getinfo(t.curl, CURLINFO_RESPONSE_CODE, &status);
    if (!is_2xx(status)) {
      return 0;
    }
  }
  const auto done = static_cast<std::uint64_t>(std::max<curl_off_t>(0, upload ? ulnow : dlnow));
  const auto total =
      static_cast<std::uint64_t>(std::max<curl_off_t>(0, upload ? ultotal : dltotal));
  if ((done == 0 && total == 0) || (done == t.last_done && total == t.last_total)) {
    return 0;
  }
  t.last_done = done;
  t.last_total = total;
  try {
    t.options->progress({t.stage, done, total, "B", {}});
  } catch (...) {
    // Exceptions must not cross libcurl's C frames: stop the transfer and rethrow later.
    t.callback_error = std::current_exception();
    return 1;
  }
  return 0;
}

// What one attempt gave: a response, or a failure described for the caller and the retry loop.
struct Attempt {
  std::optional<HttpResponse> response;
  ErrorKind kind = ErrorKind::unavailable;
  std::string message;
  bool transient = false;       // worth another attempt
  bool connect_failure = false; // no connection was made (DNS, refused, connect timeout)
};

Attempt perform_once(CURL* curl, const HttpRequest& req, const HttpOptions& opts) {
  Transfer t;
  t.request = &req;
  t.options = &opts;
  t.curl = curl;
  t.stage = req.body_file.empty() ? "download " + url_file_name(req.url)
                                  : "upload " + req.body_file.filename().string();

  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 256L * 1024L);
  const std::string agent = "mlctl/" + std::string(build::version());
  curl_easy_setopt(curl, CURLOPT_USERAGENT, agent.c_str());
  if (!opts.ca_file.empty()) {
    curl_easy_setopt(curl, CURLOPT_CAINFO, opts.ca_file.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(opts.connect_timeout.count()));
  if (opts.timeout.count() > 0) {
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(opts.timeout.count()));
  }
  if (opts.low_speed_window.count() > 0) {
    // curl counts whole seconds: "less than 1 byte/s during the window" is a stalled transfer.
    const long seconds =
        std::max<long>(1, static_cast<long>((opts.low_speed_window.count() + 999) / 1000));
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, seconds);
  }
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &t);

  SlistPtr headers;
  bool has_content_type = false;
  bool has_expect = false;
  auto add_header = [&](const std::string& line) {
    curl_slist* next = curl_slist_append(headers.get(), line.c_str());
    if (next == nullptr) {
      throw Error(ErrorKind::internal, "libcurl: out of memory");
    }
    (void)headers.release();
    headers.reset(next);
  };
  for (const auto& [name, value] : req.headers) {
    const std::string lower = lowercase(name);
    has_content_type = has_content_type || lower == "content-type";
    has_expect = has_expect || lower == "expect";
    add_header(name + ": " + value);
  }

  const std::string& method = req.method.empty() ? std::string("GET") : req.method;
  const bool sends_body = !req.body_file.empty() || !req.body.empty() || method == "POST" ||
                          method == "PUT" || method == "PATCH";
  if (sends_body && !has_content_type) {
    add_header("Content-Type: application/octet-stream");
  }
  if (sends_body && !has_expect) {
    add_header("Expect:"); // no 100-continue round trip
  }
  if (method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (!req.body_file.empty()) {
    t.upload.reset(std::fopen(req.body_file.c_str(), "rb"));
    if (!t.upload) {
      const int saved = errno;
      throw Error(saved == ENOENT ? ErrorKind::not_found : ErrorKind::io,
                  req.body_file.string() + ": " +
                      (saved == ENOENT ? std::string("no such file")
                                       : "cannot open: " + std::string(std::strerror(saved))));
    }
    std::error_code ec;
    const auto size = fs::file_size(req.body_file, ec);
    if (ec) {
      throw Error(ErrorKind::io, req.body_file.string() + ": " + ec.message());
    }
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    // 1 MiB reads and sends instead of libcurl's 64 KiB: fewer calls for large artifacts.
    curl_easy_setopt(curl, CURLOPT_UPLOAD_BUFFERSIZE, 1L << 20);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(curl, CURLOPT_READDATA, &t);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(size));
    if (method != "PUT") {
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    }
  } else if (sends_body) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req.body.data());
    if (method != "POST") {
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    }
  } else if (method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());

  const CURLcode code = curl_easy_perform(curl);

  Attempt a;
  if (code == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &t.response.status);
    if (!req.response_file.empty() && is_2xx(t.response.status) && method != "HEAD") {
      if (!t.part) {
        t.part.emplace(req.response_file); // an empty body is still a file
      }
      t.part->commit();
    }
    if (opts.progress && t.last_done > 0 && t.last_total != t.last_done) {
      // The size was unknown (no Content-Length): close the progress with the final count.
      opts.progress({t.stage, t.last_done, t.last_done, "B", {}});
    }
    a.response = std::move(t.response);
    return a;
  }

  if (t.callback_error) {
    std::rethrow_exception(t.callback_error);
  }
  if (t.aborted_by_interrupt) {
    throw Error(ErrorKind::interrupted, "interrupted");
  }
  if (!t.io_error.empty()) {
    throw Error(ErrorKind::io, t.io_error);
  }
  a.message = lowercase_first(errbuf[0] != '\0' ? errbuf : curl_easy_strerror(code));
  switch (code) {
  case CURLE_UNSUPPORTED_PROTOCOL:
  case CURLE_URL_MALFORMAT:
    a.kind = ErrorKind::invalid_input;
    break;
  case CURLE_PEER_FAILED_VERIFICATION: // the certificate, or the name in it (curl 7.88: both 60)
    // Not the network: a retry gives the same answer, and exit code 4 would say "try later".
    a.kind = ErrorKind::invalid_input;
    a.message += opts.ca_file.empty()
                     ? " (no CA of the system's store signed the server's certificate: pass its "
                       "CA certificate with --cacert FILE or MLCTL_CACERT)"
                     : " (checked against the CAs of " + opts.ca_file.string() + ")";
    break;
  case CURLE_SSL_CACERT_BADFILE:
    a.kind = ErrorKind::invalid_input;
    a.message = opts.ca_file.string() + ": no CA certificate could be read from it (expected PEM)";
    break;
  case CURLE_COULDNT_CONNECT: {
    // curl 7.88 says "Failed to connect to h port p after 0 ms: Couldn't connect to server";
    // the system's reason ("connection refused") is what a user can act on.
    long os_errno = 0;
    curl_easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno);
    if (os_errno != 0) {
      a.message = lowercase(std::strerror(static_cast<int>(os_errno)));
    }
    a.transient = true;
    a.connect_failure = true;
    break;
  }
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
    a.transient = true;
    a.connect_failure = true;
    break;
  case CURLE_OPERATION_TIMEDOUT: {
    curl_off_t connected = 0;
    curl_easy_getinfo(curl, CURLINFO_CONNECT_TIME_T, &connected);
    a.transient = true;
    a.connect_failure = connected == 0;
    break;
  }
  case CURLE_RECV_ERROR:
  case CURLE_SEND_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_PARTIAL_FILE:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
  case CURLE_SSL_CONNECT_ERROR:
    a.transient = true;
    break;
  default:
    break;
  }
  return a;
}

// Sleeps `delay`, waking early to throw when a signal arrived.
void interruptible_sleep(std::chrono::milliseconds delay) {
  const auto until = std::chrono::steady_clock::now() + delay;
  while (true) {
    util::throw_if_interrupted();
    const auto now = std::chrono::steady_clock::now();
    if (now >= until) {
      return;
    }
    std::this_thread::sleep_for(
        std::min<std::chrono::steady_clock::duration>(until - now, std::chrono::milliseconds(50)));
  }
}

std::chrono::milliseconds backoff_delay(const HttpOptions& opts, int attempt,
                                        const HttpResponse* response) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  // Exponential with "equal jitter": half the step is fixed, half random, so concurrent
  // clients spread out but every wait still grows.
  const double step = static_cast<double>(opts.backoff.count()) * std::ldexp(1.0, attempt - 1);
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  auto delay = std::chrono::milliseconds(static_cast<long long>(step * jitter(rng)));
  if (response != nullptr) {
    // A server that says when to come back (429/503 Retry-After: seconds) is believed, up to
    // a minute.
    if (const auto it = response->headers.find("retry-after"); it != response->headers.end()) {
      char* end = nullptr;
      const long seconds = std::strtol(it->second.c_str(), &end, 10);
      if (end != it->second.c_str() && *end == '\0' && seconds > 0) {
        delay = std::max(delay, std::chrono::milliseconds(std::min(seconds, 60L) * 1000));
      }
    }
  }
  return delay;
}

std::string format_seconds(std::chrono::milliseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

} // namespace

HttpResponse http_perform(const HttpRequest& request, const HttpOptions& options) {
  if (!has_http_scheme(request.url)) {
    throw Error(ErrorKind::invalid_input,
                request.url + ": unsupported url (expected http:// or https://)");
  }
  global_init();
  const int retries = std::max(0, options.retries);
  const std::string method = request.method.empty() ? "GET" : request.method;
  for (int attempt = 1;; ++attempt) {
    util::throw_if_interrupted();
    Attempt a;
    {
      HandleLease lease;
      a = perform_once(lease.get(), request, options);
    }
    std::string reason;
    if (a.response) {
      if (!options.retry_server_errors || !retryable_status(a.response->status) ||
          attempt > retries) {
        return std::move(*a.response);
      }
      reason = "HTTP " + std::to_string(a.response->status);
    } else {
      const bool retry = a.transient && (options.retry_connect_failures || !a.connect_failure);
      if (!retry || attempt > retries) {
        throw Error(a.kind, request.url + ": " + a.message +
                                (a.connect_failure ? options.connect_failure_hint : ""));
      }
      reason = a.message;
    }
    const auto delay = backoff_delay(options, attempt, a.response ? &*a.response : nullptr);
    if (options.log) {
      options.log(method + " " + request.url + ": " + reason + ", retry " +
                  std::to_string(attempt) + "/" + std::to_string(retries) + " in " +
                  format_seconds(delay));
    }
    interruptible_sleep(delay);
  }
}

fs::path download_cached(const std::string& url, const fs::path& cache_dir,
                         const HttpOptions& options, const std::string& expected_sha256) {
  const std::string name = url_file_name(url);
  const std::string expected = lowercase(expected_sha256);
  // One directory per URL: two URLs ending in the same file name never share a file.
  const fs::path dir = cache_dir / "downloads" / artifact::sha256_hex(url).substr(0, 16);
  const fs::path target = dir / name;
  std::error_code ec;
  if (fs::is_regular_file(target, ec)) {
    if (expected.empty() || artifact::sha256_file(target) == expected) {
      return target;
    }
    if (options.log) {
      options.log(target.string() + ": cached copy does not match its sha256, downloading again");
    }
    fs::remove(target, ec);
  }

  HttpRequest request;
  request.url = url;
  fs::path staged = dir / name;
  staged += ".download";
  request.response_file = staged;
  const HttpResponse response = http_perform(request, options);
  if (!is_2xx(response.status)) {
    throw Error(response.status == 404 || response.status == 410 ? ErrorKind::not_found
                                                                 : ErrorKind::unavailable,
                url + ": HTTP " + std::to_string(response.status));
  }
  if (!expected.empty()) {
    const std::string got = artifact::sha256_file(staged);
    if (got != expected) {
      fs::remove(staged, ec);
      throw Error(ErrorKind::corrupt,
                  url + ": sha256 mismatch: expected " + expected + ", got " + got);
    }
  }
  fs::rename(staged, target, ec);
  if (ec) {
    throw Error(ErrorKind::io, target.string() + ": cannot rename into place: " + ec.message());
  }
  return target;
}

} // namespace mlctl::client

#pragma once
// The HTTP and HTTPS servers: cpp-httplib's request parsing, routing and responses (and its
// TLS context), over a connection loop of our own.
//
// cpp-httplib 0.11 polls the socket before every read and every write, reads through a 4 KB
// buffer, sends headers and body separately and asks the kernel for both socket addresses on
// every request: about 16 system calls per small request, and a poll+recv pair per 4 KB of an
// upload. Here each connection keeps one buffered stream from request to request: a small
// request costs one recv(2) and its response one send(2); input is read 128 KB at a time; the
// addresses are asked once. Timeouts stay the server's (read, write, keep-alive), enforced with
// socket timeouts; an idle connection notices a stopping server within 100 ms.
//
// Over TLS the stream reads and writes the connection's OpenSSL session instead of the socket
// (a TLS record, at most 16 KB, per read).
//
// A worker thread serves a connection while its requests keep coming; one idle for 100 ms, or
// just answered while other connections wait for a worker, is parked in an epoll set and
// queued again when its next request arrives. Idle keep-alive connections hold no thread, and
// more busy connections than workers take turns (cpp-httplib's pool gives each open connection
// a thread of its own until it closes: the connection after the last thread waits). A
// connection whose request (or TLS handshake) is still arriving, or has not begun a
// millisecond after the connection or its wake-up, is parked as well until the request is
// whole, and closed when it is not whole within the read timeout (a silent one: the keep-alive
// timeout): slow and silent clients hold no thread.
//
// The inference routes can go faster still: a request that arrived whole (an HTTP/1.1 request
// with a Content-Length body, no Transfer-Encoding, no Expect) is first offered to a
// `FastHandler`, which answers it from the bytes in the buffer, without cpp-httplib's parsing,
// regex routing, 4 KB body copies and response assembly. Anything it declines takes the path
// above.

#include <httplib.h>

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace mlctl::server {

// A request whose bytes are all in the connection's buffer (views valid during the call).
struct RawRequest {
  std::string_view method;
  std::string_view target; // the path and query, as sent
  // The header fields: names as sent, values without surrounding blanks.
  std::span<const std::pair<std::string_view, std::string_view>> headers;
  std::string_view body; // Content-Length bytes
  std::string_view remote_ip;
  int remote_port = 0;
  bool close = false; // the client sent `Connection: close`, or the connection's last request
};

// Appends a whole HTTP/1.1 response to `out` and returns true, or returns false (leaving
// `out` alone) to let cpp-httplib process the request. Sets `close` when the connection must
// close after the response. Must not throw.
using FastHandler = std::function<bool(const RawRequest& request, std::string& out, bool& close)>;

// True on a worker while cpp-httplib answers a request that read past the server's body limit
// (`set_payload_max_length`) plus 1 MiB for its head: a chunked body, or one without a length,
// which cpp-httplib 0.11 reads into memory whatever its size. Its read fails at the limit, the
// error handler should answer 413, and the connection closes after the answer.
bool request_over_limit();

// Returns the plain-HTTP server with `threads` workers; `fast`, when given, is offered every
// request that arrived whole. Its post-routing handler is taken: it says `Connection:
// keep-alive` to HTTP/1.0 clients whose connection stays open.
std::unique_ptr<httplib::Server> make_plain_http_server(FastHandler fast, std::size_t threads);

// The same over TLS: `cert` and `key` are PEM files (check `is_valid()`); requests are read
// from the TLS session into the same buffered stream.
std::unique_ptr<httplib::Server> make_tls_http_server(const std::string& cert,
                                                      const std::string& key, FastHandler fast,
                                                      std::size_t threads);

} // namespace mlctl::server

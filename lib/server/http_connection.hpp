#pragma once
// The plain-HTTP server: cpp-httplib's request parsing, routing and responses, over a
// connection loop of our own.
//
// cpp-httplib 0.11 polls the socket before every read and every write, reads through a 4 KB
// buffer, sends headers and body separately and asks the kernel for both socket addresses on
// every request: about 16 system calls per small request, and a poll+recv pair per 4 KB of an
// upload. Here each connection keeps one buffered stream from request to request: a small
// request costs one recv(2) and its response one send(2); input is read 128 KB at a time; the
// addresses are asked once. Timeouts stay the server's (read, write, keep-alive), enforced with
// socket timeouts; an idle connection notices a stopping server within 100 ms.

#include <httplib.h>

#include <memory>

namespace mlctl::server {

std::unique_ptr<httplib::Server> make_plain_http_server();

} // namespace mlctl::server

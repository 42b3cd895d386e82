"""`mlctl serve`: health, readiness, JSON errors, the access log, storage (SQLite WAL, schema
migrations), limits, authentication, TLS, graceful stop on SIGTERM/SIGINT, and the client's
retries and exit code 4 against servers that fail on purpose."""

import gzip
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import threading
import time
import unittest
import urllib.request
from pathlib import Path

from harness import (MLCTL, TIMEOUT_SCALE, Server, TestCase, free_port, make_dataset, make_model_dir, mlctl,
                     small_filesystem)
from registry_fixtures import request, request_json, tar_gz, model_entries

TOKEN = "s3cret-token-0123456789abcdef"


def check_keep_alive_clients(test, connect):
    # 12 keep-alive clients stay open on a 4-thread server: each later client (and each
    # old one again) is answered at once, not after the keep-alive timeout (5 s).
    started = time.monotonic()
    clients = []
    for _ in range(12):
        c = connect()
        c.request("GET", "/healthz")
        test.assertEqual(json.loads(c.getresponse().read())["status"], "ok")
        clients.append(c)
    for c in clients:
        c.request("POST", "/api/v1/applications/ghost/predict", body=b'{"images": [[0.5]]}',
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        test.assertEqual((r.status, json.loads(r.read())["error"]["code"]), (404, "not_found"))
        c.close()
    test.assertLess(time.monotonic() - started, 4.0)


class ServeTest(TestCase):
    def test_health_readiness_and_json_errors(self):
        with Server(self.tmp / "data") as s:
            status, body = request_json(s, "GET", "/healthz")
            self.assertEqual(status, 200)
            self.assertEqual(body["status"], "ok")
            status, body = request_json(s, "GET", "/readyz")
            self.assertEqual((status, body["status"]), (200, "ready"))
            status, headers, data = request(s, "GET", "/api/v1/no-such-route")
            self.assertEqual(status, 404)
            self.assertEqual(headers["content-type"], "application/json")
            err = json.loads(data)["error"]
            self.assertEqual(err["code"], "not_found")
            self.assertIn("/api/v1/no-such-route", err["message"])
            status, body = request_json(s, "GET", "/api/v1/models/Not_Valid/versions")
            self.assertEqual(status, 400)
            self.assertEqual(body["error"]["code"], "invalid_input")
            self.assertIn("[a-z0-9][a-z0-9._-]{0,62}", body["error"]["message"])
            status, body = request_json(s, "GET", "/api/v1/models/ghost/versions/1")
            self.assertEqual((status, body["error"]["code"]), (404, "not_found"))
            self.assertEqual(body["error"]["message"], "model ghost:1 not found")

    def test_access_log_is_one_json_line_per_request_with_trace_id(self):
        trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        with Server(self.tmp / "data") as s:
            _, headers, _ = request(s, "GET", "/healthz", headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"})
            self.assertTrue(headers["traceparent"].startswith(f"00-{trace}-"), headers)
            request(s, "GET", "/api/v1/models")
            time.sleep(0.2)
            lines = s.access_log()
        by_path = {l["path"]: l for l in lines}
        self.assertEqual(set(lines[0]), {"time", "method", "path", "status", "latency_ms", "trace_id", "remote",
                                         "bytes_in", "bytes_out"})
        self.assertEqual(by_path["/healthz"]["trace_id"], trace)
        self.assertEqual(by_path["/api/v1/models"]["status"], 200)
        self.assertEqual(len(by_path["/api/v1/models"]["trace_id"]), 32)
        self.assertGreaterEqual(by_path["/api/v1/models"]["latency_ms"], 0)

    def test_log_file_option(self):
        log = self.tmp / "access.log"
        with Server(self.tmp / "data", args=["--log-file", log]) as s:
            request(s, "GET", "/healthz")
        entries = [json.loads(l) for l in log.read_text().splitlines()]
        self.assertIn("/healthz", [e["path"] for e in entries])

    def test_sigusr1_reopens_the_log_file_for_rotation(self):
        # logrotate's `create` mode: rename the file, signal, the server writes a new one.
        # (Its `copytruncate` mode works without a signal: the file is opened O_APPEND.)
        log = self.tmp / "access.log"
        with Server(self.tmp / "data", args=["--log-file", log]) as s:
            def traces(n, path):
                """n requests, once their lines are in `path` (cpp-httplib logs a request after
                its answer has gone, and the lines are written at most 50 ms later)."""
                ids = [request(s, "GET", "/healthz")[1]["traceparent"][3:35] for _ in range(n)]
                deadline = time.monotonic() + 5 * TIMEOUT_SCALE
                while ids[-1] not in path.read_text() and time.monotonic() < deadline:
                    time.sleep(0.02)
                return ids
            before = traces(20, log)
            log.rename(self.tmp / "access.log.1")
            during = traces(5, self.tmp / "access.log.1")  # the server has not been told yet
            os.kill(s.pid, signal.SIGUSR1)
            deadline = time.monotonic() + 5 * TIMEOUT_SCALE
            while "access log reopened" not in s.stderr() and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertIn("SIGUSR1: access log reopened", s.stderr())
            after = traces(20, log)
            # A log that cannot be opened again: the old file stays in use, the server runs on.
            log.rename(self.tmp / "access.log.2")
            log.mkdir()
            os.kill(s.pid, signal.SIGUSR1)
            deadline = time.monotonic() + 5 * TIMEOUT_SCALE
            while "still writing" not in s.stderr() and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertIn("cannot open the log file", s.stderr())
            self.assertIn("(still writing to the file open before)", s.stderr())
            last = traces(3, self.tmp / "access.log.2")
        def logged(path):
            return [json.loads(l)["trace_id"] for l in path.read_text().splitlines()]
        first = logged(self.tmp / "access.log.1")  # the harness's readiness probes first
        self.assertEqual(first[len(first) - 25:], before + during)
        self.assertEqual(logged(self.tmp / "access.log.2"), after + last)

    def test_storage_is_sqlite_wal_with_migrations_and_closes_cleanly(self):
        data = self.tmp / "data"
        with Server(data) as s:
            db = sqlite3.connect(data / "registry.db")
            self.assertEqual(db.execute("PRAGMA journal_mode").fetchone()[0], "wal")
            self.assertGreaterEqual(db.execute("PRAGMA user_version").fetchone()[0], 1)
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            self.assertTrue({"models", "versions", "aliases", "tags", "events", "version_usage"} <= tables)
            db.close()
        # A clean stop checkpoints the WAL: nothing is left in it.
        wal = data / "registry.db-wal"
        self.assertTrue(not wal.exists() or wal.stat().st_size == 0)
        # A second start on the same directory migrates nothing and serves the same data.
        with Server(data) as s:
            self.assertEqual(request_json(s, "GET", "/api/v1/models")[0], 200)

    def test_sigint_stops_gracefully_with_exit_0(self):
        s = Server(self.tmp / "data", check_exit=False)
        with s:
            self.assertEqual(s.stop(signal.SIGINT), 0, s.stderr())
        self.assertIn("stopped", s.stderr())

    def test_sigterm_during_a_slow_upload_stops_within_the_grace_period(self):
        with Server(self.tmp / "data", args=["--shutdown-grace", "1"]) as s:
            import http.client
            conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
            conn.putrequest("POST", "/api/v1/models/slow/versions")
            conn.putheader("Content-Length", str(10 << 20))
            conn.endheaders()
            stop = threading.Event()

            def trickle():
                try:
                    while not stop.is_set():
                        conn.send(b"\0" * 4096)
                        time.sleep(0.05)
                except OSError:
                    pass

            t = threading.Thread(target=trickle)
            t.start()
            time.sleep(0.5)
            started = time.monotonic()
            code = s.stop()
            elapsed = time.monotonic() - started
            stop.set()
            t.join()
            conn.close()
            self.assertEqual(code, 0, s.stderr())
            self.assertLess(elapsed, 8, "the stop was not bounded by --shutdown-grace")
        self.assertEqual(list((self.tmp / "data" / "tmp").iterdir()), [])

    def test_idle_keep_alive_clients_hold_no_thread(self):
        import http.client
        with Server(self.tmp / "data", args=["--threads", "4"]) as s:
            check_keep_alive_clients(self, lambda: http.client.HTTPConnection("127.0.0.1", s.port, timeout=30))

    def test_a_burst_of_new_connections_is_answered_at_once(self):
        # 300 clients connect at the same moment (as after a restart) and each sends one request.
        # cpp-httplib listens with a backlog of 5: the handshakes past it were dropped, and those
        # clients waited for a retransmission (1 s, then 3 s) before they were answered.
        import selectors
        import socket
        with Server(self.tmp / "data") as s:
            sel = selectors.DefaultSelector()
            started = time.monotonic()
            for _ in range(300):
                c = socket.socket()
                c.setblocking(False)
                c.connect_ex(("127.0.0.1", s.port))
                sel.register(c, selectors.EVENT_WRITE)
            answered, last = 0, 0.0
            while answered < 300 and time.monotonic() - started < 10:
                for key, events in sel.select(timeout=0.5):
                    c = key.fileobj
                    if events & selectors.EVENT_WRITE:
                        c.send(b"GET /v2/health/live HTTP/1.1\r\nHost: mlctl\r\n\r\n")
                        sel.modify(c, selectors.EVENT_READ)
                    elif c.recv(4096).startswith(b"HTTP/1.1 200"):
                        answered, last = answered + 1, time.monotonic() - started
                        sel.unregister(c)
                        c.close()
            for key in list(sel.get_map().values()):
                key.fileobj.close()
            self.assertEqual(answered, 300)
            self.assertLess(last, 1.0 * TIMEOUT_SCALE, "some connections waited for a retransmission")

    def test_more_clients_than_the_soft_descriptor_limit(self):
        # Started with a soft limit of 128 open files (the hard one higher, as on most systems),
        # the server raises it and serves 300 connections open at once.
        import resource
        import socket
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < 1024:
            self.skipTest(f"the hard limit of open files is {hard}")
        server = Server(self.tmp / "data")
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))
        try:
            server.start()  # inherits the limit
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        try:
            s = server.wait_ready()
            started = time.monotonic()
            clients = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(300)]
            try:
                for c in clients:
                    c.settimeout(10)
                    c.send(b"GET /v2/health/live HTTP/1.1\r\nHost: mlctl\r\n\r\n")
                for c in clients:
                    self.assertTrue(c.recv(4096).startswith(b"HTTP/1.1 200"))
                # Not after idle ones closed (keep-alive timeout, 5 s) to free descriptors.
                self.assertLess(time.monotonic() - started, 3 * TIMEOUT_SCALE)
            finally:
                for c in clients:
                    c.close()
            limits = Path(f"/proc/{s.pid}/limits").read_text()
            row = next(line for line in limits.splitlines() if line.startswith("Max open files"))
            self.assertEqual(row.split()[3], row.split()[4], row)  # soft = hard
        finally:
            server.__exit__(None, None, None)

    def test_clients_sending_their_requests_slowly_hold_no_worker(self):
        # 12 clients on a 4-worker server send their requests a byte at a time (slowloris: 6 the
        # head, 6 a body), and 200 more connect and send nothing: a request still arriving, or
        # not yet begun, waits parked, so other clients are answered at once, and one sent
        # slowly to the end is answered like any other; one never finished is closed after the
        # read timeout (10 s) from its first byte.
        import socket
        with Server(self.tmp / "data", args=["--threads", "4"]) as s:
            silent = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(200)]
            unfinished = socket.create_connection(("127.0.0.1", s.port))
            unfinished.send(b"GET /v2/health/live HTTP/1.1\r\n")
            unfinished_since = time.monotonic()
            slow = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(12)]
            request = b"GET /v2/health/live HTTP/1.1\r\nHost: mlctl\r\n\r\n"
            body = b'{"images": [[0.5]]}' + b" " * 26  # as long as the head, for the loop below
            post = (f"POST /api/v1/applications/ghost/predict HTTP/1.1\r\nHost: mlctl\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
            self.assertEqual(len(body), len(request))
            for c in slow[6:]:
                c.send(post)
            for i in range(len(request) - 1):
                for c in slow[:6]:
                    c.send(request[i:i + 1])
                for c in slow[6:]:
                    c.send(body[i:i + 1])
                if i % 10 == 9:
                    started = time.monotonic()
                    with urllib.request.urlopen(s.url + "/v2/health/live", timeout=10) as r:
                        self.assertEqual(r.status, 200)
                    self.assertLess(time.monotonic() - started, 1.0 * TIMEOUT_SCALE)
                time.sleep(0.05)
            for c in slow[:6]:
                c.settimeout(10)
                c.send(request[-1:])
                self.assertTrue(c.recv(4096).startswith(b"HTTP/1.1 200"))
                c.close()
            for c in slow[6:]:
                c.settimeout(10)
                c.send(body[-1:])
                self.assertTrue(c.recv(4096).startswith(b"HTTP/1.1 404"))  # no such application
                c.close()
            for c in silent:
                c.close()
            unfinished.settimeout(30)
            self.assertEqual(unfinished.recv(4096), b"")  # closed, without an answer
            self.assertTrue(9.5 <= time.monotonic() - unfinished_since < 12 * TIMEOUT_SCALE,
                            time.monotonic() - unfinished_since)
            unfinished.close()

    def test_body_over_max_body_mb_is_413(self):
        with Server(self.tmp / "data", args=["--max-body-mb", "1"]) as s:
            status, _, data = request(s, "POST", "/api/v1/models/big/versions", body=os.urandom(2 << 20))
            self.assertEqual(status, 413)
            self.assertEqual(json.loads(data)["error"]["code"], "too_large")
            # chunked, without a Content-Length: counted while streaming
            import http.client
            conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
            conn.request("POST", "/api/v1/models/big/versions", body=iter([os.urandom(1 << 19)] * 4),
                         encode_chunked=True)
            r = conn.getresponse()
            self.assertEqual(r.status, 413)
            self.assertEqual(json.loads(r.read())["error"]["code"], "too_large")
            conn.close()

    def test_bodies_are_bounded_whatever_their_framing(self):
        # cpp-httplib 0.11 reads a chunked body into memory whatever its size, inflates a gzip
        # one without a limit, and reads the body of a POST with neither Content-Length nor
        # Transfer-Encoding until the client closes.
        def peak_kb(pid):
            return int(Path(f"/proc/{pid}/status").read_text().split("VmHWM:")[1].split()[0])

        def exchange(port, head, parts=()):
            """Sends `head`, then `parts` from a thread (as curl does, reading meanwhile);
            returns what came back until the server closed, or 2 s passed after a status line."""
            sock = socket.create_connection(("127.0.0.1", port), timeout=10 * TIMEOUT_SCALE)

            def send():
                try:
                    sock.sendall(head)
                    for part in parts:
                        sock.sendall(part)
                except OSError:
                    pass  # the server closed: it answered without reading the rest
            sender = threading.Thread(target=send)
            sender.start()
            data = b""
            try:
                while chunk := sock.recv(65536):
                    data += chunk
                    if b"HTTP/1.1 " in data:
                        sock.settimeout(2)
            except OSError:
                pass
            sender.join()
            sock.close()
            return data

        with Server(self.tmp / "data", args=["--max-body-mb", "1"]) as s:
            before = peak_kb(s.pid)
            # 200 MB chunked: refused at the limit with 413, not read into memory.
            chunk = b"100000\r\n" + b" " * (1 << 20) + b"\r\n"
            started = time.monotonic()
            reply = exchange(s.port, b"POST /api/v1/applications/a/predict HTTP/1.1\r\nHost: x\r\n"
                                     b"Transfer-Encoding: chunked\r\n\r\n", [chunk] * 200)
            self.assertTrue(reply.startswith(b"HTTP/1.1 413 "), reply[:200])
            self.assertIn(b'"too_large"', reply)
            self.assertLess(time.monotonic() - started, 5 * TIMEOUT_SCALE)
            # Compressed bodies outside the inference routes (GatewayTest has those): refused
            # (415) before they are read or inflated (300 MB of zeros in 1.4 MB of gzip).
            small = gzip.compress(b'[]')
            bomb = gzip.compress(b"\0" * (300 << 20), compresslevel=1)
            for body in (small, bomb):
                reply = exchange(s.port, b"POST /api/v1/feedback HTTP/1.1\r\nHost: x\r\n"
                                         b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body), [body])
                self.assertTrue(reply.startswith(b"HTTP/1.1 415 "), reply[:200])
                self.assertIn(b"only the inference routes (predict, V2 infer) take a compressed body", reply)
                self.assertEqual(reply.count(b"Connection: close"), 1, reply)
            self.assertLess(peak_kb(s.pid) - before, 64 << 10)
            # A client that sends its whole body before it reads the answer (http.client) gets it
            # too: a refused body is drained as the connection closes (it got a reset before).
            for headers, body in (({"Content-Encoding": "gzip"}, bytes(20 << 20)),
                                  ({}, iter([bytes(1 << 20)] * 20))):
                conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
                conn.request("POST", "/api/v1/models/x/versions", body=body, headers=headers,
                             encode_chunked=not isinstance(body, bytes))
                self.assertEqual(conn.getresponse().status, 415 if headers else 413)
                conn.close()
            # No Content-Length, no Transfer-Encoding: no body (RFC 9112), answered at once, and
            # the request pipelined after it too.
            started = time.monotonic()
            reply = exchange(s.port, b"POST /api/v1/applications/a/rollback HTTP/1.1\r\nHost: x\r\n\r\n"
                                     b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            self.assertEqual(reply.count(b"HTTP/1.1 "), 2, reply)
            self.assertTrue(reply.startswith(b"HTTP/1.1 404 "), reply[:200])  # no application 'a'
            self.assertIn(b'"status":"ok"', reply)
            self.assertLess(time.monotonic() - started, 1 * TIMEOUT_SCALE)
            self.assertEqual(request(s, "GET", "/healthz")[0], 200)

    def test_deeply_nested_json_bodies_are_refused_not_a_crash(self):
        # 2 million nested lists (4 MB): the feedback route's server died of a stack overflow.
        deep = b"[" * 2_000_000 + b"]" * 2_000_000
        with Server(self.tmp / "data") as s:
            for method, path, what in (("POST", "/api/v1/feedback", "feedback"),
                                       ("PUT", "/api/v1/applications/deep", "request body"),
                                       ("POST", "/api/v1/applications/deep/rollouts", "request body"),
                                       ("POST", "/api/v1/applications/deep/explain", "explain")):
                with self.subTest(path=path):
                    status, _, data = request(s, method, path, body=deep, headers={"Content-Type": "application/json"})
                    self.assertEqual((status, json.loads(data)["error"]["message"]),
                                     (400, f"{what}: JSON nested deeper than 64 levels"))
            self.assertEqual(request(s, "GET", "/healthz")[0], 200)

    def test_a_target_past_8_kb_is_414_on_every_route(self):
        # The inference routes' fast path took it: a 404 quoting the name, and the whole target
        # in the access log.
        with Server(self.tmp / "data") as s:
            for path in ("/api/v1/applications/" + "a" * 9000 + "/predict", "/v2/models/" + "a" * 9000 + "/infer",
                         "/api/v1/models/" + "a" * 9000):
                status, _, _ = request(s, "POST", path, body=b"{}")
                self.assertEqual(status, 414, path[:30])

    def test_http_1_0_connections_close_unless_kept_alive_and_say_which(self):
        # cpp-httplib closed the connection of an HTTP/1.0 request but answered
        # `Keep-Alive: timeout=5, ...` all the same; then, answering `Connection: close`, it kept
        # the connection of one that sent `Connection: Keep-Alive` (as `ab -k` does), which
        # waited for the close until the keep-alive timeout; `keep-alive` in lower case closed.
        def exchange(port, raw):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(raw)
                data = b""
                while chunk := sock.recv(65536):  # to the end: the server closes
                    data += chunk
            return data.decode()

        def heads(answer):
            return [a.split("\r\n\r\n")[0] + "\r\n" for a in answer.split("HTTP/1.1 ")[1:]]

        with Server(self.tmp / "data") as s:
            for raw in (b"GET /healthz HTTP/1.0\r\n\r\n",
                        b"GET /healthz HTTP/1.0\r\nConnection: close\r\n\r\n",
                        b"POST /api/v1/applications/ghost/predict HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}"):
                [head] = heads(exchange(s.port, raw))
                self.assertIn("\r\nConnection: close\r\n", head, raw)
                self.assertNotIn("Keep-Alive", head, raw)
            # Kept alive, in any case of the token, until a request that does not ask it.
            started = time.monotonic()
            answer = exchange(s.port, b"GET /healthz HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"
                                      b"POST /api/v1/applications/ghost/predict HTTP/1.0\r\n"
                                      b"Connection: keep-alive\r\nContent-Length: 2\r\n\r\n{}"
                                      b"GET /readyz HTTP/1.0\r\n\r\n")
            self.assertLess(time.monotonic() - started, 2 * TIMEOUT_SCALE)  # not the 5 s timeout
            kept1, kept2, last = heads(answer)
            for head in (kept1, kept2):
                self.assertIn("\r\nConnection: keep-alive\r\n", head)
                self.assertIn("\r\nKeep-Alive: timeout=", head)
            self.assertIn("404 ", kept2)
            self.assertIn("\r\nConnection: close\r\n", last)
            # HTTP/1.1 keeps the connection: two pipelined answers, the second (1.0) closing it.
            first, second = heads(exchange(s.port, b"GET /healthz HTTP/1.1\r\n\r\nGET /readyz HTTP/1.0\r\n\r\n"))
            self.assertIn("Keep-Alive: timeout=", first)
            self.assertIn("Connection: close", second)
            # HTTP/1.1's close option in any case, alone or in a list, on the inference fast
            # path and on cpp-httplib's: both answered `close` to "close" only and kept the
            # connection until the keep-alive timeout.
            for raw in (b"GET /healthz HTTP/1.1\r\nConnection: Close\r\n\r\n",
                        b"GET /healthz HTTP/1.1\r\nConnection: keep-alive, CLOSE\r\n\r\n",
                        b"POST /api/v1/applications/ghost/predict HTTP/1.1\r\nConnection: Close\r\n"
                        b"Content-Length: 2\r\n\r\n{}"):
                started = time.monotonic()
                [head] = heads(exchange(s.port, raw))
                self.assertLess(time.monotonic() - started, 2 * TIMEOUT_SCALE, raw)
                self.assertIn("\r\nConnection: close\r\n", head, raw)

    def test_a_data_directory_serves_one_server_at_a_time(self):
        # A second server on the same directory ran: at start it removed the first one's uploads
        # in progress as leftovers, then each kept its own applications.
        data = self.tmp / "data"
        with Server(data) as s:
            r = mlctl("serve", "--data-dir", data, "--listen", f"127.0.0.1:{free_port()}", timeout=30)
            self.assertFails(r, 1, f"{data}: in use by another mlctl serve (pid {s.pid}, {s.url})")
            status, _, _ = request(s, "GET", "/healthz")
            self.assertEqual(status, 200)
        with Server(data) as s:  # the lock went with the first server
            self.assertOk(mlctl("catalog", "list", env=s.env()))

    def test_refuses_non_loopback_without_token(self):
        r = mlctl("serve", "--data-dir", self.tmp / "data", "--listen", f"0.0.0.0:{free_port()}", timeout=30)
        self.assertFails(r, 1, "without --token-file")

    def test_bad_listen_and_busy_port(self):
        self.assertFails(mlctl("serve", "--data-dir", self.tmp / "d", "--listen", "nonsense"), 1, "HOST:PORT")
        self.assertFails(mlctl("serve", "--data-dir", self.tmp / "d", "--listen", "127.0.0.1:99999"), 1,
                         "--listen '127.0.0.1:99999': the port must be 0..65535 (0 picks a free one)")
        with Server(self.tmp / "data") as s:
            r = mlctl("serve", "--data-dir", self.tmp / "other", "--listen", f"127.0.0.1:{s.port}", timeout=30)
            self.assertFails(r, 1, f"cannot listen on 127.0.0.1:{s.port}: the port is in use (which program "
                                   f"holds it: ss -ltnp 'sport = :{s.port}'; or --listen 127.0.0.1:0 picks a free port)")
        # An address no interface has (TEST-NET-1, RFC 5737).
        r = mlctl("serve", "--data-dir", self.tmp / "other", "--listen", "192.0.2.1:9090",
                  "--insecure-listen-anywhere", timeout=30)
        self.assertFails(r, 1, "cannot listen on 192.0.2.1:9090: not an address of this machine")

    def test_starts_fast_on_a_1000_version_registry(self):
        data = self.tmp / "data"
        model = make_model_dir(self.tmp / "m")
        with Server(data) as s:
            self.assertOk(mlctl("catalog", "upload", model, env=s.env()))
        db = sqlite3.connect(data / "registry.db")
        row = db.execute("SELECT sha256, size, created_at, uploader FROM versions").fetchone()
        doc = db.execute("SELECT card, files FROM version_documents").fetchone()
        db.executemany("INSERT INTO versions VALUES ('tiny', ?, ?, ?, ?, ?)", [(v, *row) for v in range(2, 1001)])
        db.executemany("INSERT INTO version_documents VALUES ('tiny', ?, ?, ?)", [(v, *doc) for v in range(2, 1001)])
        db.execute("UPDATE models SET next_version = 1001")
        db.commit()
        db.close()
        s = Server(data)
        started = time.monotonic()
        with s:
            ready = time.monotonic() - started
            status, body = request_json(s, "GET", "/api/v1/models/tiny")
            self.assertEqual(body["version_count"], 1000)
        print(f"\n  ready on a 1,000-version registry in {ready * 1000:.0f} ms", flush=True)
        self.assertLess(ready, 1.0)


class AuthTest(TestCase):
    def token_file(self, mode=0o600):
        path = self.tmp / "token"
        path.write_text(TOKEN + "\n")
        path.chmod(mode)
        return path

    def test_token_required_for_api_not_for_health(self):
        with Server(self.tmp / "data", token_file=self.token_file()) as s:
            status, headers, data = request(s, "GET", "/api/v1/models", token="")
            self.assertEqual(status, 401)
            self.assertEqual(json.loads(data)["error"]["code"], "unauthorized")
            self.assertIn("bearer", headers["www-authenticate"].lower())
            status, _, data = request(s, "GET", "/api/v1/models", token="wrong-token-0123456789")
            self.assertEqual(status, 401)
            self.assertIn("invalid bearer token", json.loads(data)["error"]["message"])
            self.assertEqual(request(s, "GET", "/api/v1/models")[0], 200)
            self.assertEqual(request(s, "GET", "/healthz", token="")[0], 200)
            # An upload without the token is refused before its body is stored.
            status, _, _ = request(s, "POST", "/api/v1/models/x/versions", body=b"\0" * 100000, token="")
            self.assertEqual(status, 401)
            # A client that sends its whole body before it reads (http.client) gets the 401 too:
            # the refused body is read and dropped (the client's send stalled 30 s before).
            started = time.monotonic()
            status, _, _ = request(s, "POST", "/api/v1/models/x/versions", body=bytes(20 << 20), token="", timeout=30)
            self.assertEqual(status, 401)
            self.assertLess(time.monotonic() - started, 5 * TIMEOUT_SCALE)
            # The CLI: no token -> exit 1 with the hint; wrong token -> exit 1; right token -> 0.
            r = mlctl("catalog", "list", env={"MLCTL_SERVER": s.url})
            self.assertFails(r, 1, "missing bearer token")
            self.assertIn("--token", r.stderr)
            self.assertFails(mlctl("catalog", "list", env={**s.env(), "MLCTL_TOKEN": "nope"}), 1, "invalid bearer token")
            self.assertOk(mlctl("catalog", "list", env=s.env()))
        self.assertNotIn("warning", s.stderr())

    def test_token_file_readable_by_others_gives_a_warning(self):
        with Server(self.tmp / "data", token_file=self.token_file(0o644)) as s:
            pass
        self.assertIn("warning", s.stderr())
        self.assertIn("chmod 600", s.stderr())

    def test_empty_token_file_is_refused(self):
        path = self.tmp / "token"
        path.write_text("\n")
        r = mlctl("serve", "--data-dir", self.tmp / "data", "--listen", f"127.0.0.1:{free_port()}",
                  "--token-file", path, timeout=30)
        self.assertFails(r, 1, "empty")


class TlsTest(TestCase):
    def certificate(self):
        """A self-signed certificate for 127.0.0.1 and its key (skips without openssl)."""
        if not shutil.which("openssl"):
            self.skipTest("openssl is not installed")
        cert, key = self.tmp / "cert.pem", self.tmp / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
        return cert, key

    def test_mlctl_over_https_trusts_the_ca_it_is_given(self):
        cert, key = self.certificate()
        other = self.tmp / "other"
        other.mkdir()
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", other / "key.pem",
                        "-out", other / "cert.pem", "-days", "1", "-subj", "/CN=other"], check=True,
                       capture_output=True)
        data = make_dataset(self.tmp / "ds", 10, 20)
        with Server(self.tmp / "data", args=["--tls-cert", cert, "--tls-key", key]) as s:
            env = s.env()
            # Not signed by a CA of the system's store: refused at once (exit 1, not "unreachable"
            # 4; no retries), saying how to trust it.
            r = mlctl("catalog", "list", env=env)
            self.assertFails(r, 1, "SSL certificate problem")
            self.assertIn("pass its CA certificate with --cacert FILE or MLCTL_CACERT", r.stderr)
            self.assertNotIn("retry", r.stderr)
            self.assertFails(mlctl("--cacert", other / "cert.pem", "catalog", "list", env=env), 1,
                             f"checked against the CAs of {other / 'cert.pem'}")
            junk = self.tmp / "junk.pem"
            junk.write_text("not a certificate\n")
            self.assertFails(mlctl("--cacert", junk, "catalog", "list", env=env), 1,
                             f"{junk}: no CA certificate could be read from it (expected PEM)")
            self.assertFails(mlctl("--cacert", self.tmp / "missing.pem", "catalog", "list", env=env), 2,
                             "missing.pem")
            # Trusted: the REST client (upload, apply) and the inference client (predict).
            model = make_model_dir(self.tmp / "model")
            self.assertOk(mlctl("--cacert", cert, "catalog", "upload", model, env=env))
            trusted = {**env, "MLCTL_CACERT": str(cert)}
            self.assertOk(mlctl("apply", "application", "a", "--model", "tiny:1", env=trusted))
            r = mlctl("predict", "--app", "a", "--data", data / "test.npz", "--limit", "3", "-o", "json", env=trusted)
            self.assertOk(r)
            self.assertEqual(len(r.json()["predictions"]), 3)
            # A cluster keeps its CA file, for its own server only.
            config = {"XDG_CONFIG_HOME": str(self.tmp / "config")}
            self.assertOk(mlctl("cluster", "add", "tls", "--server", s.url, "--ca-file", cert, env=config))
            self.assertOk(mlctl("get", "applications", env=config))
            self.assertFails(mlctl("--server", f"https://localhost:{s.port}", "get", "applications", env=config), 1,
                             "--cacert")

    def test_https_with_tls_cert_and_key(self):
        cert, key = self.certificate()
        with Server(self.tmp / "data", args=["--tls-cert", cert, "--tls-key", key]) as s:
            self.assertTrue(s.url.startswith("https://"))
            context = ssl.create_default_context(cafile=str(cert))
            context.check_hostname = False
            with urllib.request.urlopen(s.url + "/api/v1/models", context=context, timeout=10) as r:
                self.assertEqual(json.loads(r.read())["models"], [])

    def test_https_clients_sending_slowly_hold_no_worker(self):
        # On a 4-worker HTTPS server, 12 clients connect and never begin their TLS handshake, and
        # 6 finish it and send their request a byte at a time: the handshakes and requests still
        # arriving wait parked, so another client is answered at once, and the slow requests when
        # whole.
        import socket
        cert, key = self.certificate()
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        with Server(self.tmp / "data", args=["--tls-cert", cert, "--tls-key", key, "--threads", "4"]) as s:
            silent = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(12)]
            slow = [context.wrap_socket(socket.create_connection(("127.0.0.1", s.port), timeout=10))
                    for _ in range(6)]
            request = b"GET /v2/health/live HTTP/1.1\r\nHost: mlctl\r\n\r\n"
            for i in range(len(request) - 1):
                for c in slow:
                    c.send(request[i:i + 1])
                if i % 10 == 9:
                    started = time.monotonic()
                    with urllib.request.urlopen(s.url + "/v2/health/live", context=context, timeout=30) as r:
                        self.assertEqual(r.status, 200)
                    self.assertLess(time.monotonic() - started, 1.0 * TIMEOUT_SCALE)
                time.sleep(0.05)
            for c in slow:
                c.send(request[-1:])
                self.assertTrue(c.recv(4096).startswith(b"HTTP/1.1 200"))
                c.close()
            for c in silent:
                c.close()

    def test_idle_keep_alive_clients_hold_no_thread_over_tls(self):
        import http.client
        cert, key = self.certificate()
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        with Server(self.tmp / "data", args=["--threads", "4", "--tls-cert", cert, "--tls-key", key]) as s:
            check_keep_alive_clients(
                self, lambda: http.client.HTTPSConnection("127.0.0.1", s.port, timeout=30, context=context))


class FlakyHandler(http.server.BaseHTTPRequestHandler):
    """Answers 503 to the first `failures` requests, then `answer` (a valid empty model list)."""
    failures = 2
    seen = []
    answer = b'{"models": [], "next_page_token": ""}'

    def do_GET(self):
        type(self).seen.append(self.path)
        if len(type(self).seen) <= type(self).failures:
            body = b'{"error": {"code": "unavailable", "message": "warming up"}}'
            self.send_response(503)
        else:
            body = type(self).answer
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class ClientRetryTest(TestCase):
    def test_503_twice_then_200_is_retried(self):
        FlakyHandler.seen = []
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FlakyHandler)
        t = threading.Thread(target=httpd.serve_forever, daemon=True)
        t.start()
        try:
            r = mlctl("--server", f"http://127.0.0.1:{httpd.server_port}", "catalog", "list", "-o", "json", timeout=60)
        finally:
            httpd.shutdown()
            httpd.server_close()
        self.assertOk(r)
        self.assertEqual(r.json()["models"], [])
        self.assertEqual(len(FlakyHandler.seen), 3)
        self.assertIn("retry", r.stderr)

    def test_dead_port_exits_4_quickly(self):
        port = free_port()
        started = time.monotonic()
        r = mlctl("--server", f"http://127.0.0.1:{port}", "catalog", "list", timeout=60)
        elapsed = time.monotonic() - started
        self.assertFails(r, 4, "connection refused (is mlctl serve running there? The address comes from --server")
        self.assertIn(f"127.0.0.1:{port}", r.stderr)
        self.assertLess(elapsed, 10)

    def test_server_that_stays_503_gives_exit_4(self):
        FlakyHandler.seen = []
        FlakyHandler.failures = 100
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FlakyHandler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            r = mlctl("--server", f"http://127.0.0.1:{httpd.server_port}", "catalog", "list", timeout=60)
        finally:
            FlakyHandler.failures = 2
            httpd.shutdown()
            httpd.server_close()
        self.assertFails(r, 4, "warming up")

    def test_json_of_another_shape_is_not_an_internal_error(self):
        # Another service at the server's address answering JSON mlctl does not expect.
        class Other(FlakyHandler):
            failures = 0
            seen = []
            answer = b'{"applications": "not a list", "models": 3}'
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Other)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            r = mlctl("--server", f"http://127.0.0.1:{httpd.server_port}", "get", "applications", timeout=60)
            self.assertFails(r, 1, "unexpected JSON in the answer: no \"applications\" list")
            self.assertNotIn("internal error", r.stderr)
            # Well-formed JSON without the lists printed empty tables, as if there were nothing.
            Other.answer = b'{"models": 3}'
            for args, path, member in ((("get", "applications"), "/api/v1/applications", "applications"),
                                       (("get", "applications", "a"), "/api/v1/applications/a", "stages"),
                                       (("describe", "application", "a"), "/api/v1/applications/a", "stages"),
                                       (("rollout", "history", "a"), "/api/v1/applications/a/revisions",
                                        "revisions")):
                r = mlctl("--server", f"http://127.0.0.1:{httpd.server_port}", *args, timeout=60)
                self.assertFails(r, 1, f"{path}: unexpected JSON in the answer: no \"{member}\" list")
                self.assertEqual(r.stdout, "", args)
            # The list there, its items of another shape: refused whole (describe printed its
            # fields, then failed on the table).
            Other.answer = b'{"name": "a", "stages": [1, 2]}'
            r = mlctl("--server", f"http://127.0.0.1:{httpd.server_port}", "describe", "application", "a",
                      timeout=60)
            self.assertFails(r, 1, "unexpected JSON in an answer")
            self.assertEqual(r.stdout, "")
        finally:
            httpd.shutdown()
            httpd.server_close()



class DiskFullTest(TestCase):
    def test_a_full_disk_is_507_not_retried_and_serving_goes_on(self):
        # The data directory on an 8 MB filesystem of the server's own: artifacts of 1.5 MB
        # fill it after a few uploads.
        mount = self.tmp / "small"
        wrapper = small_filesystem(mount, 8)
        with Server(mount / "data", wrapper=wrapper) as server:
            env = server.env()
            self.assertOk(mlctl("catalog", "upload", make_model_dir(self.tmp / "m", name="m"), env=env))
            self.assertOk(mlctl("apply", "application", "app", "--model", "m:1", env=env))
            failed = None
            for i in range(12):
                r = mlctl("catalog", "upload",
                          make_model_dir(self.tmp / f"big{i}", name="big", seed=i, pad_bytes=1_500_000), env=env)
                if r.code != 0:
                    failed = r
                    break
            self.assertIsNotNone(failed, "12 artifacts of 1.5 MB fitted on 8 MB")
            self.assertFails(failed, 1, "the server's disk is full (HTTP 507)")
            self.assertIn("No space left on device", failed.stderr)
            self.assertNotIn("retry", failed.stderr)
            deadline = time.monotonic() + 5 * TIMEOUT_SCALE  # the access log is written every 50 ms
            while True:
                statuses = [l["status"] for l in server.access_log() if l["path"] == "/api/v1/models/big/versions"]
                if 507 in statuses or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            self.assertEqual(statuses[-1], 507, statuses)
            self.assertEqual(statuses.count(507), 1, statuses)  # one request: not retried
            # Nothing half-written is left (seen through the server's own mount namespace), the
            # registry has every version that was registered, and inference goes on.
            tmp_dir = Path(f"/proc/{server.pid}/root") / (mount / "data" / "tmp").relative_to("/")
            self.assertEqual(list(tmp_dir.iterdir()), [])
            status, listing = request_json(server, "GET", "/api/v1/models/big/versions")
            self.assertEqual(status, 200, listing)
            self.assertEqual(len(listing["versions"]), len(statuses) - 1)
            status, answer = request_json(server, "POST", "/api/v1/applications/app/predict",
                                          {"images": [[0.5] * 784]})
            self.assertEqual(status, 200, answer)
            self.assertEqual(answer["model"], "m:1")
            # What space is left goes to smaller artifacts; then the request store's writes fail
            # too, and every inference record is still accounted for: stored, dropped, sampled
            # out or lost with a batch the disk could not take.
            for pad in (200_000, 20_000):
                for i in range(50):
                    small = make_model_dir(self.tmp / f"fill{pad}-{i}", name="fill", seed=i, pad_bytes=pad)
                    if mlctl("catalog", "upload", small, env=env).code != 0:
                        break
            answered = [request_json(server, "POST", "/api/v1/applications/app/predict",
                                     {"images": [[0.5] * 784]})[0] for _ in range(200)]
            self.assertEqual(answered, [200] * 200)
            deadline = time.monotonic() + 10 * TIMEOUT_SCALE  # the writer's last batch
            while True:
                _, _, text = request(server, "GET", "/metrics")
                store = {l.split()[0]: int(l.split()[1]) for l in text.decode().splitlines()
                         if l.startswith("mlctl_request_store_")}
                accounted = sum(store[f"mlctl_request_store_records_{k}_total"]
                                for k in ("stored", "dropped", "sampled_out", "lost"))
                if accounted == store["mlctl_request_store_records_received_total"] or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            self.assertEqual(store["mlctl_request_store_records_received_total"], accounted, store)
            self.assertGreater(store["mlctl_request_store_records_lost_total"], 0, store)

    def test_a_server_started_on_a_full_disk_says_so(self):
        # It said SQLite's "database or disk is full" (and, restarted on a data directory already
        # there, "disk I/O error": creating the WAL), nothing of how full.
        mount = self.tmp / "full"
        wrapper = small_filesystem(mount, 1, full=True)
        r = subprocess.run(wrapper + [MLCTL, "serve", "--data-dir", mount / "data", "--listen", f"127.0.0.1:{free_port()}"],
                           capture_output=True, text=True, timeout=30 * TIMEOUT_SCALE)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, r"registry\.db: .* \(0 bytes free on its disk\)")


if __name__ == "__main__":
    unittest.main()

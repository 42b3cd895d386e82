"""The request store on a real `mlctl serve`: every answered trace id is stored (one row per
image, with the input bytes), labels join by trace id (`POST /api/v1/feedback`, `mlctl
feedback`), `mlctl requests` lists them, sampled capture keeps exactly the trace ids whose
FNV-1a hash falls under the share, retention keeps the newest rows, and a SIGTERM writes what
was queued before the process exits."""

import csv
import json
import os
import unittest
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from harness import Server, TestCase, make_model_dir, mlctl


def fnv_fraction(trace_id: str) -> float:
    """The documented capture rule: FNV-1a 64 of the trace id, top 53 bits as a fraction."""
    h = 14695981039346656037
    for c in trace_id.encode():
        h ^= c
        h = (h * 1099511628211) % 2 ** 64
    return (h >> 11) * 2.0 ** -53


def http(server, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null"), dict(e.headers)


def images(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 784), dtype=np.uint8)


class RequestStoreTest(TestCase):
    def deploy(self, server, app="store-app", extra=()):
        model = make_model_dir(self.tmp / "model", name="tiny")
        r = mlctl("catalog", "upload", model, "--name", "tiny", env=server.env())
        self.assertOk(r)
        r = mlctl("apply", "application", app, "--model", "tiny:1", *extra, env=server.env())
        self.assertOk(r)

    def predict(self, server, app, batch):
        """POSTs one request of `batch` (uint8 rows) as floats; returns (status, body)."""
        status, body, _ = http(server, "POST", f"/api/v1/applications/{app}/predict",
                               {"images": (batch / 255.0).round(6).tolist()})
        return status, body

    def send_all(self, server, app, x, batch=1):
        chunks = [x[i:i + batch] for i in range(0, len(x), batch)]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda c: self.predict(server, app, c), chunks))
        for status, body in answers:
            self.assertEqual(status, 200, body)
        return answers

    def list_all(self, server, app, extra=""):
        rows, token = [], ""
        while True:
            status, page, _ = http(server, "GET", f"/api/v1/applications/{app}/requests?limit=1000"
                                                  f"&page_token={urllib.request.quote(token)}{extra}")
            self.assertEqual(status, 200, page)
            rows += page["requests"]
            token = page["next_page_token"]
            if not token:
                return rows

    def test_every_trace_id_is_stored_and_feedback_joins(self):
        with Server(self.tmp / "data") as server:
            self.deploy(server)
            x = images(400)
            answers = self.send_all(server, "store-app", x[:300])
            # and 50 requests of 2 images
            answers2 = self.send_all(server, "store-app", x[300:400], batch=2)
            trace_ids = [b["trace_id"] for _, b in answers]
            trace_ids2 = [b["trace_id"] for _, b in answers2]
            self.assertEqual(len(set(trace_ids + trace_ids2)), 350)

            rows = self.list_all(server, "store-app")
            self.assertEqual(len(rows), 400)
            stored = {(r["trace_id"], r["index"]) for r in rows}
            for t in trace_ids:
                self.assertIn((t, 0), stored)
            for t in trace_ids2:
                self.assertIn((t, 0), stored)
                self.assertIn((t, 1), stored)
            row = rows[0]
            for key in ("time", "model", "version", "variant", "latency_seconds", "status", "class",
                        "probabilities", "label", "stage", "application"):
                self.assertIn(key, row)
            self.assertEqual((row["model"], row["version"], row["variant"], row["status"]),
                             ("tiny", 1, "primary", 200))
            self.assertNotIn("input", row)
            times = [r["time"] for r in rows]
            self.assertEqual(times, sorted(times, reverse=True))

            # One trace, with its input bytes: round(x * 255) of what was sent.
            status, one, _ = http(server, "GET", f"/api/v1/requests/{trace_ids[7]}?include=input")
            self.assertEqual(status, 200, one)
            self.assertEqual(len(one["requests"]), 1)
            self.assertEqual(one["requests"][0]["input"], x[7].tolist())
            self.assertEqual(one["requests"][0]["class"], answers[7][1]["predictions"][0]["class"])
            status, missing, _ = http(server, "GET", "/api/v1/requests/" + "ab" * 16)
            self.assertEqual((status, missing["error"]["code"]), (404, "not_found"))
            status, bad, _ = http(server, "GET", "/api/v1/requests/nothex")
            self.assertEqual(status, 400, bad)

            # Feedback over HTTP: 100 labels, one unknown trace id, one label of the 2nd image.
            labels = [{"trace_id": t, "label": int(i % 10)} for i, t in enumerate(trace_ids[:100])]
            labels.append({"trace_id": trace_ids2[0], "label": 4, "index": 1})
            labels.append({"trace_id": "cd" * 16, "label": 1})
            status, result, _ = http(server, "POST", "/api/v1/feedback?application=store-app", labels)
            self.assertEqual(status, 200, result)
            self.assertEqual(result["received"], 102)
            self.assertEqual(result["matched"], 101)
            self.assertEqual(result["rows_labelled"], 101)
            self.assertEqual(result["unknown"], 1)
            self.assertEqual(result["unknown_trace_ids"], ["cd" * 16])
            status, one, _ = http(server, "GET", f"/api/v1/requests/{trace_ids2[0]}")
            self.assertEqual([r["label"] for r in one["requests"]], [None, 4])
            status, bad, _ = http(server, "POST", "/api/v1/feedback", [{"trace_id": "x", "label": 1}])
            self.assertEqual(status, 400)
            self.assertEqual(bad["error"]["message"], "feedback[0].trace_id: must be 32 lowercase hex digits")
            # A label that is no class of the model that answered (10 of 10 classes, as labels
            # counted from 1 give) was stored, and counted as a wrong answer. Now the request is
            # refused and nothing of it is labelled.
            status, bad, _ = http(server, "POST", "/api/v1/feedback",
                                  [{"trace_id": trace_ids[200], "label": 3},
                                   {"trace_id": trace_ids[201], "label": 10}])
            self.assertEqual(status, 400, bad)
            self.assertEqual(bad["error"]["message"],
                             f"feedback[1].label: 10 is not a class of tiny:1, which answered trace "
                             f"{trace_ids[201]} with 10 classes (0-9); nothing was labelled")
            status, one, _ = http(server, "GET", f"/api/v1/requests/{trace_ids[200]}")
            self.assertIsNone(one["requests"][0]["label"])
            # The CLI says the line of the CSV.
            (self.tmp / "bad.csv").write_text(f"trace_id,label\n{trace_ids[200]},3\n\n{trace_ids[201]},11\n")
            r = mlctl("feedback", "--file", self.tmp / "bad.csv", env=server.env())
            self.assertFails(r, 1, f"bad.csv:4: feedback[1].label: 11 is not a class of tiny:1")
            # A header of other names is refused, and the message says the one it reads.
            (self.tmp / "header.csv").write_text(f"trace,true_label\n{trace_ids[200]},3\n")
            r = mlctl("feedback", "--file", self.tmp / "header.csv", env=server.env())
            self.assertFails(r, 1, "header.csv:1: trace id 'trace' is not 32 lowercase hex digits (a header "
                                   "line must read trace_id,label or trace_id,label,index)")

            # The CLI: a CSV with a header as Excel's "CSV UTF-8" writes it (a byte-order mark,
            # CRLF), and one label by flag.
            with open(self.tmp / "labels.csv", "w", newline="", encoding="utf-8-sig") as f:
                w = csv.writer(f)
                w.writerow(["trace_id", "label", "index"])
                for t in trace_ids[100:150]:
                    w.writerow([t, 3, 0])
            r = mlctl("feedback", "--app", "store-app", "--file", self.tmp / "labels.csv", "-o", "json",
                      env=server.env())
            self.assertOk(r)
            self.assertEqual(r.json()["matched"], 50)
            r = mlctl("feedback", "--trace-id", trace_ids[150], "--label", "2", "-o", "json", env=server.env())
            self.assertOk(r)
            self.assertEqual(r.json()["matched"], 1)
            labelled = [row for row in self.list_all(server, "store-app") if row["label"] is not None]
            self.assertEqual(len(labelled), 152)

            r = mlctl("requests", "--app", "store-app", "--since", "10m", "--limit", "5", "-o", "json",
                      env=server.env())
            self.assertOk(r)
            self.assertEqual(len(r.json()["requests"]), 5)
            self.assertTrue(r.json()["next_page_token"])
            r = mlctl("requests", "--app", "store-app", "--limit", "3", env=server.env())
            self.assertOk(r)
            self.assertIn("TRACE ID", r.stdout)
            self.assertEqual(len(r.stdout.strip().splitlines()), 4)
            r = mlctl("requests", "--trace-id", trace_ids[0], "-o", "json", env=server.env())
            self.assertOk(r)
            self.assertEqual(r.json()["requests"][0]["label"], 0)
            r = mlctl("requests", "--app", "store-app", "--since", "yesterday", env=server.env())
            self.assertFails(r, 1, "since 'yesterday': expected an RFC 3339 time or an age like 10m")
            # A range that ends before it starts is refused, not answered with nothing.
            r = mlctl("requests", "--app", "store-app", "--since", "2026-01-02T00:00:00Z", "--until",
                      "2026-01-01T00:00:00Z", env=server.env())
            self.assertFails(r, 1, "since 2026-01-02T00:00:00.000Z is after until 2026-01-01T00:00:00.000Z")
            r = mlctl("feedback", "--app", "store-app", "--trace-id", "nothex", "--label", "1", env=server.env())
            self.assertFails(r, 1, "must be 32 lowercase hex digits")
            # A name never served (a typo) is not an empty history; a deleted application's is kept.
            r = mlctl("requests", "--app", "store-ap", env=server.env())
            self.assertFails(r, 1, "application 'store-ap' not found, and no request of it is stored")
            self.assertOk(mlctl("delete", "application", "store-app", env=server.env()))
            r = mlctl("requests", "--app", "store-app", "--limit", "3", "-o", "json", env=server.env())
            self.assertOk(r)
            self.assertEqual(len(r.json()["requests"]), 3)

    def test_refused_requests_are_stored_with_their_error(self):
        def post(path, body, trace_id, headers=()):
            req = urllib.request.Request(server.url + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01",
                                                  **dict(headers)})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())

        with Server(self.tmp / "data") as server:
            self.deploy(server)
            short, v2, pinned, good = ("a1" * 16, "b2" * 16, "c3" * 16, "d4" * 16)
            status, body = post("/api/v1/applications/store-app/predict", {"images": [[0.5] * 100]}, short)
            self.assertEqual(status, 400, body)
            short_message = body["error"]["message"]
            status, body = post("/v2/models/store-app/infer",
                                {"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32",
                                             "data": [0.5]}]}, v2)
            self.assertEqual(status, 400, body)
            v2_message = body["error"]
            status, body = post("/api/v1/applications/store-app/predict", {"images": [[0.5] * 784]}, pinned,
                                {"x-mlctl-variant": "tiny:9"})
            self.assertEqual(status, 400, body)
            status, body = post("/api/v1/applications/store-app/predict", {"images": [[0.5] * 784]}, good)
            self.assertEqual(status, 200, body)

            # Each refusal is one row under its trace id: the status and message the caller got,
            # no model, variant, class or image.
            for trace_id, message in ((short, short_message), (v2, v2_message), (pinned, None)):
                status, one, _ = http(server, "GET", f"/api/v1/requests/{trace_id}?include=input")
                self.assertEqual(status, 200, one)
                self.assertEqual(len(one["requests"]), 1, one)
                row = one["requests"][0]
                self.assertEqual((row["application"], row["status"], row["model"], row["version"], row["variant"],
                                  row["class"], row["probabilities"]),
                                 ("store-app", 400, "", 0, "", None, []), row)
                self.assertNotIn("input", row)
                self.assertEqual(row["error"], message or "x-mlctl-variant 'tiny:9': application 'store-app' "
                                                          "does not serve it")
            r = mlctl("requests", "--trace-id", short, env=server.env())
            self.assertOk(r)
            header, line = r.stdout.splitlines()
            self.assertEqual(header.split()[-1], "ERROR")
            # MODEL, VARIANT, STATUS, CLASS, LABEL, LATENCY: no model ran, so no latency either.
            self.assertEqual(line.split()[3:9], ["-", "-", "400", "-", "-", "-"])
            self.assertIn(short_message[:40], line)
            # The listing has all four; the variant's counters and the monitors count the one
            # request the model answered.
            self.assertEqual(len(self.list_all(server, "store-app")), 4)
            variant = mlctl("describe", "application", "store-app", "-o", "json", env=server.env()).json()
            variant = variant["stages"][0]["variants"][0]
            self.assertEqual((variant["requests"], variant["errors"]), (1, 0))

    def test_sampled_capture_retention_and_flush_on_shutdown(self):
        data = self.tmp / "data"
        with Server(data, args=["--store-max-rows", "150"]) as server:
            self.deploy(server, app="sampled", extra=["--capture-sample", "0.5"])
            answers = self.send_all(server, "sampled", images(200, seed=1))
            trace_ids = [b["trace_id"] for _, b in answers]
            expected = {t for t in trace_ids if fnv_fraction(t) < 0.5}
            self.assertTrue(60 < len(expected) < 140, len(expected))
            stored = {r["trace_id"] for r in self.list_all(server, "sampled")}
            self.assertEqual(stored, expected)

            # Retention: at most 150 rows, the newest kept.
            r = mlctl("apply", "application", "sampled", "--model", "tiny:1", "--capture-sample", "1",
                      env=server.env())
            self.assertOk(r)
            answers = self.send_all(server, "sampled", images(200, seed=2))
            rows = self.list_all(server, "sampled")
            self.assertEqual(len(rows), 150)
            newest = {b["trace_id"] for _, b in answers[-50:]}
            self.assertTrue(newest <= {r["trace_id"] for r in rows})

            # Requests answered right before SIGTERM are written before the process exits.
            last = self.send_all(server, "sampled", images(20, seed=3))
        with Server(data, args=["--store-max-rows", "150"]) as server:
            stored = {r["trace_id"] for r in self.list_all(server, "sampled")}
            for _, b in last:
                self.assertIn(b["trace_id"], stored)
        self.assertTrue((data / "requests.db").exists())
        self.assertTrue(list((data / "requests-images").glob("*.u8")))  # the images, beside it

    def test_retention_by_size_needs_four_image_files(self):
        r = mlctl("serve", "--data-dir", self.tmp / "d", "--listen", "127.0.0.1:0", "--store-max-mb", "10",
                  timeout=30)
        self.assertFails(r, 1, "--store-max-mb 10: must be 0 (no limit) or at least 64 (four image files)")
        with Server(self.tmp / "data", args=["--store-max-mb", "64"]) as server:
            self.deploy(server, app="sized")
            answers = self.send_all(server, "sized", images(20, seed=4))
            rows = self.list_all(server, "sized")
            self.assertEqual({r["trace_id"] for r in rows}, {b["trace_id"] for _, b in answers})


if __name__ == "__main__":
    unittest.main()

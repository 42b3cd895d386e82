"""Monitoring on a real `mlctl serve`: the drift demonstration (500 MNIST test digits keep the
version healthy, 500 Fashion-MNIST images push its reconstruction score far above the
threshold and turn it unhealthy, digits again bring it back), the health events in SQLite and
at a webhook receiver on loopback, `/metrics` through `promtool check metrics`, `mlctl
monitor` (table, JSON, PNG charts), accuracy from feedback, and `mlctl subsample` -> `mlctl
train --merge` on the sampled production traffic."""

import http.client
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import ssl
import threading
import time
import unittest
from pathlib import Path

import numpy as np

from harness import FASHION_MNIST_DIR, Server, TestCase, fetch_npm_digits, free_port, make_dataset, TIMEOUT_SCALE, mlctl

APP = "digits"


class Receiver:
    """A webhook receiver on 127.0.0.1: keeps every JSON body POSTed to it. Over https, with a
    self-signed certificate (`cert`) made in `tls_dir`, when given."""

    def __init__(self, tls_dir=None):
        self.bodies = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    outer.bodies.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls_dir is not None:
            tls_dir.mkdir()
            self.cert, key = tls_dir / "cert.pem", tls_dir / "key.pem"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out",
                            self.cert, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                            "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.cert, key)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self):
        with self.lock:
            return list(self.bodies)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Client:
    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body)
        self.conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        r = self.conn.getresponse()
        raw = r.read()
        return r.status, (json.loads(raw) if raw and raw[:1] in (b"{", b"[") else raw)


class MonitoringTest(TestCase):
    @classmethod
    def setUpClass(cls):
        cls._root = tempfile.TemporaryDirectory(prefix="mlctl-e2e-monitoring-")
        root = Path(cls._root.name)
        cls.digits = fetch_npm_digits(root / "digits")
        cls.fashion = make_dataset(root / "fashion", 10, 500)  # skips without dataset-fashion-mnist
        r = mlctl("train", "--data", cls.digits, "--out", root / "model", "--epochs", "2", "--ae-epochs", "10",
                  "-o", "json")
        assert r.code == 0, r
        cls.model = root / "model"
        cls.threshold = r.json()["monitoring"]["reconstruction"]["threshold"]

    @classmethod
    def tearDownClass(cls):
        cls._root.cleanup()

    def send(self, client, x, batch=5):
        traces = []
        for i in range(0, len(x), batch):
            status, body = client.call("POST", f"/api/v1/applications/{APP}/predict",
                                       {"images": x[i:i + batch].reshape(-1, 784).tolist()})
            self.assertEqual(status, 200, body)
            traces.append((body["trace_id"], [p["class"] for p in body["predictions"]]))
        return traces

    def health(self, client, scored_at_least, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            status, h = client.call("GET", f"/api/v1/applications/{APP}/health")
            self.assertEqual(status, 200, h)
            v = h["versions"][0] if h["versions"] else None
            if v and v["reconstruction"]["scored"] >= scored_at_least or time.monotonic() > deadline:
                return h

    def test_drift_health_webhook_metrics_and_retraining(self):
        t0 = time.monotonic()
        digits = np.load(self.digits / "test.npz")
        fashion = np.load(self.fashion / "test.npz")
        # The webhook over https when openssl can make a certificate: the server trusts it
        # through --cacert (MLCTL_CACERT).
        tls = shutil.which("openssl") is not None
        receiver = Receiver(self.tmp / "tls" if tls else None)
        self.addCleanup(receiver.close)
        with Server(self.tmp / "data", args=["--webhook", receiver.url],
                    env={"MLCTL_CACERT": str(receiver.cert)} if tls else None) as server:
            env = server.env()
            self.assertOk(mlctl("catalog", "upload", self.model, env=env))
            self.assertOk(mlctl("apply", "application", APP, "--model", "mnist:1", env=env))
            client = Client(server.port)
            self.addCleanup(client.conn.close)

            # Before any request: a window reaching before the server's start says where the
            # in-memory series begin, and where earlier requests are.
            status, m = client.call("GET", f"/api/v1/applications/{APP}/metrics?since=1h")
            self.assertEqual(status, 200, m)
            self.assertLess(m["since"], m["collected_since"])
            r = mlctl("monitor", "--app", APP, "--since", "1h", env=env)
            self.assertOk(r)
            self.assertIn(f"(no requests since {m['collected_since']}, where the series begin (the server's "
                          f"start, or the oldest step kept); earlier requests are listed by 'mlctl requests "
                          f"--app {APP} --since AGE')", r.stdout)

            # 0. One request of 5 images: unknown, and describe says how far the monitor is.
            traces = self.send(client, digits["x"][:5])
            h = self.health(client, 5)
            self.assertEqual(h["versions"][0]["state"], "unknown", h)
            self.assertEqual(h["versions"][0]["reconstruction"]["samples_needed"], 10, h)
            described = mlctl("describe", "application", APP, env=env)
            self.assertIn("  mnist:1:      unknown (5 of the 10 scored images it is judged on): reconstruction",
                          described.stdout)

            # 1. Digits: healthy, the score under the threshold.
            traces += self.send(client, digits["x"][5:500])
            h = self.health(client, 500)
            v = h["versions"][0]
            digit_score = v["reconstruction"]["mean"]
            self.assertEqual((h["state"], v["state"]), ("healthy", "healthy"), h)
            self.assertLess(digit_score, self.threshold)
            self.assertEqual(v["reconstruction"]["threshold"], self.threshold)

            # 2. Fashion-MNIST: far above the threshold, unhealthy, an event stored and POSTed.
            self.send(client, fashion["x"][:500])
            h = self.health(client, 1000)
            v = h["versions"][0]
            fashion_score = v["reconstruction"]["mean"]
            ratio = fashion_score / self.threshold
            print(f"\ndrift: digits score {digit_score:.4f}, fashion score {fashion_score:.4f}, "
                  f"threshold {self.threshold:.4f}: {ratio:.1f}x the threshold "
                  f"({fashion_score / digit_score:.1f}x the digits)")
            self.assertEqual((h["state"], v["state"]), ("unhealthy", "unhealthy"), h)
            self.assertGreater(ratio, 2.0)
            self.assertEqual([(e["from"], e["to"]) for e in h["events"]], [("healthy", "unhealthy")])
            event = h["events"][0]
            self.assertEqual((event["monitor"], event["ref"]), ("reconstruction", "mnist:1"))
            self.assertGreater(event["value"], event["threshold"])

            # The application itself carries its health (`mlctl describe application`).
            status, app = client.call("GET", f"/api/v1/applications/{APP}")
            self.assertEqual(status, 200, app)
            self.assertEqual(app["health"]["state"], "unhealthy")

            # 3. Digits again: healthy.
            self.send(client, digits["x"][500:1000])
            h = self.health(client, 1500)
            self.assertEqual(h["state"], "healthy", h)
            self.assertLess(h["versions"][0]["reconstruction"]["mean"], self.threshold)
            self.assertEqual([(e["from"], e["to"]) for e in h["events"]],
                             [("healthy", "unhealthy"), ("unhealthy", "healthy")])

            deadline = time.monotonic() + 10
            while len(receiver.events()) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            posted = receiver.events()
            self.assertEqual([(e["type"], e["to"]) for e in posted], [("health", "unhealthy"), ("health", "healthy")])
            self.assertEqual(posted[0]["application"], APP)
            self.assertEqual(posted[0]["id"], h["events"][0]["id"])

            # Prometheus exposition: valid for promtool, with the conventional names.
            status, text = client.call("GET", "/metrics")
            self.assertEqual(status, 200)
            text = text.decode()
            labels = f'application="{APP}",model="mnist",version="1",variant="primary"'
            self.assertIn(f"mlctl_requests_total{{{labels}}} 300\n", text)
            self.assertIn(f"mlctl_images_total{{{labels}}} 1500\n", text)
            self.assertIn(f"mlctl_request_errors_total{{{labels}}} 0\n", text)
            self.assertIn(f'mlctl_request_duration_seconds_bucket{{{labels},le="+Inf"}} 300\n', text)
            self.assertIn(f"mlctl_reconstruction_score{{{labels}}} ", text)
            self.assertIn(f"mlctl_version_healthy{{{labels}}} 1\n", text)
            self.assertIn("# TYPE mlctl_request_duration_seconds histogram", text)
            self.assertIn("mlctl_request_store_records_stored_total", text)
            predicted = sum(int(l.rsplit(" ", 1)[1]) for l in text.splitlines()
                            if l.startswith("mlctl_predictions_total{"))
            self.assertEqual(predicted, 1500)
            promtool = shutil.which("promtool")
            if promtool:
                check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
                self.assertEqual(check.returncode, 0, check.stdout + check.stderr)

            # Feedback on the first 200 digits: accuracy appears.
            labels_body = []
            for k, (trace, _) in enumerate(traces[:40]):
                for i in range(5):
                    labels_body.append({"trace_id": trace, "index": i, "label": int(digits["y"][k * 5 + i])})
            status, fb = client.call("POST", f"/api/v1/feedback?application={APP}", labels_body)
            self.assertEqual((status, fb["matched"]), (200, 200), fb)
            deadline = time.monotonic() + 10
            while True:
                _, h = client.call("GET", f"/api/v1/applications/{APP}/health")
                acc = h["versions"][0]["accuracy"]
                if acc["labelled"] >= 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            self.assertEqual(acc["labelled"], 200, h)
            self.assertGreater(acc["value"], 0.8)

            # mlctl monitor: table, JSON and the charts.
            r = mlctl("monitor", "--app", APP, "--since", "5m", "--plot", self.tmp / "monitor.png", env=env)
            self.assertOk(r)
            self.assertIn("mnist:1", r.stdout)
            self.assertIn("unhealthy", r.stdout)  # the events
            self.assertIn("\u2581", r.stdout)     # sparklines
            # The heading gives the window; when a version's state began is in its own heading.
            self.assertRegex(r.stdout.splitlines()[0],
                             rf"^application {APP}: \w+ \(window \S+Z to \S+Z, step \d+s\)$")
            self.assertRegex(r.stdout, r"\nmnist:1 \(primary\): healthy since \S+Z\n")
            png = (self.tmp / "monitor.png").read_bytes()
            self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
            r = mlctl("monitor", "--app", APP, "-o", "json", env=env)
            self.assertOk(r)
            series = r.json()["metrics"]["series"]
            self.assertEqual(len(series), 1)
            self.assertEqual(sum(p["requests"] for p in series[0]["points"]), 300)
            self.assertEqual(sum(p["labelled"] for p in series[0]["points"]), 200)
            self.assertEqual(series[0]["totals"]["health"], "healthy")
            if os.environ.get("MLCTL_KEEP_PICTURES"):
                shutil.copy(self.tmp / "monitor.png", os.environ["MLCTL_KEEP_PICTURES"])

            # Subsample the labelled production traffic and retrain on it merged with the digits.
            r = mlctl("subsample", "--app", APP, "-n", "150", "--out", self.tmp / "retrain", "--strategy",
                      "stratified", "-o", "json", env=env)
            self.assertOk(r)
            sub = r.json()
            self.assertEqual(sub["train"] + sub["test"], 150)
            self.assertEqual(sub["scanned"], 200)  # labelled rows only
            info = json.loads((self.tmp / "retrain" / "dataset.json").read_text())
            self.assertEqual(info["source"]["application"], APP)
            self.assertEqual(info["source"]["strategy"], "stratified")
            self.assertFalse(info["source"]["pseudo_label"])
            described = mlctl("data", "describe", self.tmp / "retrain")
            self.assertOk(described)
            self.assertIn(f"source:         requests of application {APP} at {server.url} (stratified, "
                          "labelled only, test fraction 0.25)\n", described.stdout)
            sample = np.load(self.tmp / "retrain" / "train.npz")
            self.assertEqual(sample["x"].shape[1:], (28, 28))
            # Every sampled image is one of the labelled digits, with its true label.
            known = {digits["x"][i].tobytes(): int(digits["y"][i]) for i in range(200)}
            for x, y in zip(sample["x"], sample["y"]):
                self.assertEqual(known.get(x.tobytes()), int(y))

            # --labelled, as rollout's --min-labelled spells it (--labeled still works).
            r = mlctl("subsample", "--app", APP, "-n", "50", "--out", self.tmp / "pseudo", "--pseudo-label",
                      "--labelled", "any", "-o", "json", env=env)
            self.assertOk(r)
            self.assertGreater(r.json()["pseudo_labelled"], 0)

            # Traffic labelled just before the subsample is in it (a window that ended 250 ms
            # before the call left it out: the quickstart's retraining found no labelled rows).
            fresh = self.send(client, digits["x"][200:210])
            status, fb = client.call("POST", f"/api/v1/feedback?application={APP}",
                                     [{"trace_id": t, "index": i, "label": 0} for t, _ in fresh for i in range(5)])
            self.assertEqual((status, fb["matched"]), (200, 10), fb)
            status, sub = client.call("GET", f"/api/v1/applications/{APP}/subsample?n=500")
            self.assertEqual((status, sub["scanned"], sub["count"]), (200, 210, 210), sub)

            r = mlctl("train", "--data", self.tmp / "retrain", "--merge", self.digits, "--out", self.tmp / "m2",
                      "--epochs", "1", "--ae-epochs", "1", "-o", "json")
            self.assertOk(r)
            card = (self.tmp / "m2" / "model.yaml").read_text()
            self.assertIn(str(self.tmp / "retrain"), card)
            self.assertIn(str(self.digits), card)
            self.assertIn("production-subsample", card)

            r = mlctl("subsample", "--app", "nope", "-n", "5", "--out", self.tmp / "x", env=env)
            self.assertFails(r, 1, "no stored labelled requests")
        self.assertLess(time.monotonic() - t0, 60 * TIMEOUT_SCALE)


if __name__ == "__main__":
    unittest.main(verbosity=2)

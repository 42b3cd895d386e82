"""`mlctl test` against a real `mlctl serve`: it passes (exit 0, JUnit XML without failures)
for an application serving a trained model, and exits 3 for one serving an untrained
(random) model — with ACCEPTABLE_ACCURACY setting the threshold as in the original
tutorial. `mlctl predict --app` prints class, probabilities, version and trace id."""

import unittest
import xml.etree.ElementTree as ET

import numpy as np

from harness import Server, TestCase, make_dataset, make_model_dir, mlctl
from test_predict import write_png


class TestCommandTest(TestCase):
    def test_good_model_passes_and_random_model_exits_3(self):
        data = make_dataset(self.tmp / "fashion", n_train=3000, n_test=300)
        good = self.tmp / "good"
        r = mlctl("train", "--data", data, "--out", good, "--name", "good", "--epochs", "2",
                  "--hidden", "64", "--no-autoencoder", "--seed", "1")
        self.assertOk(r)
        bad = make_model_dir(self.tmp / "bad", name="bad", seed=5)  # random weights: ~10% accuracy

        with Server(self.tmp / "srv") as server:
            env = server.env()
            for name, path in (("good", good), ("bad", bad)):
                self.assertOk(mlctl("catalog", "upload", path, "--name", name, env=env))
                self.assertOk(mlctl("apply", "application", f"{name}-app", "--model", f"{name}:1", env=env))

            junit = self.tmp / "good.xml"
            r = mlctl("test", "--app", "good-app", "--data", data / "test.npz", "--samples", "200",
                      "--batch-size", "4", "--min-accuracy", "0.6", "--junit", junit, "-o", "json", env=env)
            self.assertOk(r)
            report = r.json()
            self.assertTrue(report["passed"], report)
            self.assertGreaterEqual(report["accuracy"], 0.6)
            self.assertEqual(report["images"], 200)
            self.assertEqual(report["requests"], 50)
            self.assertEqual(report["answered_by"], {"good:1": 200})
            self.assertGreater(report["latency_p99_ms"], 0)
            self.assertGreaterEqual(report["latency_p99_ms"], report["latency_p50_ms"])
            names = [c["name"] for c in report["cases"]]
            for expected in ("golden set accuracy", "all-zero image is answered", "all-one image is answered",
                             "wrong shape is refused", "NaN is refused", "empty batch is refused"):
                self.assertIn(expected, names)
            self.assertTrue(any(n.startswith("batch over the limit") for n in names))
            suite = ET.parse(junit).getroot()
            self.assertEqual(suite.tag, "testsuites")
            self.assertEqual(suite.get("failures"), "0")
            self.assertEqual(len(suite.findall(".//testcase")), len(names))
            self.assertEqual(suite.findall(".//failure"), [])

            # The table form; the data directory works as well as its test.npz.
            r = mlctl("test", "--app", "good-app", "--data", data, "--samples", "50", "--min-accuracy", "0.5",
                      env=env)
            self.assertOk(r)
            self.assertIn("latency p99", r.stdout)
            self.assertIn("passed", r.stdout)

            junit_bad = self.tmp / "bad.xml"
            r = mlctl("test", "--app", "bad-app", "--data", data / "test.npz", "--samples", "200",
                      "--batch-size", "8", "--junit", junit_bad, env={**env, "ACCEPTABLE_ACCURACY": "0.6"})
            self.assertFails(r, 3, "application bad-app: 1 of 7 check(s) failed")
            self.assertIn("under the minimum", r.stdout)
            suite = ET.parse(junit_bad).getroot()
            self.assertEqual(suite.get("failures"), "1")
            failure = suite.find(".//testcase[@name='golden set accuracy']/failure")
            self.assertIsNotNone(failure)
            self.assertIn("minimum 0.6000", failure.get("message"))

            # An application that does not exist is an error before any request, not a failed gate.
            r = mlctl("test", "--app", "nope", "--data", data / "test.npz", "--samples", "5", "--junit",
                      self.tmp / "nope.xml", env=env)
            self.assertFails(r, 1, "application 'nope' not found")
            self.assertEqual(r.stdout, "")
            self.assertFalse((self.tmp / "nope.xml").exists())

            # predict through the endpoint: class, probabilities, version, trace id per image.
            r = mlctl("predict", "--app", "good-app", "--data", data / "test.npz", "--indices", "0,5,7",
                      "-o", "json", env=env)
            self.assertOk(r)
            out = r.json()
            self.assertEqual([p["index"] for p in out["predictions"]], [0, 5, 7])
            for p in out["predictions"]:
                self.assertEqual(p["model"], "good:1")
                self.assertEqual(len(p["trace_id"]), 32)
                self.assertEqual(len(p["probabilities"]), 10)
                self.assertIn(p["class"], range(10))
                self.assertIn(p["label"], range(10))
            r = mlctl("predict", "--app", "good-app", "--data", data / "test.npz", "--limit", "2", env=env)
            self.assertOk(r)
            self.assertIn("TRACE ID", r.stdout)
            # Through an application the first 10 images by default; --limit 0 is all of them.
            count = len(np.load(data / "test.npz")["y"])
            for extra, want in (([], 10), (["--limit", "0"], count)):
                r = mlctl("predict", "--app", "good-app", "--data", data / "test.npz", *extra, "-o", "json", env=env)
                self.assertOk(r)
                self.assertEqual(len(r.json()["predictions"]), want, extra)
            # One PNG through the endpoint; one of the wrong size is refused by the server, and the
            # message says the picture's size.
            png, big = self.tmp / "digit.png", self.tmp / "big.png"
            write_png(png, np.full((28, 28), 255, dtype=np.uint8))
            write_png(big, np.zeros((32, 40), dtype=np.uint8))
            r = mlctl("predict", "--app", "good-app", "--image", png, "-o", "json", env=env)
            self.assertOk(r)
            self.assertEqual(r.json()["predictions"][0]["model"], "good:1")
            self.assertFails(mlctl("predict", "--app", "good-app", "--image", big, env=env), 1,
                             f"application good-app: HTTP 400: images[0]: more than 784 values ({big} is 40×32 pixels)"
                             "; --fit brings any picture of a digit to the model's form")
            # --fit takes the image size from the application's V2 metadata: a photo of a test
            # image (5× larger, dark on white) answers as the same photo fitted offline does.
            photo = self.tmp / "photo.png"
            x = np.load(data / "test.npz")["x"][3]
            canvas = np.full((190, 170), 255, dtype=np.uint8)
            canvas[20:160, 30:170] = 255 - np.kron(x, np.ones((5, 5), dtype=np.uint8))
            write_png(photo, canvas)
            r = mlctl("predict", "--app", "good-app", "--image", photo, "--fit", "-o", "json", env=env)
            self.assertOk(r)
            remote = r.json()
            self.assertTrue(remote["fit"]["inverted"])
            self.assertEqual(remote["fit"]["size"], [170, 190])
            local = mlctl("predict", "--model", good, "--image", photo, "--fit", "-o", "json").json()
            self.assertEqual(remote["fit"], local["fit"])
            self.assertEqual(remote["predictions"][0]["class"], local["class"])
            np.testing.assert_allclose(remote["predictions"][0]["probabilities"], local["probabilities"], atol=1e-5)
            r = mlctl("predict", "--app", "good-app", "--image", photo, "--fit", env=env)
            self.assertOk(r)
            self.assertRegex(r.stdout, r"fit:\s+170×190, inverted; the digit \(\d+×\d+ at \d+,\d+\) scaled to "
                                       r"\d+×\d+, centred in 28×28")
            # The offline form still works.
            r = mlctl("predict", "--model", good, "--data", data / "test.npz", "--limit", "50", "-o", "json")
            self.assertOk(r)
            self.assertEqual(r.json()["count"], 50)
            r = mlctl("predict", "--data", data / "test.npz")
            self.assertFails(r, 2)

    def test_the_over_limit_case_uses_the_servers_max_batch(self):
        data = make_dataset(self.tmp / "fashion", n_train=10, n_test=20)
        with Server(self.tmp / "srv", args=["--max-batch", "16"]) as server:
            env = server.env()
            self.assertOk(mlctl("catalog", "upload", make_model_dir(self.tmp / "m"), "--name", "m", env=env))
            self.assertOk(mlctl("apply", "application", "m-app", "--model", "m:1", env=env))
            r = mlctl("test", "--app", "m-app", "--data", data / "test.npz", "--min-accuracy", "0", "-o", "json",
                      env=env)
            self.assertOk(r)
            names = [c["name"] for c in r.json()["cases"]]
            self.assertTrue(any(n.startswith("batch over the limit (17 images)") for n in names), names)


if __name__ == "__main__":
    unittest.main()

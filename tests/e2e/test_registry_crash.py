"""Crash safety of the registry: `kill -9` of the server in the middle of an upload (and at
random moments during concurrent uploads), then a restart: the registry is consistent, the
interrupted version does not exist, leftovers are cleaned, the next upload succeeds."""

import hashlib
import http.client
import os
import random
import sqlite3
import subprocess
import tarfile
import threading
import time
import unittest
from pathlib import Path

from harness import MLCTL, Server, TestCase, make_model_dir, mlctl
from registry_fixtures import request_json


def pack(model_dir: Path, out: Path) -> bytes:
    with tarfile.open(out, "w:gz") as tar:
        for name in ("model.yaml", "model.onnx"):
            tar.add(model_dir / name, arcname=name)
    return out.read_bytes()


class RegistryCrashTest(TestCase):
    def assert_consistent(self, data: Path):
        """Every version row has its bytes at their address, every stored file is referenced,
        no temporary is left, the database is intact and numbers have no gaps."""
        db = sqlite3.connect(data / "registry.db")
        self.assertEqual(db.execute("PRAGMA integrity_check").fetchone()[0], "ok")
        self.assertEqual(db.execute("PRAGMA foreign_key_check").fetchall(), [])
        rows = db.execute("SELECT name, version, sha256, size FROM versions ORDER BY name, version").fetchall()
        db.close()
        referenced = set()
        by_name = {}
        for name, version, sha, size in rows:
            path = data / "artifacts" / "sha256" / sha[:2] / sha
            self.assertTrue(path.is_file(), f"{name}:{version}: artifact missing")
            self.assertEqual(path.stat().st_size, size)
            self.assertEqual(hashlib.sha256(path.read_bytes()).hexdigest(), sha, f"{name}:{version}: corrupt")
            referenced.add(sha)
            by_name.setdefault(name, []).append(version)
        stored = {p.name for p in (data / "artifacts").rglob("*") if p.is_file()}
        self.assertEqual(stored, referenced, "unreferenced files under artifacts/")
        self.assertEqual(list((data / "tmp").iterdir()), [])
        for name, versions in by_name.items():
            self.assertEqual(versions, list(range(1, len(versions) + 1)), f"{name}: gaps")
        return rows

    def test_kill_9_in_the_middle_of_an_upload(self):
        data = self.tmp / "data"
        model = make_model_dir(self.tmp / "model", name="crash", pad_bytes=4 << 20)
        body = pack(model, self.tmp / "artifact.tar.gz")
        with Server(data) as s:
            self.assertOk(mlctl("catalog", "upload", make_model_dir(self.tmp / "first", name="first"), env=s.env()))
            conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
            conn.putrequest("POST", "/api/v1/models/crash/versions")
            conn.putheader("Content-Length", str(len(body)))
            conn.putheader("Content-Type", "application/gzip")
            conn.endheaders()
            half = len(body) // 2
            for i in range(0, half, 64 << 10):  # a slow client: 64 KiB every 10 ms
                conn.send(body[i:i + (64 << 10)])
                time.sleep(0.01)
            deadline = time.monotonic() + 5
            partial = []
            while time.monotonic() < deadline and not partial:
                partial = [p for p in (data / "tmp").iterdir() if p.stat().st_size > 0]
                time.sleep(0.02)
            self.assertTrue(partial, "the upload never reached the temporary file")
            s.kill()
            conn.close()
        self.assertTrue(list((data / "tmp").iterdir()), "the crash should have left the temporary file")

        with Server(data) as s:
            self.assertIn("recovered from an interrupted run", s.stderr())
            rows = self.assert_consistent(data)
            self.assertEqual([(r[0], r[1]) for r in rows], [("first", 1)])
            status, _ = request_json(s, "GET", "/api/v1/models/crash/versions")
            self.assertEqual(status, 404)
            r = mlctl("catalog", "upload", model, env=s.env())
            self.assertOk(r)
            self.assertEqual(r.stdout, "crash:1\n")
            self.assertOk(mlctl("catalog", "download", "crash:1", "--out", self.tmp / "back", env=s.env()))
        self.assertEqual((self.tmp / "back" / "model.onnx").read_bytes(), (model / "model.onnx").read_bytes())

    def test_leftovers_of_the_commit_window_are_removed_at_start(self):
        """What a crash between the rename into place and the COMMIT leaves: bytes at an
        address no row references, plus temporaries. A restart removes exactly those."""
        data = self.tmp / "data"
        with Server(data) as s:
            self.assertOk(mlctl("catalog", "upload", make_model_dir(self.tmp / "m", name="kept"), env=s.env()))
        orphan_bytes = b"renamed into place, never committed"
        sha = hashlib.sha256(orphan_bytes).hexdigest()
        orphan = data / "artifacts" / "sha256" / sha[:2] / sha
        orphan.parent.mkdir(parents=True, exist_ok=True)
        orphan.write_bytes(orphan_bytes)
        (data / "tmp" / "upload-leftover").write_bytes(b"partial")
        (data / "tmp" / "scratch-leftover").mkdir()
        (data / "tmp" / "scratch-leftover" / "model.onnx").write_bytes(b"x")
        with Server(data) as s:
            self.assertIn("removed 2 temporary file(s) and 1 unreferenced artifact(s)", s.stderr())
            self.assertFalse(orphan.exists())
            rows = self.assert_consistent(data)
            self.assertEqual([(r[0], r[1]) for r in rows], [("kept", 1)])
            self.assertOk(mlctl("catalog", "download", "kept:1", "--out", self.tmp / "k", env=s.env()))

    def test_kill_9_at_random_moments_during_concurrent_uploads(self):
        data = self.tmp / "data"
        rng = random.Random(1234)
        models = [make_model_dir(self.tmp / f"m{i}", name="race", seed=i, pad_bytes=256 << 10) for i in range(12)]
        for round_ in range(4):
            with Server(data, check_exit=False) as s:
                self.assert_consistent(data)
                env = s.env()
                procs = [subprocess.Popen([MLCTL, "-q", "catalog", "upload", m], env={**os.environ, **env},
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                         for m in models[round_ * 3:round_ * 3 + 3]]
                time.sleep(rng.uniform(0.05, 0.6))
                s.kill()
                for p in procs:
                    p.wait(timeout=60)
        with Server(data) as s:
            rows = self.assert_consistent(data)
            uploaded = len(rows)
            r = mlctl("catalog", "upload", models[-1], "--force-new", "-o", "json", env=s.env())
            self.assertOk(r)
            self.assertEqual(r.json()["version"]["version"], uploaded + 1)
        self.assert_consistent(data)


if __name__ == "__main__":
    unittest.main()

#!/usr/bin/python3
"""Benchmark: the model registry of `mlctl serve` on loopback.

1. Upload of a ~50 MB artifact (POST, streamed), MB/s, against the same bytes written and
   fsynced to the same filesystem in this run (the disk ceiling of the data directory) and
   against the server's own receive-and-discard path (the HTTP ceiling).
2. Listing 10,000 versions in one call: the server time (from its access log) and the client's.
3. Start-up time on that 10,000-version registry, and idle RSS (empty and after the runs).

Targets (issue 4): upload >= 200 MB/s, listing <= 50 ms server time, idle RSS <= 30 MB.
Not a test: run it on demand.

Usage: tests/bench/bench_registry.py [--mlctl PATH] [--repeat N] [--mb 50]
"""

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))


def default_mlctl() -> str:
    if os.environ.get("MLCTL_BIN"):
        return os.environ["MLCTL_BIN"]
    for preset in ("release", "platform"):
        p = ROOT / "build" / preset / "mlctl"
        if p.exists():
            return str(p)
    return "mlctl"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mlctl", default=default_mlctl())
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mb", type=int, default=50)
    ap.add_argument("--versions", type=int, default=10000)
    args = ap.parse_args()
    os.environ["MLCTL_BIN"] = args.mlctl
    import harness
    from harness import Server, make_model_dir, mlctl
    from registry_fixtures import request

    harness.MLCTL = args.mlctl
    with tempfile.TemporaryDirectory(prefix="mlctl-bench-registry-") as tmp:
        tmp = Path(tmp)
        model = make_model_dir(tmp / "model", name="big", pad_bytes=args.mb << 20)
        artifact = tmp / "big.tar.gz"
        with tarfile.open(artifact, "w:gz", compresslevel=1) as tar:
            for name in ("model.yaml", "model.onnx"):
                tar.add(model / name, arcname=name)
        body = artifact.read_bytes()
        size_mb = len(body) / 1e6
        print(f"artifact: {size_mb:.1f} MB ({args.mlctl})")

        # Disk ceiling: the same bytes written + fsynced where the data directory lives.
        disk = []
        for i in range(args.repeat):
            t = time.perf_counter()
            with open(tmp / f"copy{i}", "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            disk.append(size_mb / (time.perf_counter() - t))
            os.unlink(tmp / f"copy{i}")

        data = tmp / "data"
        with Server(data, args=["--max-body-mb", "1024", "--log-file", tmp / "access.log"]) as s:
            idle_empty = rss_mb(s.pid)
            # HTTP ceiling: an invalid name is refused after the body is read and discarded.
            http = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                status, _, _ = request(s, "POST", "/api/v1/models/NOT-VALID/versions", body)
                assert status == 400, status
                http.append(size_mb / (time.perf_counter() - t))
            uploads, server_ms = [], []
            for _ in range(args.repeat):
                t = time.perf_counter()
                status, _, _ = request(s, "POST", "/api/v1/models/big/versions?force_new=true", body)
                assert status in (200, 201), status
                uploads.append(size_mb / (time.perf_counter() - t))
            t = time.perf_counter()
            r = mlctl("catalog", "upload", model, "--force-new", "-q", env=s.env())
            assert r.code == 0, r
            cli_upload_s = time.perf_counter() - t
            rss_after_upload = rss_mb(s.pid)

        # A 10,000-version registry (rows cloned from a real one; all share one artifact).
        db = sqlite3.connect(data / "registry.db")
        row = db.execute("SELECT sha256, size, created_at, uploader FROM versions LIMIT 1").fetchone()
        doc = db.execute("SELECT card, files FROM version_documents LIMIT 1").fetchone()
        db.execute("DELETE FROM versions")
        db.executemany("INSERT INTO versions VALUES ('many', ?, ?, ?, ?, ?)",
                       [(v, *row) for v in range(1, args.versions + 1)])
        db.executemany("INSERT INTO version_documents VALUES ('many', ?, ?, ?)",
                       [(v, *doc) for v in range(1, args.versions + 1)])
        db.execute("INSERT INTO models VALUES ('many', ?, ?, ?)", (args.versions + 1, row[2], row[2]))
        db.executemany("INSERT INTO tags VALUES ('many', ?, 'stage', 'candidate')",
                       [(v,) for v in range(1, args.versions + 1, 10)])
        db.execute("INSERT INTO aliases VALUES ('many', 'production', ?, ?)", (args.versions, row[2]))
        db.commit()
        db.close()

        started = time.perf_counter()
        with Server(data, args=["--log-file", tmp / "access2.log"]) as s:
            ready_ms = (time.perf_counter() - started) * 1000
            idle_big = rss_mb(s.pid)
            client_ms = []
            for _ in range(max(5, args.repeat)):
                t = time.perf_counter()
                status, _, payload = request(s, "GET", f"/api/v1/models/many/versions?limit={args.versions}")
                client_ms.append((time.perf_counter() - t) * 1000)
                assert status == 200 and payload.count(b'"ref"') == args.versions, status
            time.sleep(0.3)
            import json
            lines = [json.loads(l) for l in (tmp / "access2.log").read_text().splitlines()]
            server_ms = [l["latency_ms"] for l in lines if l["path"] == "/api/v1/models/many/versions"]
            time.sleep(1.0)
            idle_after_list = rss_mb(s.pid)

    up, dk, hp = statistics.median(uploads), statistics.median(disk), statistics.median(http)
    print(f"upload {size_mb:.0f} MB:      {up:7.1f} MB/s (median of {args.repeat}; target >= 200)")
    print(f"  disk write+fsync:    {dk:7.1f} MB/s  -> upload/disk = {up / dk:.2f}")
    print(f"  HTTP receive only:   {hp:7.1f} MB/s  -> upload/http = {up / hp:.2f}")
    print(f"  mlctl catalog upload (pack + upload): {cli_upload_s:.2f} s")
    print(f"list {args.versions} versions: server {statistics.median(server_ms):6.1f} ms (median; target <= 50), "
          f"client {statistics.median(client_ms):6.1f} ms")
    print(f"start-up on {args.versions} versions: {ready_ms:.0f} ms to /readyz")
    print(f"RSS: idle empty {idle_empty:.1f} MB (target <= 30), idle {args.versions} versions {idle_big:.1f} MB, "
          f"after listing {idle_after_list:.1f} MB, after uploads {rss_after_upload:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

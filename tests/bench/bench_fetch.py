#!/usr/bin/python3
"""Benchmark: converting the 70,000 Fashion-MNIST IDX images into a dataset directory.

`mlctl fetch-mnist --source <dir>` against the equivalent numpy script (gzip + frombuffer +
savez), both run as processes in the same run, best of N each (interleaved). Prints both times
and the ratio mlctl/numpy (the target is <= 1.0). Not a test: run it on demand.

Usage: tests/bench/bench_fetch.py [--mlctl PATH] [--source DIR] [--repeat N]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

NUMPY_SCRIPT = r"""
import gzip, os, sys
import numpy as np
src, out = sys.argv[1], sys.argv[2]
def read(name, offset):
    with gzip.open(os.path.join(src, name), "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)
x_train = read("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
y_train = read("train-labels-idx1-ubyte.gz", 8)
x_test = read("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
y_test = read("t10k-labels-idx1-ubyte.gz", 8)
os.makedirs(out, exist_ok=True)
np.savez(os.path.join(out, "train.npz"), x=x_train, y=y_train)
np.savez(os.path.join(out, "test.npz"), x=x_test, y=y_test)
"""


def default_mlctl() -> str:
    if os.environ.get("MLCTL_BIN"):
        return os.environ["MLCTL_BIN"]
    for preset in ("release", "debug"):
        candidate = ROOT / "build" / preset / "mlctl"
        if candidate.exists():
            return str(candidate)
    return shutil.which("mlctl") or "mlctl"


def timed(cmd, env=None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"bench_fetch: {' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stderr}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlctl", default=default_mlctl())
    parser.add_argument("--source", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not Path(args.source, "train-images-idx3-ubyte.gz").exists():
        sys.exit(f"bench_fetch: {args.source}: no Fashion-MNIST files (apt install dataset-fashion-mnist)")

    with tempfile.TemporaryDirectory(prefix="mlctl-bench-fetch-") as tmp:
        env = {**os.environ, "XDG_CACHE_HOME": os.path.join(tmp, "cache")}
        mlctl_times, numpy_times = [], []
        for i in range(args.repeat):
            mlctl_out = os.path.join(tmp, f"mlctl-{i}")
            numpy_out = os.path.join(tmp, f"numpy-{i}")
            mlctl_times.append(timed([args.mlctl, "-q", "fetch-mnist", "--source", args.source,
                                      "--out", mlctl_out], env))
            numpy_times.append(timed([sys.executable, "-c", NUMPY_SCRIPT, args.source, numpy_out], env))
            shutil.rmtree(mlctl_out, ignore_errors=True)
            shutil.rmtree(numpy_out, ignore_errors=True)

    best_mlctl, best_numpy = min(mlctl_times), min(numpy_times)
    print(f"fetch-mnist, 70,000 Fashion-MNIST images from {args.source} (best of {args.repeat})")
    print(f"  mlctl fetch-mnist : {best_mlctl:7.3f} s   (runs: {', '.join(f'{t:.3f}' for t in mlctl_times)})")
    print(f"  numpy script      : {best_numpy:7.3f} s   (runs: {', '.join(f'{t:.3f}' for t in numpy_times)})")
    print(f"  ratio mlctl/numpy : {best_mlctl / best_numpy:7.2f}   (target <= 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

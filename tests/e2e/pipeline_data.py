"""A small MNIST-like source for the pipeline tests: the first images of Debian's
Fashion-MNIST written as a directory of gzipped IDX files (what `fetch-mnist --source DIR`
reads, and what a model's lineage records as its source)."""

import gzip
import struct
from pathlib import Path

from harness import FASHION_MNIST_DIR, read_idx
import unittest


def write_idx_source(directory, n_train=2000, n_test=500) -> Path:
    files = {k: FASHION_MNIST_DIR / f"{k}-ubyte.gz" for k in
             ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1")}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise unittest.SkipTest(f"install dataset-fashion-mnist: {missing[0]} is missing")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, path in files.items():
        a = read_idx(path)[: n_train if name.startswith("train") else n_test]
        header = struct.pack(">I", 0x800 + a.ndim) + b"".join(struct.pack(">I", d) for d in a.shape)
        (directory / f"{name}-ubyte.gz").write_bytes(gzip.compress(header + a.tobytes(), mtime=0))
    return directory

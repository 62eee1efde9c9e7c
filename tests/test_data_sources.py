"""Data sources mnist (IDX files), fetch, npz and shapes: formats, splits and every bad input."""
from __future__ import annotations

import gzip
import logging
import time
from pathlib import Path

import numpy as np
import pytest

from genloop.config import ConfigError, DataConfig
from genloop.loading import from_dict, load_raw
from genloop.data import DATASETS, DataError, ImageSet, load_real
import genloop.builtins  # noqa: F401  (registers the sources)
from genloop.data.fetch import MNIST_SHA256, fetch_mnist, sha256_file
from genloop.data.mnist import parse_idx, read_idx
from genloop.data.npz import to_nchw
from genloop.data.shapes import KINDS, make_shapes

# --------------------------------------------------------------------------- helpers


def idx_bytes(arr: np.ndarray, magic: int | None = None) -> bytes:
    """IDX encoding of a uint8 array (magic 0x0800 | ndim unless given)."""
    arr = np.asarray(arr)
    codes = {np.dtype("uint8"): 0x08, np.dtype("int8"): 0x09, np.dtype(">i2"): 0x0B, np.dtype(">i4"): 0x0C,
             np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}
    be = arr.astype(arr.dtype.newbyteorder(">")) if arr.dtype.itemsize > 1 else arr
    code = codes[be.dtype] if be.dtype in codes else 0x08
    magic = (code << 8 | arr.ndim) if magic is None else magic
    head = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return head + be.tobytes()


def write(path: Path, data: bytes, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def make_mnist(root: Path, n_train: int = 30, n_test: int = 12, gz: bool = True, seed: int = 0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    for i, (name, a) in enumerate(arrays.items()):
        write(root / name, idx_bytes(a), gz=gz if i % 2 == 0 else not gz)  # mix raw and .gz
    return arrays


def mnist_cfg(root, **kw) -> DataConfig:
    return DataConfig(name="mnist", root=str(root), **kw)


def one_line_error(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    return msg


def test_all_sources_registered():
    assert {"digits", "mnist", "folder", "npz", "shapes"} <= set(DATASETS.names())


# --------------------------------------------------------------------------- mnist


def test_mnist_official_split_raw_and_gz(tmp_path):
    arrays = make_mnist(tmp_path)
    real = load_real(mnist_cfg(tmp_path))
    assert real.train.images.shape == (30, 1, 28, 28) and real.train.images.dtype == np.uint8
    assert real.test.images.shape == (12, 1, 28, 28)
    assert real.train.labels.dtype == np.int64 and real.train.num_classes == 10
    np.testing.assert_array_equal(real.train.images[:, 0], arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(real.test.labels, arrays["t10k-labels-idx1-ubyte"])


def test_mnist_image_size_resizes(tmp_path):
    make_mnist(tmp_path)
    real = load_real(mnist_cfg(tmp_path, image_size=16))
    assert real.train.images.shape == (30, 1, 16, 16) and real.test.images.shape == (12, 1, 16, 16)


def test_mnist_torchvision_and_kaggle_layouts(tmp_path):
    make_mnist(tmp_path / "MNIST" / "raw")
    assert len(load_real(mnist_cfg(tmp_path)).train) == 30
    kaggle = tmp_path / "kaggle"
    for name, a in make_mnist(tmp_path / "tmp").items():
        write(kaggle / name.replace("-idx", ".idx"), idx_bytes(a))
    assert len(load_real(mnist_cfg(kaggle)).test) == 12


def test_mnist_needs_root_and_files(tmp_path):
    with pytest.raises(DataError, match="data.root: mnist needs data.root") as e:
        load_real(DataConfig(name="mnist"))
    one_line_error(e)
    with pytest.raises(DataError, match="does not exist"):
        load_real(mnist_cfg(tmp_path / "nope"))
    with pytest.raises(DataError, match=r"no MNIST files in .* \(expected train-images-idx3-ubyte\[\.gz\]") as e:
        load_real(mnist_cfg(tmp_path))
    assert "genloop data fetch mnist" in one_line_error(e)
    make_mnist(tmp_path)
    for p in tmp_path.glob("t10k-labels*"):
        p.unlink()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\[\.gz\] is missing") as e:
        load_real(mnist_cfg(tmp_path))
    one_line_error(e)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_wrong_magic(tmp_path, gz):
    arrays = make_mnist(tmp_path, gz=gz)
    for p in tmp_path.glob("train-images*"):
        p.unlink()
    # a label file where the images should be: magic 2049, not 2051
    write(tmp_path / "train-images-idx3-ubyte", idx_bytes(arrays["train-labels-idx1-ubyte"]), gz=gz)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.*wrong magic number 2049 \(expected 2051") as e:
        load_real(mnist_cfg(tmp_path))
    one_line_error(e)


def test_mnist_not_idx_at_all(tmp_path):
    make_mnist(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"<html>not found</html>")
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: wrong magic number"):
        load_real(mnist_cfg(tmp_path))


def test_mnist_truncated_body_and_header(tmp_path):
    arrays = make_mnist(tmp_path, gz=False)
    data = idx_bytes(arrays["t10k-images-idx3-ubyte"])
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(data[: len(data) - 100])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: truncated body: .*12 x 28 x 28.*but only") as e:
        load_real(mnist_cfg(tmp_path))
    one_line_error(e)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(data[:10])
    with pytest.raises(DataError, match="truncated header"):
        load_real(mnist_cfg(tmp_path))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(data + b"\0\0")
    with pytest.raises(DataError, match="unexpected bytes"):
        load_real(mnist_cfg(tmp_path))


def test_mnist_truncated_gzip(tmp_path):
    make_mnist(tmp_path, gz=True)
    p = next(tmp_path.glob("train-images*.gz"))
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(DataError, match="damaged or truncated gzip") as e:
        load_real(mnist_cfg(tmp_path))
    assert p.name in one_line_error(e)


def test_mnist_labels_out_of_range_and_count_mismatch(tmp_path):
    arrays = make_mnist(tmp_path, gz=False)
    bad = arrays["train-labels-idx1-ubyte"].copy()
    bad[3] = 12
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(bad))
    with pytest.raises(DataError, match=r"label 12 at index 3 is outside the class range 0\.\.9") as e:
        load_real(mnist_cfg(tmp_path))
    one_line_error(e)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(arrays["train-labels-idx1-ubyte"][:-1]))
    with pytest.raises(DataError, match="29 labels but train-images-idx3-ubyte has 30 images"):
        load_real(mnist_cfg(tmp_path))


def test_parse_idx_generic_types(tmp_path):
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    out = parse_idx(idx_bytes(a))
    assert out.dtype == np.int32 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, a)
    f = np.linspace(0, 1, 5).astype(np.float64)
    np.testing.assert_array_equal(read_idx(write(tmp_path / "f.idx", idx_bytes(f), gz=True)), f)


# --------------------------------------------------------------------------- fetch


def gz_mirror(folder: Path) -> dict[str, str]:
    """The four .gz MNIST files (made up) in ``folder``; returns their SHA-256."""
    make_mnist(folder, gz=True, seed=3)
    for p in list(folder.iterdir()):
        if not p.name.endswith(".gz"):
            with gzip.open(p.with_name(p.name + ".gz"), "wb") as f:
                f.write(p.read_bytes())
            p.unlink()
    return {p.name: sha256_file(p) for p in folder.iterdir()}


def test_known_mnist_hashes_table():
    assert set(MNIST_SHA256) == {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in MNIST_SHA256.values())


def test_fetch_from_file_url_then_load(tmp_path):
    hashes = gz_mirror(tmp_path / "mirror")
    calls = []

    def opener(url, timeout):
        calls.append(url)
        import urllib.request
        return urllib.request.urlopen(url, timeout=timeout)

    dest = tmp_path / "data"
    paths = fetch_mnist(dest, (tmp_path / "mirror").as_uri(), hashes=hashes, opener=opener)
    assert [p.name for p in paths] == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                       "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert len(calls) == 4 and all(c.startswith("file://") for c in calls)
    for p in paths:
        assert p.read_bytes() == (tmp_path / "mirror" / p.name).read_bytes()
    assert sorted(x.name for x in dest.iterdir()) == sorted(hashes)  # no temporary files left
    # files already there with the right hash are not downloaded again
    fetch_mnist(dest, (tmp_path / "mirror").as_uri(), hashes=hashes, opener=opener)
    assert len(calls) == 4
    real = load_real(mnist_cfg(dest))
    assert len(real.train) == 30 and len(real.test) == 12


def test_fetch_hash_mismatch_saves_nothing(tmp_path):
    gz_mirror(tmp_path / "mirror")
    dest = tmp_path / "data"
    # the made-up files do not match the published hashes
    with pytest.raises(DataError, match="SHA-256 mismatch") as e:
        fetch_mnist(dest, (tmp_path / "mirror").as_uri() + "/")
    assert "train-images-idx3-ubyte.gz" in one_line_error(e)
    assert not dest.exists() or list(dest.iterdir()) == []


def test_fetch_unknown_hash_is_logged(tmp_path, caplog):
    hashes = gz_mirror(tmp_path / "mirror")
    with caplog.at_level(logging.WARNING, logger="genloop.data.fetch"):
        fetch_mnist(tmp_path / "data", (tmp_path / "mirror").as_uri(), hashes={})
    text = caplog.text
    for name, h in hashes.items():
        assert name in text and h in text


def test_fetch_failure_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="download failed"):
        fetch_mnist(tmp_path / "data", (tmp_path / "no-mirror").as_uri())

    class Broken:
        def __init__(self):
            self.n = 0

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def read(self, n):
            self.n += 1
            if self.n > 2:
                raise ConnectionResetError("reset by peer")
            return b"x" * 10

    with pytest.raises(DataError, match="download failed .*reset by peer"):
        fetch_mnist(tmp_path / "data", "https://example.invalid/mnist", opener=lambda url, timeout: Broken())
    assert list((tmp_path / "data").iterdir()) == []  # the partial file was removed


# --------------------------------------------------------------------------- npz


def npz_cfg(path, **kw) -> DataConfig:
    return DataConfig(name="npz", root=str(path), **kw)


@pytest.mark.parametrize("layout", ["nchw", "nhwc", "nhw", "nhwc1"])
def test_npz_channel_layouts(tmp_path, layout):
    rng = np.random.default_rng(0)
    c = 1 if layout in ("nhw", "nhwc1") else 3
    x = rng.integers(0, 256, (40, c, 10, 12), dtype=np.uint8)
    stored = {"nchw": x, "nhwc": x.transpose(0, 2, 3, 1), "nhw": x[:, 0], "nhwc1": x.transpose(0, 2, 3, 1)}[layout]
    np.savez(tmp_path / "d.npz", images=stored, labels=np.arange(40) % 4)
    real = load_real(npz_cfg(tmp_path / "d.npz", test_fraction=0.2))
    assert real.train.images.shape[1:] == (c, 10, 12) and len(real.train) == 32 and len(real.test) == 8
    assert real.train.num_classes == 4
    full = np.concatenate([real.train.images, real.test.images])
    assert sorted(map(bytes, full)) == sorted(map(bytes, x))


def test_npz_channel_first_wins_when_ambiguous():
    x = np.zeros((2, 3, 5, 3), dtype=np.uint8)
    assert to_nchw(x).shape == (2, 3, 5, 3)
    assert to_nchw(np.zeros((2, 5, 5, 3), dtype=np.uint8)).shape == (2, 3, 5, 5)


def test_npz_official_test_arrays_and_resize(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "d.npz", images=rng.integers(0, 256, (20, 12, 16, 3), dtype=np.uint8),
             labels=np.arange(20) % 3, test_images=rng.integers(0, 256, (7, 12, 16, 3), dtype=np.uint8),
             test_labels=np.arange(7) % 3)
    real = load_real(npz_cfg(tmp_path / "d.npz", image_size=8))
    assert real.train.images.shape == (20, 3, 8, 8) and real.test.images.shape == (7, 3, 8, 8)
    np.testing.assert_array_equal(real.test.labels, np.arange(7) % 3)


def test_npz_unlabelled_and_wider_ints(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.full((10, 4, 4), 200, dtype=np.int64))
    real = load_real(npz_cfg(tmp_path / "d.npz"))
    assert real.train.labels is None and real.train.num_classes == 0 and real.train.images.dtype == np.uint8


@pytest.mark.parametrize("arrays, match", [
    ({"images": np.zeros((4, 5, 5, 5), np.uint8)}, r"no channel axis of size 1 or 3"),
    ({"images": np.zeros((4, 8, 8), np.float32)}, r"must be uint8 pixels 0\.\.255, got float32"),
    ({"images": np.full((4, 8, 8), 300, np.int32)}, r"must be uint8"),
    ({"images": np.zeros((4, 8), np.uint8)}, r"shape \(4, 8\) is not"),
    ({"pixels": np.zeros((4, 8, 8), np.uint8)}, r"no 'images' array \(found: pixels\)"),
    ({"images": np.zeros((4, 8, 8), np.uint8), "labels": np.array([0, 1, -1, 2])}, r"labels\[2\] = -1 is outside the class range"),
    ({"images": np.zeros((4, 8, 8), np.uint8), "labels": np.array([0, 1, 5, 2]), "num_classes": np.array(3)},
     r"labels\[2\] = 5 is outside the class range 0\.\.2"),
    ({"images": np.zeros((4, 8, 8), np.uint8), "labels": np.array([0, 1, 2])}, r"labels has shape \(3,\), expected \(4,\)"),
    ({"images": np.zeros((4, 8, 8), np.uint8), "labels": np.array([0.5, 1, 2, 0])}, r"labels must be whole numbers"),
    ({"images": np.zeros((4, 8, 8), np.uint8), "labels": np.arange(4), "test_images": np.zeros((2, 8, 8), np.uint8)},
     r"labels given but test_labels missing"),
    ({"images": np.zeros((4, 8, 8), np.uint8), "test_images": np.zeros((2, 9, 9), np.uint8)}, r"test_images are"),
])
def test_npz_bad_arrays(tmp_path, arrays, match):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError, match=match) as e:
        load_real(npz_cfg(tmp_path / "d.npz"))
    assert str(tmp_path / "d.npz") in one_line_error(e)


def test_npz_bad_files(tmp_path):
    with pytest.raises(DataError, match="data.root: npz needs data.root"):
        load_real(DataConfig(name="npz"))
    with pytest.raises(DataError, match="does not exist"):
        load_real(npz_cfg(tmp_path / "missing.npz"))
    with pytest.raises(DataError, match="is a folder"):
        load_real(npz_cfg(tmp_path))
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(DataError, match="not a .npz file"):
        load_real(npz_cfg(tmp_path / "text.npz"))
    np.save(tmp_path / "single.npy", np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(DataError, match="a single .npy array"):
        load_real(npz_cfg(tmp_path / "single.npy"))
    np.savez(tmp_path / "obj.npz", images=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError, match="pickled Python objects") as e:
        load_real(npz_cfg(tmp_path / "obj.npz"))
    one_line_error(e)
    np.savez(tmp_path / "ok.npz", images=np.zeros((50, 8, 8), np.uint8))
    data = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.npz: not a readable .npz file"):
        load_real(npz_cfg(tmp_path / "cut.npz"))


# --------------------------------------------------------------------------- shapes


def test_shapes_defaults_and_determinism():
    cfg = DataConfig(name="shapes", count=300)
    a, b = load_real(cfg), load_real(cfg)
    assert a.train.images.shape[1:] == (3, 32, 32) and a.train.images.dtype == np.uint8
    assert len(a.train) + len(a.test) == 300 and a.train.num_classes == 5
    np.testing.assert_array_equal(a.train.images, b.train.images)
    np.testing.assert_array_equal(a.test.labels, b.test.labels)
    c = load_real(DataConfig(name="shapes", count=300, split_seed=1))
    assert not np.array_equal(a.train.images[:10], c.train.images[:10])
    counts = np.bincount(np.concatenate([a.train.labels, a.test.labels]))
    assert counts.tolist() == [60] * 5


def test_shapes_options_and_content():
    s = make_shapes(400, 24, num_classes=len(KINDS), seed=2)
    assert s.images.shape == (400, 3, 24, 24) and s.num_classes == 8 and set(s.labels.tolist()) == set(range(8))
    x = s.images.astype(np.float32)
    assert x.std(axis=(1, 2, 3)).min() > 5  # every image has a shape and a texture, nothing is blank
    assert len(np.unique(s.images.reshape(400, -1), axis=0)) == 400  # all different
    # the classes differ in shape: per-class mean "foreground" masks are distinct
    centre = x[:, :, 8:16, 8:16].mean(axis=(1, 2, 3))
    assert np.isfinite(centre).all()
    cfg = DataConfig(name="shapes", count=50, image_size=16)
    cfg.group("shapes").num_classes = 3  # data.shapes.num_classes
    real = load_real(cfg)
    assert real.train.images.shape[1:] == (3, 16, 16) and real.train.num_classes == 3


def test_shapes_num_classes_checked():
    with pytest.raises(ConfigError, match="data.shapes.num_classes"):
        from_dict(load_raw(None, ["data.name=shapes", "data.shapes.num_classes=9"]))
    with pytest.raises(DataError, match="shapes has 8 kinds"):
        make_shapes(10, 16, num_classes=9)


def test_shapes_fast():
    t = time.perf_counter()
    make_shapes(2000, 64, 5, seed=0)
    assert time.perf_counter() - t < 10.0  # ~0.3 s on 2 idle cores; generous for shared machines


# --------------------------------------------------------------------------- imageset sanity


def test_imageset_rejects_labels_outside_range():
    with pytest.raises(DataError, match="outside the class range"):
        ImageSet(np.zeros((2, 1, 4, 4), np.uint8), np.array([0, 3]), 3)

"""Data source ``folder`` (class folders, CUB, Oxford-102, unlabelled, cache, bad images) and
``genloop.data.io`` (load_path, save_npz, info)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genloop.data import DataError, ImageSet, RealData, load_real
from genloop.data import folder as folder_mod
from genloop.config import DataConfig
from genloop.data.io import info, load_path, save_npz
from genloop.data.transforms import resize_batch, resize_square, to_rgb

# --------------------------------------------------------------------------- helpers


def save_image(path: Path, mode: str = "RGB", size=(20, 16), colour=(200, 40, 40), fmt=None) -> Path:
    """A small image file of ``mode`` (RGB, L, RGBA, P, CMYK, LA, 1, I;16) filled with ``colour``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = Image.new("RGB", size, colour)
    if mode == "RGB":
        img = rgb
    elif mode == "P":
        img = rgb.convert("P", palette=Image.ADAPTIVE, colors=8)
    elif mode == "I;16":
        img = Image.fromarray(np.full(size[::-1], 40000, dtype=np.uint16))
    else:
        img = rgb.convert(mode)
    img.save(path, format=fmt)
    return path


def make_classes(root: Path, per_class: int = 4, classes=("cat", "ant", "bee"), size=(20, 16)) -> Path:
    for c, name in enumerate(classes):
        for i in range(per_class):
            ext = ["png", "jpg", "bmp", "gif"][i % 4]
            save_image(root / name / f"{i}.{ext}", size=size, colour=(40 * c + 20, 100, 255 - 40 * c))
    return root


def cfg(root, **kw) -> DataConfig:
    """A data section of the folder source; its own options (bbox_crop, workers ...) go to data.folder."""
    own = {k: kw.pop(k) for k in ("workers", "bbox_crop", "bbox_padding") if k in kw}
    c = DataConfig(name="folder", root=str(root), **kw)
    for k, v in own.items():
        setattr(c.group("folder"), k, v)
    return c


def one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    return msg


def corrupt_jpeg(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" + os.urandom(64))
    return path


def truncated_jpeg(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


# --------------------------------------------------------------------------- layouts


def test_class_folders_mixed_formats(tmp_path):
    root = make_classes(tmp_path / "data")
    (root / "cat" / "notes.txt").write_text("ignored")
    real = load_real(cfg(root, image_size=8), tmp_path / "cache")
    n = len(real.train) + len(real.test)
    assert n == 12 and real.train.images.shape[1:] == (3, 8, 8) and real.train.images.dtype == np.uint8
    assert real.train.num_classes == 3 and real.train.labels.dtype == np.int64
    # classes are sorted by folder name: ant=0, bee=1, cat=2; colours identify them
    full = ImageSet.concat([real.train, real.test])
    for c, name in enumerate(["ant", "bee", "cat"]):
        orig = ["cat", "ant", "bee"].index(name)
        px = full.images[full.labels == c][:, :, 4, 4].astype(int)
        assert np.all(np.abs(px[:, 0] - (40 * orig + 20)) <= 12), (name, px)


def test_default_size_is_64(tmp_path):
    real = load_real(cfg(make_classes(tmp_path / "d", per_class=2)), tmp_path / "c")
    assert real.train.images.shape[1:] == (3, 64, 64)


def test_modes_are_converted_to_rgb(tmp_path):
    root = tmp_path / "d"
    for i, mode in enumerate(["L", "RGBA", "P", "LA", "1", "I;16", "RGB"]):
        save_image(root / "a" / f"{i}.png", mode=mode, colour=(200, 200, 200))
    save_image(root / "a" / "cmyk.jpg", mode="CMYK", colour=(200, 200, 200))
    s = folder_mod.load_folder_set(root, 8, cache_dir=tmp_path / "c")
    assert s.images.shape == (8, 3, 8, 8)
    assert s.images.min() >= 150  # nothing turned black; 16-bit scaled, not clipped to garbage


def test_transparency_composited_on_white():
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    assert np.asarray(to_rgb(img)).tolist() == np.full((4, 4, 3), 255).tolist()
    half = Image.new("RGBA", (2, 2), (0, 0, 0, 128))
    assert abs(int(np.asarray(to_rgb(half))[0, 0, 0]) - 127) <= 1


def test_short_side_resize_and_centre_crop(tmp_path):
    # 60 x 20: red | green | blue thirds; the centre 20x20 square is green
    a = np.zeros((20, 60, 3), np.uint8)
    a[:, :20, 0] = 255
    a[:, 20:40, 1] = 255
    a[:, 40:, 2] = 255
    (tmp_path / "d" / "x").mkdir(parents=True)
    Image.fromarray(a).save(tmp_path / "d" / "x" / "wide.png")
    s = folder_mod.load_folder_set(tmp_path / "d", 10, cache_dir=tmp_path / "c")
    img = s.images[0].astype(int)
    assert img.shape == (3, 10, 10)
    assert img[1, :, 2:8].min() >= 240 and img[0, :, 2:8].max() <= 15 and img[2, :, 2:8].max() <= 15


def test_unlabelled_folder(tmp_path):
    root = tmp_path / "loose"
    for i in range(10):
        save_image(root / f"{i}.png")
    (root / "empty_subfolder").mkdir()
    real = load_real(cfg(root, image_size=8), tmp_path / "c")
    assert real.train.labels is None and real.train.num_classes == 0
    assert len(real.train) == 8 and len(real.test) == 2


def test_cub_layout(tmp_path):
    root = tmp_path / "CUB_200_2011"
    make_classes(root / "images", per_class=2, classes=("001.Black_footed_Albatross", "002.Laysan_Albatross"))
    (root / "attributes").mkdir()
    (root / "attributes" / "attributes.txt").write_text("1 has_bill_shape::curved\n")
    (root / "images.txt").write_text("1 001.Black_footed_Albatross/0.png\n")
    a = folder_mod.load_folder_set(root, 8, cache_dir=tmp_path / "c")
    b = folder_mod.load_folder_set(root / "images", 8, cache_dir=tmp_path / "c")
    assert a.num_classes == 2 and len(a) == 4
    np.testing.assert_array_equal(a.images, b.images)
    assert folder_mod.scan_folder(root).class_names == ["001.Black_footed_Albatross", "002.Laysan_Albatross"]


def cub_with_boxes(root: Path, fmt: str = "png") -> tuple[Path, list]:
    """A CUB-200-2011-like folder: 100x80 grey images, each with a red 20x10 "bird"
    at a known place, listed in images.txt and bounding_boxes.txt (1-based ids)."""
    boxes = [(10.0, 20.0, 20.0, 10.0), (80.0, 70.0, 20.0, 10.0), (0.0, 0.0, 20.0, 10.0), (40.0, 30.0, 20.0, 10.0)]
    names = ["001.A/a0", "001.A/a1", "002.B/b0", "002.B/b1"]
    lines_img, lines_box = [], []
    for i, ((x, y, w, h), name) in enumerate(zip(boxes, names), 1):
        a = np.full((80, 100, 3), 128, np.uint8)
        a[int(y):int(y + h), int(x):int(x + w)] = (255, 0, 0)
        path = root / "images" / f"{name}.{fmt}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(path)
        lines_img.append(f"{i} {name}.{fmt}")
        lines_box.append(f"{i} {x} {y} {w} {h}")
    (root / "images.txt").write_text("\n".join(lines_img) + "\n")
    (root / "bounding_boxes.txt").write_text("\n".join(lines_box) + "\n")
    return root, boxes


def test_padded_box_formula():
    from genloop.data.transforms import padded_box

    # centred square of side 1.25 * max(w, h) around the box's centre
    assert padded_box((40, 30, 20, 10), 100, 80, 0.25) == (37.5, 22.5, 62.5, 47.5)
    # sticking out at the top left: shifted inside, same side
    assert padded_box((0, 0, 20, 10), 100, 80, 0.25) == (0.0, 0.0, 25.0, 25.0)
    # at the bottom right
    assert padded_box((80, 70, 20, 10), 100, 80, 0.25) == (75.0, 55.0, 100.0, 80.0)
    # larger than the image: capped at the short side
    assert padded_box((0, 0, 100, 80), 100, 80, 0.25) == (10.0, 0.0, 90.0, 80.0)


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_cub_bounding_box_crop(tmp_path, fmt):
    root, boxes = cub_with_boxes(tmp_path / "CUB_200_2011", fmt)
    c = folder_mod.load_folder_set(root, 16, cache_dir=tmp_path / "c")  # centre crops
    b = folder_mod.load_folder_set(root, 16, cache_dir=tmp_path / "c", bbox_crop=True, bbox_padding=0.25)
    also = folder_mod.load_folder_set(root / "images", 16, cache_dir=tmp_path / "c", bbox_crop=True)
    np.testing.assert_array_equal(b.images, also.images)
    save_image(root / "segmentations" / "001.A" / "a0.png")  # CUB's separate download, unpacked beside images/
    assert folder_mod.scan_folder(root).class_names == ["001.A", "002.B"]
    red = lambda im: (im[:, 0].astype(int) > 200) & (im[:, 1].astype(int) < 60)  # noqa: E731
    # The bird fills 20/25 of the crop's width and 10/25 of its height, wherever it is
    for k, (x, y, w, h) in enumerate(boxes):
        mask = red(b.images[k:k + 1])[0]
        assert 0.25 < mask.mean() < 0.4, (k, mask.mean())  # 20*10 / 25^2 = 0.32
        if k == 3:  # a box in the middle: the bird sits in the crop's middle
            ys, xs = np.nonzero(mask)
            assert abs(xs.mean() - 7.5) < 1 and abs(ys.mean() - 7.5) < 1
    assert red(c.images).mean() < 0.1  # centre crops of a 100x80 image show the bird small
    # a different padding is another cache entry
    wide = folder_mod.load_folder_set(root, 16, cache_dir=tmp_path / "c", bbox_crop=True, bbox_padding=1.0)
    assert red(wide.images[3:4]).mean() < red(b.images[3:4]).mean()


def test_cub_bounding_box_errors(tmp_path):
    root, _ = cub_with_boxes(tmp_path / "CUB_200_2011")
    (root / "bounding_boxes.txt").rename(root / "bb.txt")
    with pytest.raises(DataError, match="no images.txt and bounding_boxes.txt") as e:
        folder_mod.load_folder_set(root, 8, use_cache=False, bbox_crop=True)
    one_line(e)
    (root / "bounding_boxes.txt").write_text("1 10 20 20 10\n2 80 70 20 10\n3 0 0 20 10\n")
    with pytest.raises(DataError, match="image id 4 has no line") as e:
        folder_mod.load_folder_set(root, 8, use_cache=False, bbox_crop=True)
    (root / "bounding_boxes.txt").write_text("1 10 20 20 10\n2 80 70 20 10\n3 0 0 twenty 10\n4 1 1 1 1\n")
    with pytest.raises(DataError, match=r"bounding_boxes.txt:3: .* is not four numbers"):
        folder_mod.load_folder_set(root, 8, use_cache=False, bbox_crop=True)
    (root / "bounding_boxes.txt").write_text("1 10 20 20 10\n2 80 70 20 10\n3 0 0 20 0\n4 1 1 1 1\n")
    with pytest.raises(DataError, match="positive width and height"):
        folder_mod.load_folder_set(root, 8, use_cache=False, bbox_crop=True)
    (root / "bounding_boxes.txt").write_text("1 10 20 20 10\n2 80 70 20 10\n3 0 0 20 10\n4 1 1 1 1\n")
    (root / "images.txt").write_text("1 001.A/a0.png\n2 001.A/a1.png\n3 002.B/b0.png\n")
    with pytest.raises(DataError, match=r"b1.png: not listed in .*images.txt"):
        folder_mod.load_folder_set(root, 8, use_cache=False, bbox_crop=True)
    # through the config, as a user runs it
    (root / "images.txt").write_text("1 001.A/a0.png\n2 001.A/a1.png\n3 002.B/b0.png\n4 002.B/b1.png\n")
    real = load_real(cfg(root, image_size=8, bbox_crop=True, test_fraction=0.5), tmp_path / "c")
    assert len(real.train) == 2 and real.train.images.shape[1:] == (3, 8, 8)


def oxford(root: Path, labels, n_images=None) -> Path:
    import scipy.io

    n_images = len(labels) if n_images is None else n_images
    for i in range(n_images):
        save_image(root / "jpg" / f"image_{i + 1:05d}.jpg", colour=(10 * i, 50, 50))
    scipy.io.savemat(str(root / "imagelabels.mat"), {"labels": np.asarray(labels, dtype=np.uint8)[None, :]})
    return root


def test_oxford102_layout(tmp_path):
    root = oxford(tmp_path / "flowers", [3, 1, 2, 3, 1, 2, 2])
    (root / "setid.mat").write_bytes(b"")  # other official files are ignored
    layout = folder_mod.scan_folder(root)
    assert layout.kind == "oxford102" and layout.num_classes == 3
    np.testing.assert_array_equal(layout.labels, [2, 0, 1, 2, 0, 1, 1])
    assert folder_mod.scan_folder(root / "jpg").kind == "oxford102"
    real = load_real(cfg(root, image_size=8, test_fraction=0.3), tmp_path / "c")
    assert real.train.num_classes == 3 and len(real.train) + len(real.test) == 7


def test_oxford102_bad_labels(tmp_path):
    root = oxford(tmp_path / "f", [1, 0, 2])
    with pytest.raises(DataError, match=r"imagelabels.mat: label 0 of image 2 is outside the class range 1\.\.2") as e:
        folder_mod.scan_folder(root)
    one_line(e)
    root = oxford(tmp_path / "g", [1, 2], n_images=3)
    with pytest.raises(DataError, match=r"image_00003.jpg: image number 3 has no label"):
        folder_mod.scan_folder(root)
    import scipy.io
    scipy.io.savemat(str(root / "imagelabels.mat"), {"other": np.ones(3)})
    with pytest.raises(DataError, match="no 'labels' array"):
        folder_mod.scan_folder(root)


# --------------------------------------------------------------------------- bad input


def test_missing_or_wrong_root(tmp_path):
    with pytest.raises(DataError, match="data.root: folder needs data.root"):
        load_real(DataConfig(name="folder"))
    with pytest.raises(DataError, match=r"data.root: folder .*nope does not exist") as e:
        load_real(cfg(tmp_path / "nope"))
    one_line(e)
    save_image(tmp_path / "x.png")
    with pytest.raises(DataError, match="is a file, not a folder"):
        load_real(cfg(tmp_path / "x.png"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files in"):
        load_real(cfg(tmp_path / "empty"))


def test_empty_class_folder(tmp_path):
    root = make_classes(tmp_path / "d", per_class=2)
    (root / "zebra").mkdir()
    (root / "zebra" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"class folder .*zebra has no image files") as e:
        load_real(cfg(root), tmp_path / "c")
    one_line(e)


def test_loose_images_next_to_class_folders(tmp_path):
    root = make_classes(tmp_path / "d", per_class=2)
    save_image(root / "stray.png")
    with pytest.raises(DataError, match="both loose image files"):
        load_real(cfg(root), tmp_path / "c")


@pytest.mark.parametrize("make_bad", [corrupt_jpeg, truncated_jpeg])
def test_bad_image_fails_then_skips(tmp_path, caplog, make_bad):
    root = make_classes(tmp_path / "d", per_class=3)
    bad = make_bad(root / "bee" / "broken.jpg")
    cache = tmp_path / "c"
    with pytest.raises(DataError, match="cannot decode this image") as e:
        load_real(cfg(root, image_size=8), cache)
    msg = one_line(e)
    assert str(bad) in msg and "data.skip_bad=true" in msg
    # a failed build leaves no cache, not even a temporary file
    assert not cache.exists() or list(cache.iterdir()) == []
    with caplog.at_level(logging.WARNING):
        real = load_real(cfg(root, image_size=8, skip_bad=True), cache)
    assert len(real.train) + len(real.test) == 9
    assert "skipped 1 of 10 images" in caplog.text and "broken.jpg" in caplog.text
    # the cache remembers the skipped file: loading it again warns again, and refuses without skip_bad
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_real(cfg(root, image_size=8, skip_bad=True), cache)
    assert "broken.jpg" in caplog.text
    with pytest.raises(DataError, match=r"broken.jpg: cannot decode this image"):
        load_real(cfg(root, image_size=8), cache)


def test_skip_bad_with_a_whole_class_undecodable(tmp_path):
    root = make_classes(tmp_path / "d", per_class=2)
    corrupt_jpeg(root / "zzz" / "a.jpg")
    with pytest.raises(DataError, match="class 'zzz' .* has no decodable image left"):
        load_real(cfg(root, skip_bad=True), tmp_path / "c")


def test_many_bad_images_are_counted_and_listed(tmp_path, caplog):
    root = make_classes(tmp_path / "d", per_class=5, classes=("a", "b"))
    for i in range(4):
        corrupt_jpeg(root / "a" / f"bad{i}.jpg")
    with caplog.at_level(logging.WARNING):
        s = folder_mod.load_folder_set(root, 8, skip_bad=True, workers=2, cache_dir=tmp_path / "c")
    assert len(s) == 10
    assert "skipped 4 of 14" in caplog.text
    assert all(f"bad{i}.jpg" in caplog.text for i in range(4))


# --------------------------------------------------------------------------- cache


def test_cache_written_once_and_reused(tmp_path, monkeypatch):
    root = make_classes(tmp_path / "d")
    cache = tmp_path / "c"
    first = folder_mod.load_folder_set(root, 8, cache_dir=cache)
    files = list(cache.glob("folder-*.npz"))
    assert len(files) == 1 and not list(cache.glob("*.tmp"))

    def no_decode(*a, **k):
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(folder_mod, "decode_files", no_decode)
    again = folder_mod.load_folder_set(root, 8, cache_dir=cache)
    np.testing.assert_array_equal(first.images, again.images)
    np.testing.assert_array_equal(first.labels, again.labels)
    monkeypatch.undo()
    # another size, or a changed file, gives another cache file
    folder_mod.load_folder_set(root, 12, cache_dir=cache)
    save_image(root / "ant" / "0.png", colour=(1, 2, 3), size=(30, 30))
    changed = folder_mod.load_folder_set(root, 8, cache_dir=cache)
    assert len(list(cache.glob("folder-*.npz"))) == 3
    assert not np.array_equal(changed.images, first.images)


def test_damaged_cache_is_rebuilt(tmp_path, caplog):
    root = make_classes(tmp_path / "d", per_class=2)
    s = folder_mod.load_folder_set(root, 8, cache_dir=tmp_path / "c")
    (path,) = (tmp_path / "c").glob("folder-*.npz")
    path.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        again = folder_mod.load_folder_set(root, 8, cache_dir=tmp_path / "c")
    assert "unreadable" in caplog.text
    np.testing.assert_array_equal(s.images, again.images)


def test_default_cache_next_to_data(tmp_path, monkeypatch):
    monkeypatch.delenv("GENLOOP_DATA_CACHE", raising=False)
    root = make_classes(tmp_path / "d", per_class=2)
    load_real(cfg(root, image_size=8))
    assert len(list((root / ".genloop_cache").glob("folder-*.npz"))) == 1
    # the hidden cache folder is not a class, and a second load uses the cache
    assert folder_mod.scan_folder(root).class_names == ["ant", "bee", "cat"]
    load_real(cfg(root, image_size=8))
    assert len(list((root / ".genloop_cache").glob("folder-*.npz"))) == 1


def test_workers_give_identical_results(tmp_path):
    root = make_classes(tmp_path / "d", per_class=8)
    a = folder_mod.load_folder_set(root, 8, workers=1, use_cache=False)
    b = folder_mod.load_folder_set(root, 8, workers=2, use_cache=False)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)


# --------------------------------------------------------------------------- io


def test_save_npz_and_load_path_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    s = ImageSet(rng.integers(0, 256, (6, 3, 5, 5), dtype=np.uint8), np.array([0, 1, 2, 3, 0, 1]), 7)
    path = save_npz(tmp_path / "out" / "s.npz", s)
    back = load_path(path)
    np.testing.assert_array_equal(back.images, s.images)
    np.testing.assert_array_equal(back.labels, s.labels)
    assert back.num_classes == 7
    assert [p.name for p in path.parent.iterdir()] == ["s.npz"]  # no temporary file left
    assert load_path(path, image_size=10).images.shape == (6, 3, 10, 10)
    unl = save_npz(tmp_path / "u.npz", ImageSet(s.images))
    assert load_path(unl).labels is None


def test_save_npz_is_atomic(tmp_path, monkeypatch):
    path = save_npz(tmp_path / "s.npz", ImageSet(np.zeros((2, 1, 4, 4), np.uint8)))
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError):
        save_npz(path, ImageSet(np.ones((3, 1, 4, 4), np.uint8)))
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["s.npz"]


def test_load_path_samples_npz(tmp_path):
    # a run's samples.npz: images + labels, no num_classes
    np.savez(tmp_path / "samples.npz", images=np.zeros((4, 1, 8, 8), np.uint8), labels=np.array([0, 4, 1, 2]))
    s = load_path(tmp_path / "samples.npz")
    assert s.num_classes == 5 and s.images.shape == (4, 1, 8, 8)


def test_load_path_folder_native_size_and_grey(tmp_path):
    for i in range(3):
        save_image(tmp_path / "g" / "x" / f"{i}.png", mode="L", size=(12, 9))
        save_image(tmp_path / "g" / "y" / f"{i}.png", mode="L", size=(12, 9))
    s = load_path(tmp_path / "g")
    assert s.images.shape == (6, 1, 9, 12) and s.num_classes == 2  # native size kept, grey kept grey
    save_image(tmp_path / "g" / "y" / "rgb.png", mode="RGB", size=(12, 9))
    assert load_path(tmp_path / "g").images.shape == (7, 3, 9, 12)
    assert load_path(tmp_path / "g", image_size=6).images.shape == (7, 3, 6, 6)


def test_load_path_folder_mixed_sizes(tmp_path, caplog):
    for i, size in enumerate([(16, 16), (16, 16), (30, 20)]):
        save_image(tmp_path / "m" / f"{i}.png", size=size)
    with caplog.at_level(logging.WARNING):
        s = load_path(tmp_path / "m")
    assert s.images.shape == (3, 3, 16, 16) and s.labels is None and "different sizes" in caplog.text


def test_load_path_errors(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_path(tmp_path / "missing")
    save_image(tmp_path / "f" / "ok.png")
    corrupt_jpeg(tmp_path / "f" / "bad.jpg")
    with pytest.raises(DataError, match="bad.jpg: cannot decode this image"):
        load_path(tmp_path / "f")
    assert len(load_path(tmp_path / "f", skip_bad=True)) == 1
    truncated_jpeg(tmp_path / "t" / "cut.jpg")
    save_image(tmp_path / "t" / "ok.png", size=(64, 64))
    with pytest.raises(DataError, match="cut.jpg: cannot decode"):
        load_path(tmp_path / "t")


def test_info_text(capsys):
    rng = np.random.default_rng(0)
    train = ImageSet(rng.integers(0, 256, (30, 3, 8, 8), dtype=np.uint8), np.arange(30) % 3, 3)
    test = ImageSet(rng.integers(0, 256, (6, 3, 8, 8), dtype=np.uint8), np.arange(6) % 3, 3)
    text = info(RealData(train, test))
    assert "train" in text and "30 images" in text and "6 images" in text
    assert "3 x 8 x 8" in text and "classes: 3" in text
    rows = [line.split() for line in text.splitlines() if line[:1].isdigit()]
    assert rows == [["0", "10", "2"], ["1", "10", "2"], ["2", "10", "2"]]
    unl = info(RealData(ImageSet(train.images), ImageSet(test.images)))
    assert "unlabelled" in unl
    assert capsys.readouterr().out == ""  # library code never prints


def test_cli_data_info(tmp_path, capsys):
    from genloop.cli import main

    assert main(["data", "info", "shapes", "data.count=40"]) == 0
    out = capsys.readouterr().out
    assert "classes: 5" in out and "3 x 32 x 32" in out
    assert main(["data", "info", "folder", "--root", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err


# --------------------------------------------------------------------------- transforms


def test_resize_square_rgb_matches_per_channel():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3, 3, 12, 12), dtype=np.uint8)
    per_channel = np.stack([np.stack([np.asarray(Image.fromarray(x[i, c]).resize((5, 5), Image.BICUBIC))
                                      for c in range(3)]) for i in range(3)])
    np.testing.assert_array_equal(resize_square(x, 5), per_channel)
    assert resize_batch(x[:, :, :, :8], 4).shape == (3, 3, 4, 4)

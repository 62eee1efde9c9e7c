"""Image files decoded into one uint8 array (``decode_files``), with a pool of threads and a
progress bar, and their headers read first (``probe_files``); a file that cannot be
decoded is a ``DataError`` naming it, or skipped and logged with ``skip_bad``.

About 90 % of the time per image is in Pillow's decoder and resampler, which release the
GIL, so threads can use the cores without the pickling of a process pool (see
``genloop.data.folder``)."""
from __future__ import annotations

import functools
import logging
import os
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from . import DataError
from .transforms import decode_square, to_grey_or_rgb

log = logging.getLogger("genloop.data.folder")  # what the folder source says while decoding

SKIP_HINT = "set data.skip_bad=true to skip images that cannot be decoded"

Failures = list[tuple[int, str]]  # (index of the file, why it cannot be decoded)


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def reason(exc: BaseException) -> str:
    """An exception as one short line: its class and the first line of its message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def _decode_native(path: Path, grey: bool) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        return np.asarray(to_grey_or_rgb(img, grey), dtype=np.uint8)


def _decode_range(lo: int, hi: int, *, files: Sequence[Path], out: np.ndarray, size: Optional[int], grey: bool,
                  boxes: Optional[np.ndarray], bbox_padding: float, skip_bad: bool) -> Failures:
    """Decode ``files[lo:hi]`` into their rows of ``out`` (channel-first); return the
    failures (without ``skip_bad``: up to the first)."""
    h, w = out.shape[2:]
    fails = []
    for i in range(lo, hi):
        try:
            if size is None:
                a = _decode_native(files[i], grey)
            else:
                a = decode_square(files[i], size, grey, bbox=None if boxes is None else tuple(boxes[i]),
                                  bbox_padding=bbox_padding)
            if a.shape[:2] != (h, w):
                raise ValueError(f"is {a.shape[1]}x{a.shape[0]}, the others {w}x{h}")
            out[i] = a[None] if grey else a.transpose(2, 0, 1)
        except Exception as exc:  # every decoding failure is reported with its file
            fails.append((i, reason(exc)))
            if not skip_bad:
                break
    return fails


def _decode_pool(decode: Callable[[int, int], Failures], bounds: list[tuple[int, int]], workers: int,
                 skip_bad: bool, bar) -> list[Failures]:
    """``decode`` over ``bounds`` on ``workers`` threads; without ``skip_bad`` the first
    failure ends it and the ranges not started are cancelled."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="genloop-decode") as pool:
        pending = {pool.submit(decode, lo, hi): hi - lo for lo, hi in bounds}
        results = []
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED, timeout=0.2)
                for fut in done:
                    bar.update(pending.pop(fut))
                    results.append(fut.result())
                    if results[-1] and not skip_bad:
                        raise StopIteration  # the first failure ends the build
        except StopIteration:
            pass
        finally:  # on a failure or Ctrl-C, do not decode the rest
            for f in pending:
                f.cancel()
    return results


def _decode_all(decode: Callable[[int, int], Failures], n: int, workers: int, skip_bad: bool,
                desc: str) -> list[Failures]:
    """``decode`` over ``range(n)`` in ranges of up to 64 files, with a progress bar: in this
    thread for one worker or a single range, else on ``workers`` threads."""
    from tqdm.auto import tqdm

    chunk = max(1, min(64, n // (8 * workers) or 1))
    bounds = [(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]
    bar = tqdm(total=n, desc=desc, unit="img", disable=None, leave=False)
    try:
        if workers == 1 or n <= chunk:
            results = []
            for lo, hi in bounds:
                results.append(decode(lo, hi))
                bar.update(hi - lo)
                if results[-1] and not skip_bad:
                    break
            return results
        return _decode_pool(decode, bounds, workers, skip_bad, bar)
    finally:
        bar.close()


def _shown(path: Path, root: Optional[Path]) -> str:
    try:
        return str(path.relative_to(root)) if root is not None else str(path)
    except ValueError:
        return str(path)


def decode_files(files: Sequence[Path], size: Optional[int], *, grey: bool = False, workers: int = 0,
                 skip_bad: bool = False, native_shape: Optional[tuple[int, int]] = None,
                 desc: str = "decoding", root: Optional[Path] = None, boxes: Optional[np.ndarray] = None,
                 bbox_padding: float = 0.25, hint: str = SKIP_HINT) -> tuple[np.ndarray, np.ndarray, list[tuple[Path, str]]]:
    """Decode ``files`` with a pool of ``workers`` threads (0: one per core).

    ``size``: short side resized to it and centre-cropped (or, with ``boxes``
    (N, 4) of (x, y, width, height), the square around each box padded by
    ``bbox_padding``); None keeps the native size, which must then be
    ``native_shape`` (H, W) for every file.
    Returns ``images`` uint8 (n_ok, C, S, S) (C = 1 when ``grey``, else 3),
    ``ok`` bool (N,) marking the files kept, and ``bad`` [(path, reason)].
    Without ``skip_bad`` the first undecodable file raises ``DataError`` (ending with ``hint``)."""
    n = len(files)
    h, w = (size, size) if size is not None else native_shape  # type: ignore[misc]
    out = np.empty((n, 1 if grey else 3, h, w), dtype=np.uint8)  # filled image by image, channel-first
    decode = functools.partial(_decode_range, files=files, out=out, size=size, grey=grey, boxes=boxes,
                               bbox_padding=bbox_padding, skip_bad=skip_bad)
    results = _decode_all(decode, n, workers or default_workers(), skip_bad, desc)
    ok = np.ones(n, dtype=bool)
    bad: list[tuple[Path, str]] = []
    for fails in results:
        for i, why in fails:
            ok[i] = False
            bad.append((files[i], why))
    bad.sort(key=lambda b: str(b[0]))
    if bad and not skip_bad:
        path, why = bad[0]
        raise DataError(f"{path}: cannot decode this image ({why}); {hint}")
    if bad:
        log.warning("skipped %d of %d images that cannot be decoded: %s", len(bad), n,
                    "; ".join(f"{_shown(p, root)} ({r})" for p, r in bad))
    return (out[ok] if bad else out), ok, bad


def probe_files(files: list[Path], skip_bad: bool, hint: str = SKIP_HINT) -> tuple[np.ndarray, list[tuple[int, int]], list[str]]:
    """Open every file's header: (indices of the readable files, their (W, H), their Pillow modes)."""
    from PIL import Image

    keep, sizes, modes, bad = [], [], [], []
    for i, f in enumerate(files):
        try:
            with Image.open(f) as img:
                sizes.append(img.size)
                modes.append(img.mode)
                keep.append(i)
        except Exception as exc:  # not an image at all, or an unreadable header
            if not skip_bad:
                raise DataError(f"{f}: cannot decode this image ({reason(exc)}); {hint}") from None
            bad.append(f"{f} ({reason(exc)})")
    if bad:
        log.warning("skipped %d of %d files that are not readable images: %s", len(bad), len(files), "; ".join(bad))
    return np.asarray(keep, dtype=np.int64), sizes, modes

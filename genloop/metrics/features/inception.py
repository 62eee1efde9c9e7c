"""``inception`` features: pool3 (2048-d) of the FID Inception-v3 network.

This is the network of the original FID code (the TensorFlow graph
``inception-2015-12-05``), in the PyTorch port of pytorch-fid: torchvision's
Inception-v3 layout with 1008 classes, no auxiliary head, and the FID
blocks (``FIDInceptionA/C/E``): average pools that exclude the zero padding,
and a max pool in the pool branch of the last block.  It is written here in
plain torch so that genloop needs no torchvision; module and parameter names
match the published state dict ``pt_inception-2015-12-05-6726825d.pth``.

Preprocessing as pytorch-fid: uint8 -> [0, 1] -> bilinear resize to 299x299
(``align_corners=False``) -> scale to [-1, 1].  Grey images are repeated to
three channels.

Weights are never downloaded.  They are looked up, in order, at
``metrics.inception.weights``, ``$GENLOOP_INCEPTION_WEIGHTS``, then the torch
hub cache (``$TORCH_HOME/hub/checkpoints/``, default
``~/.cache/torch/hub/checkpoints/``), as ``.pth`` (loaded with
``weights_only=True``) or ``.safetensors``.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...config import ConfigError, opt
from ...runfolder import sha256_file
from ...utils import chunks
from . import EXTRACTORS, FeatureExtractor

log = logging.getLogger(__name__)

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + WEIGHTS_NAME
ENV_VAR = "GENLOOP_INCEPTION_WEIGHTS"
INPUT_SIZE = 299
FEATURE_DIM = 2048


class InceptionWeightsError(ConfigError):
    """The FID Inception weights are missing or do not fit; the message says what to put where.

    A ``ConfigError`` (a ``ValueError``): a setting to fix, reported without a traceback by the CLI."""


# --------------------------------------------------------------------------- network


class ConvBN(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU; parameter names ``conv.*``, ``bn.*``."""

    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_same(x: torch.Tensor) -> torch.Tensor:
    # TensorFlow's 3x3 average pool ignores the zero padding in the mean.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class BlockA(nn.Module):
    """35x35 block (FIDInceptionA): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(cin, 64, 1)
        self.branch5x5_1 = ConvBN(cin, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch5x5_2(self.branch5x5_1(x))
        c = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        d = self.branch_pool(_avg_pool_same(x))
        return torch.cat([a, b, c, d], 1)


class BlockB(nn.Module):
    """35 -> 17 grid reduction (Mixed_6a): 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = ConvBN(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3(x)
        b = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        c = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([a, b, c], 1)


class BlockC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (FIDInceptionC)."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(cin, 192, 1)
        self.branch7x7_1 = ConvBN(cin, c7, 1)
        self.branch7x7_2 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvBN(cin, c7, 1)
        self.branch7x7dbl_2 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = ConvBN(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        c = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            c = layer(c)
        d = self.branch_pool(_avg_pool_same(x))
        return torch.cat([a, b, c, d], 1)


class BlockD(nn.Module):
    """17 -> 8 grid reduction (Mixed_7a)."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBN(cin, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(cin, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_2(self.branch3x3_1(x))
        b = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        c = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([a, b, c], 1)


class BlockE(nn.Module):
    """8x8 block with expanded filter banks (FIDInceptionE_1 / _2).

    ``max_pool=False``: the pool branch averages (excluding padding), as Mixed_7b;
    ``max_pool=True``: it takes a 3x3 max, as Mixed_7c of the FID graph."""

    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = ConvBN(cin, 320, 1)
        self.branch3x3_1 = ConvBN(cin, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(cin, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch1x1(x)
        b = self.branch3x3_1(x)
        b = torch.cat([self.branch3x3_2a(b), self.branch3x3_2b(b)], 1)
        c = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        c = torch.cat([self.branch3x3dbl_3a(c), self.branch3x3dbl_3b(c)], 1)
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _avg_pool_same(x)
        d = self.branch_pool(pooled)
        return torch.cat([a, b, c, d], 1)


class FIDInceptionV3(nn.Module):
    """The FID Inception-v3; ``forward`` maps images in [-1, 1] (B, 3, 299, 299) to pool3 (B, 2048).

    ``fc`` (2048 -> 1008 logits) is kept only so that the published state dict
    loads as is; the features stop before it."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = BlockA(192, 32)
        self.Mixed_5c = BlockA(256, 64)
        self.Mixed_5d = BlockA(288, 64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b = BlockC(768, 128)
        self.Mixed_6c = BlockC(768, 160)
        self.Mixed_6d = BlockC(768, 160)
        self.Mixed_6e = BlockC(768, 192)
        self.Mixed_7a = BlockD(768)
        self.Mixed_7b = BlockE(1280, max_pool=False)
        self.Mixed_7c = BlockE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W), C in {1, 3} -> float (B, 3, 299, 299) in [-1, 1], as pytorch-fid."""
    x = images.float() / 255.0
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return 2.0 * x - 1.0


# --------------------------------------------------------------------------- weights


def hub_checkpoint_dir() -> Path:
    """``$TORCH_HOME/hub/checkpoints`` (``$TORCH_HOME`` defaults to ``$XDG_CACHE_HOME/torch`` or ``~/.cache/torch``)."""
    torch_home = os.environ.get("TORCH_HOME")
    if not torch_home:
        torch_home = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
    return Path(torch_home).expanduser() / "hub" / "checkpoints"


def _missing_message(what: str) -> str:
    return (f"{what}\nThe FID Inception-v3 weights are needed for features=inception and genloop never downloads them. "
            f"Fetch {WEIGHTS_URL} yourself and either place it at {hub_checkpoint_dir() / WEIGHTS_NAME} "
            f"(the torch hub cache, $TORCH_HOME/hub/checkpoints/), or point the config key "
            f"metrics.inception.weights or the environment variable {ENV_VAR} at it "
            f"(a .pth state dict or a .safetensors file). Or use features=pixels / classifier.")


def find_weights(path: Optional[Union[str, Path]] = None) -> Path:
    """The weights file: ``path`` if given, else ``$GENLOOP_INCEPTION_WEIGHTS``, else the torch hub cache.

    Raises ``InceptionWeightsError`` naming the file, the places looked at and the URL."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise InceptionWeightsError(_missing_message(f"metrics.inception.weights: {str(p)!r} does not exist."))
        return p
    env = os.environ.get(ENV_VAR)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise InceptionWeightsError(_missing_message(f"{ENV_VAR}={env!r}: no such file."))
        return p
    hub = hub_checkpoint_dir()
    for name in (WEIGHTS_NAME, WEIGHTS_NAME[:-4] + ".safetensors"):
        if (hub / name).is_file():
            return hub / name
    raise InceptionWeightsError(_missing_message(f"Inception weights not found: no {WEIGHTS_NAME} in {hub}, "
                                                 f"metrics.inception.weights is not set and {ENV_VAR} is not set."))


_SHA256: dict = {}


def file_sha256(path: Path) -> str:
    """SHA-256 of a file (memoised by path, size and modification time)."""
    st = path.stat()
    memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo_key not in _SHA256:
        _SHA256[memo_key] = sha256_file(path)
    return _SHA256[memo_key]


def read_state_dict(path: Path) -> dict:
    """Tensors of a ``.safetensors`` file or a ``.pth`` state dict (``torch.load(..., weights_only=True)``)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle with objects, a truncated file, ...
        raise InceptionWeightsError(f"{path}: cannot be read as a weights-only state dict ({exc.__class__.__name__}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else ''}). " + _missing_message("")) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InceptionWeightsError(f"{path}: not a state dict of tensors. " + _missing_message(""))
    return state


def load_inception(path: Optional[Union[str, Path]] = None) -> tuple[FIDInceptionV3, Path]:
    """Build ``FIDInceptionV3`` with the published weights; returns ``(net in eval mode, weights path)``."""
    p = find_weights(path)
    m = re.fullmatch(r"pt_inception-2015-12-05-([0-9a-f]{8})\.pth", p.name)
    if m and not file_sha256(p).startswith(m.group(1)):
        log.warning("%s: SHA-256 does not start with %s as its name says; the file may be corrupt", p, m.group(1))
    state = read_state_dict(p)
    net = FIDInceptionV3()
    expected = net.state_dict()
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    state = {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}
    missing = sorted(set(expected) - set(state) - optional)
    unexpected = sorted(k for k in set(state) - set(expected) if not k.startswith("AuxLogits."))
    wrong = sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {label} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})")
        raise InceptionWeightsError(f"{p}: not the FID Inception-v3 state dict: " + "; ".join(parts) + ". "
                                    + _missing_message(""))
    net.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)
    log.info("FID Inception-v3 weights loaded from %s", p)
    return net.eval(), p


# --------------------------------------------------------------------------- extractor


class InceptionFeatures(FeatureExtractor):
    """2048-d pool3 features of the FID Inception-v3."""

    name = "inception"
    dim = FEATURE_DIM

    def __init__(self, net: FIDInceptionV3, device: Union[str, torch.device] = "cpu", batch_size: int = 50,
                 weights_id: str = "") -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.batch_size = int(batch_size)
        self.key = f"inception-fid-2015-12-05-v1-{weights_id}"

    @classmethod
    def from_weights(cls, path: Optional[Union[str, Path]] = None, device: Union[str, torch.device] = "cpu",
                     batch_size: int = 50) -> "InceptionFeatures":
        net, p = load_inception(path)
        return cls(net, device, batch_size, weights_id=file_sha256(p)[:16])

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.check(images)
        if images.dtype != np.uint8:
            raise ValueError(f"inception features: need uint8 images, got {images.dtype} "
                             "(vector data: use features=pixels)")
        if images.shape[1] not in (1, 3):
            raise ValueError(f"inception features: need 1 (grey) or 3 (RGB) channels, got {images.shape[1]}")
        out = np.empty((len(images), FEATURE_DIM), dtype=np.float32)
        for s in chunks(len(images), self.batch_size):
            x = preprocess(torch.from_numpy(np.ascontiguousarray(images[s])).to(self.device))
            out[s] = self.net(x).float().cpu().numpy()
        return out


@dataclass
class InceptionOptions:
    """Options of the ``inception`` features (``metrics.inception.<key>``)."""

    weights: Optional[str] = opt(None, "path of pt_inception-2015-12-05-6726825d.pth (or .safetensors); None: $GENLOOP_INCEPTION_WEIGHTS, then the torch hub cache", old="inception_weights")
    batch_size: int = opt(50, "images per forward pass of the Inception feature extractor", ge=1, old="feature_batch_size")


@EXTRACTORS.register("inception", options=InceptionOptions)
def inception(ctx) -> InceptionFeatures:
    o: InceptionOptions = ctx.config.metrics.group("inception")
    return InceptionFeatures.from_weights(o.weights, ctx.device, o.batch_size)

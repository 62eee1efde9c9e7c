"""The domain classifier: a classifier of the real training images, trained once per run
(cached in the run's cache folder) and shared by what scores samples with it: the
``classifier`` metric, the ``classifier`` feature extractor and curation's filter
(``MetricContext.classifier`` and ``filter_classifier`` build it on first use).
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..data import ImageSet
from ..models.classifier import build_classifier
from ..utils import chunks, digest, to_model

log = logging.getLogger(__name__)

_BATCH = 1024


class DomainClassifier:
    """A classifier of the real data; ``probs`` and ``features`` take uint8 (N, C, H, W)."""

    def __init__(self, net: torch.nn.Module, device: torch.device) -> None:
        self.net = net.to(device).eval()
        self.device = device

    @classmethod
    def trained(cls, ctx: Any) -> "DomainClassifier":
        """Trained on ``ctx`` (a ``MetricContext``): its real data, config, seed, device and cache folder."""
        # All real training images, whatever data.limit leaves the generator (RealData.full_train).
        train = ctx.real.full_train if ctx.real.full_train is not None else ctx.real.train
        if not train.labelled:
            raise ValueError("metrics: the classifier metric needs a labelled dataset "
                             f"({ctx.config.data.name!r} has no labels); use fd/kid/prdc with features=inception or pixels")
        ccfg = ctx.config.metrics.classifier
        torch.manual_seed(ctx.seed + 12345)  # initialisation does not depend on earlier work
        net = build_classifier(train.shape, train.num_classes, ccfg.width)
        key = digest(train.images, train.labels, ccfg.__dict__, ctx.seed, "classifier-v2")
        path: Optional[Path] = ctx.cache_dir / f"classifier-{key}.safetensors" if ctx.cache_dir else None
        if path is not None and path.exists():
            from ..runfolder import DamagedFile, read_weights

            try:  # the cached judge is used only when its checksum holds; else it is trained again
                # a judge cached before checksums is used as it is: training it again could give a
                # slightly different judge than the one that scored the folder's earlier generations
                tensors, _ = read_weights(path, legacy=True)
                net.load_state_dict(tensors)
            except (DamagedFile, RuntimeError, KeyError) as exc:
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log.warning("cached classifier: %s; training it again", msg if str(path) in msg else f"{path}: {msg}")
                path.unlink(missing_ok=True)
                torch.manual_seed(ctx.seed + 12345)
                net = build_classifier(train.shape, train.num_classes, ccfg.width)
            else:
                log.info("classifier loaded from %s", path)
                return cls(net, ctx.device)
        fit_classifier(net, train, ccfg, ctx.device, seed=ctx.seed)
        if path is not None:
            from ..runfolder import save_weights

            save_weights(path, net.state_dict())
        return cls(net, ctx.device)

    @torch.inference_mode()
    def logits(self, images: np.ndarray) -> torch.Tensor:
        out = [self.net(to_model(images[s]).to(self.device)).float().cpu() for s in chunks(len(images), _BATCH)]
        return torch.cat(out) if out else torch.zeros(0)

    @torch.inference_mode()
    def features(self, images: np.ndarray) -> np.ndarray:
        """Penultimate-layer features, float32 (N, D)."""
        out = [self.net.features(to_model(images[s]).to(self.device)).float().cpu() for s in chunks(len(images), _BATCH)]
        return torch.cat(out).numpy()


def fit_classifier(net: torch.nn.Module, train: ImageSet, ccfg, device: torch.device, seed: int) -> float:
    """Train ``net`` with AdamW, a linear warm-up over the first 15 % of the steps and a cosine
    decay; returns the last loss.  Augmentation: Gaussian pixel noise (sigma 0.05 in [-1, 1]
    units), and for nets with ``shift_augment`` (the CNN) a random shift of each batch by up to
    max(1, side // 14) pixels (padding with the background)."""
    gen = torch.Generator().manual_seed(seed + 12345)
    torch.manual_seed(seed + 12345)
    x_all = to_model(train.images)
    y_all = torch.from_numpy(train.labels)
    net.to(device).train()
    lr = ccfg.lr if ccfg.lr is not None else getattr(net, "default_lr", 1e-3)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    warm = max(1, int(0.15 * ccfg.steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(ccfg.steps - warm, 1))))
    pad = max(1, train.shape[-1] // 14) if getattr(net, "shift_augment", False) else 0
    loss = torch.zeros(())
    for _ in range(ccfg.steps):
        idx = torch.randint(0, len(x_all), (min(ccfg.batch_size, len(x_all)),), generator=gen)
        x = x_all[idx]
        if pad:
            h, w = x.shape[-2:]
            dy, dx = torch.randint(0, 2 * pad + 1, (2,), generator=gen).tolist()
            x = F.pad(x, (pad, pad, pad, pad), value=-1.0)[..., dy:dy + h, dx:dx + w]
        # A little pixel noise, so that slightly noisy samples are scored fairly.
        x = x + 0.05 * torch.randn(x.shape, generator=gen)
        loss = F.cross_entropy(net(x.to(device)), y_all[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    log.info("classifier trained on %d real images: %d steps, last loss %.4f", len(train), ccfg.steps, float(loss.detach()))
    return float(loss.detach())

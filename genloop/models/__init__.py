"""Networks.  Denoisers are registered in ``NETWORKS`` under ``generator.network``.

A denoiser factory takes ``(shape, num_classes, options)`` (``options``: its own
options dataclass, ``generator.<network>.<key>``, or None when it registered none) and
returns an ``nn.Module`` called as ``net(x, t, y)`` with ``x`` float (B, C, H, W)
in [-1, 1] scale, ``t`` int64 (B,) timesteps and ``y`` int64 (B,) labels where
``num_classes`` is the null label (classifier-free guidance), returning the
predicted noise with the shape of ``x``.
"""
from ..config import GeneratorConfig
from ..registry import Registry

NETWORKS: Registry = Registry("network", section=GeneratorConfig, slot="network")


def build_network(name: str, shape, num_classes: int, cfg):
    return NETWORKS.get(name)(shape, num_classes, cfg)

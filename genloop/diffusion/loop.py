"""The sampling loop: runs the network and hands its output to a sampler's ``step``."""
from __future__ import annotations

from typing import Callable, Optional

import torch

from .guidance import cfg_combine


def guided_eps(net: Callable, x: torch.Tensor, t: torch.Tensor, y: Optional[torch.Tensor],
               null_label: int, w: float) -> torch.Tensor:
    """Noise prediction with classifier-free guidance, one batched forward pass
    for the conditional and unconditional halves.  ``y = None``: unconditional."""
    if y is None:
        return net(x, t, None)
    if w == 0.0:
        return net(x, t, y)
    x2 = torch.cat([x, x])
    t2 = torch.cat([t, t])
    y2 = torch.cat([y, torch.full_like(y, null_label)])
    eps_cond, eps_uncond = net(x2, t2, y2).chunk(2)
    return cfg_combine(eps_cond, eps_uncond, w)


@torch.no_grad()
def sample_loop(net: Callable, sampler, shape: tuple, y: Optional[torch.Tensor], null_label: int,
                guidance_scale: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Draw x_T ~ N(0, I) and denoise it with ``sampler``; returns x_0 (float, unclipped)."""
    # Noise is drawn on the CPU generator and moved, so results do not depend on the device's RNG.
    x = torch.randn(shape, generator=generator, dtype=torch.float32).to(device)
    for t in sampler.timesteps():
        tt = torch.full((shape[0],), t, dtype=torch.long, device=device)
        eps = guided_eps(net, x, tt, y, null_label, guidance_scale)
        x = sampler.step(eps, t, x, generator=generator)
    return x

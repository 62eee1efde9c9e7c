"""Classifier-free guidance (Ho & Salimans 2022, Eq. 6).

    eps~ = (1 + w) eps(x, t, y) - w eps(x, t, null)

w = 0 is the plain conditional model; the paper's strong, weak and no guidance
are w = 1.0, 0.1 and 1e-10.  The other common convention (e.g. diffusers'
``guidance_scale``) writes eps~ = eps_uncond + s (eps_cond - eps_uncond), which
is the same with s = 1 + w.
"""
from __future__ import annotations

import torch


def cfg_combine(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, w: float) -> torch.Tensor:
    """Combine conditional and unconditional noise predictions with guidance weight ``w``."""
    return (1.0 + w) * eps_cond - w * eps_uncond

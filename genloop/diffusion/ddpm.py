"""Ancestral DDPM sampler (Ho et al. 2020, Algorithm 2)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..config import opt
from .base import SAMPLERS
from .schedule import NoiseSchedule


@dataclass
class DDPMOptions:
    """Options of the ``ddpm`` sampler (``sampler.ddpm.<key>``)."""

    variance: str = opt("posterior", "DDPM reverse-step variance: posterior (beta~_t) or beta (beta_t)", choices=("posterior", "beta"))


@SAMPLERS.register("ddpm", options=DDPMOptions)
class DDPMSampler:
    """One reverse step x_t -> x_{t-1} ~ N(mu~_t, beta~_t I), with the posterior mean
    mu~_t = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x0_hat + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t
    (DDPM Eq. 7) and x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t).  Without clipping
    this equals Algorithm 2's mean 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - abar_t) eps);
    ``clip_x0`` clamps x0_hat to [-1, 1] first.  No noise is added at t = 0.
    ``variance``: sigma_t^2 = beta~_t ("posterior") or beta_t ("beta"); DDPM Sec. 3.2 reports
    similar results for both (Conditional_Diffusion_MNIST, the paper's code, uses beta_t).
    Uses all T steps (``steps`` and ``eta`` are ignored)."""

    def __init__(self, schedule: NoiseSchedule, steps: Optional[int] = None, eta: float = 1.0,
                 clip_x0: bool = True, variance: str = "posterior") -> None:
        if variance not in ("posterior", "beta"):
            raise ValueError(f"sampler.ddpm.variance: {variance!r} must be 'posterior' or 'beta'")
        self.schedule = schedule
        self.clip_x0 = clip_x0
        self.var = schedule.posterior_variance if variance == "posterior" else schedule.betas

    def timesteps(self) -> list[int]:
        return list(range(self.schedule.T - 1, -1, -1))

    def step(self, model_out: torch.Tensor, t: int, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        s = self.schedule
        beta, alpha = float(s.betas[t]), float(s.alphas[t])
        abar, abar_prev = float(s.alpha_bar[t]), float(s.alpha_bar_prev[t])
        x0 = (x - (1.0 - abar) ** 0.5 * model_out) / abar ** 0.5
        if self.clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
        mean = (abar_prev ** 0.5 * beta / (1.0 - abar)) * x0 + (alpha ** 0.5 * (1.0 - abar_prev) / (1.0 - abar)) * x
        if t == 0:
            return mean
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        return mean + float(self.var[t]) ** 0.5 * z

"""Noise schedules and the forward process q(x_t | x_0) (Ho et al. 2020).

Notation of the DDPM paper: ``beta_t``, ``alpha_t = 1 - beta_t``,
``alpha_bar_t = prod_{s<=t} alpha_s``.  Timesteps are 0-based: t = 0..T-1.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..config import ConfigError, opt
from .base import SCHEDULES


@dataclass
class LinearOptions:
    """Options of the ``linear`` schedule (``generator.linear.<key>``)."""

    beta_start: float = opt(1e-4, "linear: first beta", gt=0.0, lt=1.0)
    beta_end: float = opt(0.02, "linear: last beta", gt=0.0, lt=1.0)

    def check(self) -> None:
        if self.beta_end <= self.beta_start:
            raise ConfigError(f"generator.linear.beta_end: {self.beta_end} must be larger than "
                              f"generator.linear.beta_start ({self.beta_start})")


@SCHEDULES.register("linear", options=LinearOptions)
def linear_betas(timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Linearly spaced betas (DDPM paper, Sec. 4: 1e-4 to 0.02 over T = 1000)."""
    return torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)


@SCHEDULES.register("cosine")
def cosine_betas(timesteps: int, beta_start: float = 0.0, beta_end: float = 0.999, s: float = 0.008) -> torch.Tensor:
    """Cosine schedule (Nichol & Dhariwal 2021, Eq. 17):
    alpha_bar(t) = f(t) / f(0), f(t) = cos^2(((t/T + s) / (1 + s)) * pi/2),
    beta_t = 1 - alpha_bar(t) / alpha_bar(t-1), clipped at 0.999."""
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    betas = 1 - alpha_bar[1:] / alpha_bar[:-1]
    return betas.clamp(max=0.999)


class NoiseSchedule:
    """Precomputed schedule quantities (float64 master copies, float32 for use)."""

    def __init__(self, betas: torch.Tensor) -> None:
        betas = betas.to(torch.float64)
        if not ((betas > 0) & (betas < 1)).all():
            raise ValueError("betas must lie in (0, 1)")
        self.T = len(betas)
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alpha_bar = torch.cumprod(self.alphas, 0)
        self.alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bar[:-1]])
        self.sqrt_alpha_bar = self.alpha_bar.sqrt()
        self.sqrt_one_minus_alpha_bar = (1.0 - self.alpha_bar).sqrt()
        # Posterior q(x_{t-1} | x_t, x_0) variance, DDPM Eq. 7: beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t
        self.posterior_variance = betas * (1.0 - self.alpha_bar_prev) / (1.0 - self.alpha_bar)

    @staticmethod
    def _gather(v: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        out = v.to(x.device)[t].to(x.dtype)
        return out.view(-1, *([1] * (x.ndim - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Sample q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)  (DDPM Eq. 4)."""
        return self._gather(self.sqrt_alpha_bar, t, x0) * x0 + self._gather(self.sqrt_one_minus_alpha_bar, t, x0) * noise

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)  (Eq. 4 solved for x_0)."""
        return (x_t - self._gather(self.sqrt_one_minus_alpha_bar, t, x_t) * eps) / self._gather(self.sqrt_alpha_bar, t, x_t)


def make_schedule(name: str, timesteps: int, options: Optional[Any] = None) -> NoiseSchedule:
    """The schedule ``name`` (``generator.schedule``) over ``timesteps`` steps, given its options
    (``generator.<name>``; None when it registered none)."""
    fn = SCHEDULES.get(name)
    kwargs = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)} if options is not None else {}
    return NoiseSchedule(fn(timesteps, **kwargs))

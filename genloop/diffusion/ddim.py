"""DDIM sampler (Song et al. 2021, Eq. 12) on an evenly spaced sub-sequence of timesteps."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..config import opt
from .base import SAMPLERS
from .schedule import NoiseSchedule


@dataclass
class DDIMOptions:
    """Options of the ``ddim`` sampler (``sampler.ddim.<key>``)."""

    eta: float = opt(0.0, "DDIM eta: 0 deterministic, 1 ancestral-like", ge=0.0, le=1.0)


@SAMPLERS.register("ddim", options=DDIMOptions)
class DDIMSampler:
    """x_{t'} = sqrt(abar_{t'}) x0_hat + sqrt(1 - abar_{t'} - sigma^2) eps + sigma z   (Eq. 12)
    with x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t) and
    sigma = eta sqrt((1 - abar_{t'}) / (1 - abar_t)) sqrt(1 - abar_t / abar_{t'})   (Eq. 16).
    ``eta = 0`` is deterministic; t' is the next (smaller) timestep, abar = 1 after the last.
    With ``clip_x0``, x0_hat is clamped to [-1, 1] and eps re-derived from it
    (as improved-diffusion's DDIM does).  ``variance`` is accepted for a uniform
    signature and ignored (eta sets DDIM's noise)."""

    def __init__(self, schedule: NoiseSchedule, steps: int = 50, eta: float = 0.0, clip_x0: bool = True,
                 variance: str = "posterior") -> None:
        if not 1 <= steps <= schedule.T:
            raise ValueError(f"sampler.steps: {steps} must be between 1 and T = {schedule.T}")
        self.schedule = schedule
        self.eta = eta
        self.clip_x0 = clip_x0
        ts = torch.linspace(schedule.T - 1, 0, steps).round().long().unique_consecutive()
        self._ts = ts.tolist()
        self._next = {t: (self._ts[i + 1] if i + 1 < len(self._ts) else -1) for i, t in enumerate(self._ts)}

    def timesteps(self) -> list[int]:
        return list(self._ts)

    def step(self, model_out: torch.Tensor, t: int, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        s = self.schedule
        t_next = self._next[t]
        abar = float(s.alpha_bar[t])
        abar_next = float(s.alpha_bar[t_next]) if t_next >= 0 else 1.0
        eps = model_out
        x0 = (x - (1.0 - abar) ** 0.5 * eps) / abar ** 0.5
        if self.clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
            eps = (x - abar ** 0.5 * x0) / (1.0 - abar) ** 0.5
        sigma = self.eta * ((1.0 - abar_next) / (1.0 - abar)) ** 0.5 * (1.0 - abar / abar_next) ** 0.5
        dir_coef = max(1.0 - abar_next - sigma ** 2, 0.0) ** 0.5
        x_next = abar_next ** 0.5 * x0 + dir_coef * eps
        if sigma > 0:
            x_next = x_next + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        return x_next

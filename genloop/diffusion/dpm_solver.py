"""DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2), a second-order
multistep solver of the probability-flow ODE in data (x_0) prediction form."""
from __future__ import annotations

import math
from typing import Optional

import torch

from .base import SAMPLERS
from .schedule import NoiseSchedule


@SAMPLERS.register("dpm_solver")
class DPMSolverPP2M:
    """With alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t), lambda_t = log(alpha_t / sigma_t),
    x0_hat_i = (x_i - sigma_i eps_i) / alpha_i and h_i = lambda_{i+1} - lambda_i, one step is

        x_{i+1} = (sigma_{i+1} / sigma_i) x_i - alpha_{i+1} (exp(-h_i) - 1) D_i,

    D_i = x0_hat_i on the first step (DPM-Solver++(1) = DDIM) and on the last (to abar = 1, where
    x_{i+1} = D_i), else D_i = (1 + 1/(2 r_i)) x0_hat_i - 1/(2 r_i) x0_hat_{i-1}, r_i = h_{i-1} / h_i.
    Timesteps: ``steps`` evenly spaced from T-1 to 0, as DDIM's.  ``clip_x0`` clamps x0_hat to
    [-1, 1] (thresholding of x_0 prediction, as DPM-Solver++ allows).  It keeps the previous
    x0_hat between calls and starts afresh at the first timestep; ``eta`` and ``variance`` are
    accepted for a uniform signature and ignored (the solver is deterministic)."""

    def __init__(self, schedule: NoiseSchedule, steps: int = 20, eta: float = 0.0, clip_x0: bool = True,
                 variance: str = "posterior", spacing: str = "logsnr") -> None:
        if not 1 <= steps <= schedule.T:
            raise ValueError(f"sampler.steps: {steps} must be between 1 and T = {schedule.T}")
        self.schedule = schedule
        self.clip_x0 = clip_x0
        self._ts = self._spacing(schedule, steps, spacing)
        self._next = {t: (self._ts[i + 1] if i + 1 < len(self._ts) else -1) for i, t in enumerate(self._ts)}
        self._prev: Optional[tuple[torch.Tensor, float]] = None  # (x0_hat, h) of the previous step

    @staticmethod
    def _spacing(schedule: NoiseSchedule, steps: int, spacing: str) -> list[int]:
        if spacing == "time":
            return torch.linspace(schedule.T - 1, 0, steps).round().long().unique_consecutive().tolist()
        if spacing != "logsnr":
            raise ValueError(f"sampler spacing {spacing!r}: use 'logsnr' or 'time'")
        lam = 0.5 * torch.log(schedule.alpha_bar / (1.0 - schedule.alpha_bar))  # decreasing in t
        targets = torch.linspace(float(lam[-1]), float(lam[0]), steps, dtype=torch.float64)
        # the timestep whose lambda is nearest each target; strictly descending, ending at 0
        idx = (lam[None, :] - targets[:, None]).abs().argmin(1)
        out: list[int] = []
        for t in idx.tolist():
            if not out or t < out[-1]:
                out.append(t)
        if out[-1] != 0:
            out.append(0)
        return out

    def timesteps(self) -> list[int]:
        return list(self._ts)

    def _lam(self, t: int) -> float:
        abar = float(self.schedule.alpha_bar[t])
        return 0.5 * math.log(abar / (1.0 - abar))

    def step(self, model_out: torch.Tensor, t: int, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        s = self.schedule
        if t == self._ts[0]:
            self._prev = None  # a new trajectory
        abar = float(s.alpha_bar[t])
        alpha, sigma = abar ** 0.5, (1.0 - abar) ** 0.5
        x0 = (x - sigma * model_out) / alpha
        if self.clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
        t_next = self._next[t]
        if t_next < 0:  # the last step: to abar = 1, sigma = 0 (first order, x_{i+1} = x0_hat)
            self._prev = None
            return x0
        abar_n = float(s.alpha_bar[t_next])
        alpha_n, sigma_n = abar_n ** 0.5, (1.0 - abar_n) ** 0.5
        h = self._lam(t_next) - self._lam(t)
        d = x0
        if self._prev is not None:
            x0_prev, h_prev = self._prev
            r = h_prev / h
            d = (1.0 + 0.5 / r) * x0 - (0.5 / r) * x0_prev
        self._prev = (x0, h)
        return (sigma_n / sigma) * x - alpha_n * math.expm1(-h) * d

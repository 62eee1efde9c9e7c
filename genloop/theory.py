"""Exact expectations of the loop for the sources with closed forms (derivations in
docs/safe-synthetic.md).  Pure arithmetic: no data, no randomness.

- ``gini_simpson_replace`` / ``gini_simpson_accumulate``: E[1 - sum q_k^2] of the
  maximum-likelihood categorical refitted over generations (``categorical`` generator).
- ``gaussian_mix_moments``: E[fitted variance] and E[squared mean drift] of a Gaussian
  refitted by maximum likelihood each generation under ``mix`` with real share r, for the
  same real set (a fresh subset of it each generation) or fresh real draws;
  ``gaussian_mix_fixed_point`` their limit, and ``gaussian_mix_first_order`` the fixed
  point when the mean's drift is ignored.
"""
from __future__ import annotations

import math

import numpy as np


def gini_simpson_replace(d0: float, n: int, generations: int) -> np.ndarray:
    """E[D] of the model of generations 0..G-1 under replace: d0 (1 - 1/n)^g, with d0 the
    real training set's 1 - sum q^2 (its n draws are the first fit)."""
    return d0 * (1.0 - 1.0 / n) ** np.arange(generations)


def gini_simpson_accumulate(d0: float, n: int, generations: int) -> np.ndarray:
    """E[D] of the model of generations 0..G-1 under accumulate (n samples a generation):
    d0 prod_{t=1..g} (1 - 1 / (n (t + 1)^2)), bounded below by d0 (1 - (pi^2/6 - 1) / n)."""
    t = np.arange(1, generations)
    return d0 * np.concatenate([[1.0], np.cumprod(1.0 - 1.0 / (n * (t + 1.0) ** 2))])


def _mix_coefficients(n: int, r: float, fresh: bool) -> tuple:
    """(V, M) -> (V', M') = A @ (V, M) + b for one mix generation (docs/safe-synthetic.md)."""
    k = r * n
    a = 1.0 - r
    if fresh:  # real part: k new draws of N(0, 1); V in units of the true variance
        A = np.array([[a * (n - 1) / n, a * r], [a / n, a * a]])
        b = np.array([r * (n - 1) / n, r / n])
    else:  # real part: k of the fixed n real points without replacement; V in units of their ML variance
        alpha = (n * n - 2 * n + k) / (n * (n - 1))
        A = np.array([[a * (n - 1) / n, a * r], [a / n, a * a]])
        b = np.array([r * alpha, r * (n - k) / ((n - 1) * n)])
    return A, b


def gaussian_mix_moments(n: int, r: float, generations: int, fresh: bool = False,
                         v0: float = None, m0: float = None) -> tuple[np.ndarray, np.ndarray]:
    """E[v_g] and E[(mu_g - centre)^2] of generations 0..G-1 (fitted variance and mean).

    Same real set (``fresh`` False): in units of the real set's ML variance s^2, centred on
    its mean; generation 0 fits the real set itself (v0 = 1, m0 = 0).  Fresh real draws:
    in units of the true variance, centred on the true mean; generation 0 fits n true
    draws (v0 = (n - 1)/n, m0 = 1/n)."""
    A, b = _mix_coefficients(n, r, fresh)
    x = np.array([1.0 if v0 is None and not fresh else ((n - 1) / n if v0 is None else v0),
                  (0.0 if not fresh else 1.0 / n) if m0 is None else m0])
    out = np.zeros((generations, 2))
    for g in range(generations):
        out[g] = x
        x = A @ x + b
    return out[:, 0], out[:, 1]


def gaussian_mix_fixed_point(n: int, r: float, fresh: bool = False) -> tuple[float, float]:
    """The limit (V, M) of ``gaussian_mix_moments`` (0 < r <= 1)."""
    if not 0.0 < r <= 1.0:
        raise ValueError(f"real share r = {r} must be in (0, 1]")
    A, b = _mix_coefficients(n, r, fresh)
    v, m = np.linalg.solve(np.eye(2) - A, b)
    return float(v), float(m)


def gaussian_mix_first_order(n: int, r: float) -> float:
    """The variance's fixed point when the mean's drift is ignored: (n-1) r / (1 + (n-1) r)."""
    return (n - 1) * r / (1.0 + (n - 1) * r)


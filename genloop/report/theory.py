"""Closed-form expectations drawn next to measured curves.

Variance collapse (``variance_ratio``): a Gaussian fitted by maximum likelihood
(divisor n) to n points and sampled n times, generation after generation, each
generation trained only on the previous one's samples (``generator.name:
gaussian``, ``loop.interaction: replace``), has

    E[var(samples of generation g)] = var(real training set) x ((n-1)/n)^(g+1)

(g+1 fits: the real data's and g refits; each fit's variance is (n-1)/n of the
data's in expectation, and samples of a fitted Gaussian have its variance).  The
report draws this curve, labelled "theory", next to the measured mean, for the
chains that ``chains.json`` marks with ``"theory": ["variance_ratio"]`` (the
runner asks the components, ``genloop.loop.theory``).
"""
from __future__ import annotations

from typing import Optional


def variance_ratio_curve(n: float, generations: list[int]) -> Optional[list[float]]:
    """((n-1)/n)^(g+1) for each generation g; None without a valid n."""
    if not isinstance(n, (int, float)) or n < 2:
        return None
    return [((n - 1) / n) ** (g + 1) for g in generations]

"""Diffusion building blocks: noise schedules, samplers, guidance.

One algorithm per file.  A sampler never owns the network: it exposes
``timesteps()`` and ``step(model_out, t, x, generator)`` and the caller
(``sample_loop``) runs the model.  Classifier-free guidance is a separate
combiner of (cond, uncond) predictions (``guidance.py``).
"""
from .base import SAMPLERS, SCHEDULES  # noqa: F401
from .guidance import cfg_combine  # noqa: F401
from .schedule import NoiseSchedule, make_schedule  # noqa: F401
from .loop import sample_loop  # noqa: F401

"""Diffusion building blocks: noise schedules, samplers, guidance.

One algorithm per file.  A sampler never owns the network: it exposes
``timesteps()`` and ``step(model_out, t, x, generator)`` and the caller
(``sample_loop``) runs the model.  Classifier-free guidance is a separate
combiner of (cond, uncond) predictions (``guidance.py``).
"""
from ..config import GeneratorConfig, SamplerConfig
from ..registry import Registry

SCHEDULES: Registry = Registry("noise schedule", section=GeneratorConfig, slot="schedule")
SAMPLERS: Registry = Registry("sampler", section=SamplerConfig, slot="name")

from .guidance import cfg_combine  # noqa: E402,F401
from .schedule import NoiseSchedule, make_schedule  # noqa: E402,F401
from .loop import sample_loop  # noqa: E402,F401

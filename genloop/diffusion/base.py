"""The registries of the diffusion building blocks: noise schedules (``generator.schedule``)
and samplers (``sampler.name``).  Each schedule and sampler module registers itself here;
the package re-exports both."""
from ..config import GeneratorConfig, SamplerConfig
from ..registry import Registry

SCHEDULES: Registry = Registry("noise schedule", section=GeneratorConfig, slot="schedule")
SAMPLERS: Registry = Registry("sampler", section=SamplerConfig, slot="name")

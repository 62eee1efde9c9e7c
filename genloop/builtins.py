"""Every built-in component, registered in one place.

Importing this module imports each built-in component module once; each registers
itself (and its options) in its family's registry in one line.  Adding a built-in
component is one new file plus one import line here; a component of your own lives
in your own module, named in ``plugins`` (YAML), ``genloop run --plugin``, or an
installed package's ``genloop.plugins`` entry point (``genloop.plugins``).

This module sits above every component and below the entry points: ``genloop.run``,
``genloop.load_config``, the CLI, every sweep worker and the tests' conftest call
``load`` (``genloop.load_builtins``) before anything resolves a configuration; no module
below imports it.  ``check_names`` (a config validator) then checks every name the
config uses before a run folder is made.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Optional

# Data sources (DATASETS) and tokenizers (TOKENIZERS).
import genloop.data.digits  # noqa: F401
import genloop.data.folder  # noqa: F401
import genloop.data.lowdim  # noqa: F401  (gaussian)
import genloop.data.mnist  # noqa: F401
import genloop.data.npz  # noqa: F401
import genloop.data.shapes  # noqa: F401
import genloop.data.text  # noqa: F401  (shakespeare, text; tokenizers word, char)
import genloop.data.zipf  # noqa: F401  (zipf-markov)
import genloop.data.categorical  # noqa: F401
import genloop.data.brackets  # noqa: F401
# Noise schedules (SCHEDULES) and samplers (SAMPLERS).
import genloop.diffusion.schedule  # noqa: F401  (linear, cosine)
import genloop.diffusion.ddpm  # noqa: F401
import genloop.diffusion.ddim  # noqa: F401
import genloop.diffusion.dpm_solver  # noqa: F401
# Networks (NETWORKS).
import genloop.models.mlp  # noqa: F401
import genloop.models.unet  # noqa: F401
import genloop.models.unet_lite  # noqa: F401
# Generators (GENERATORS).
import genloop.generators.diffusion  # noqa: F401  (ddpm)
import genloop.generators.analytic  # noqa: F401  (gaussian, gmm, kde)
import genloop.generators.ngram  # noqa: F401
import genloop.generators.gpt  # noqa: F401
import genloop.generators.hf  # noqa: F401  (hf-causal-lm; transformers imported only when used)
import genloop.generators.categorical  # noqa: F401
# Feature extractors (EXTRACTORS) and metrics (METRICS).
import genloop.metrics.features.classifier  # noqa: F401
import genloop.metrics.features.inception  # noqa: F401
import genloop.metrics.features.pixels  # noqa: F401
import genloop.metrics.classifier  # noqa: F401
import genloop.metrics.image_metrics  # noqa: F401  (fd, kid, prdc)
import genloop.metrics.lowdim  # noqa: F401  (frechet, wasserstein, variance_ratio)
import genloop.metrics.text  # noqa: F401
import genloop.metrics.categorical  # noqa: F401
import genloop.metrics.brackets  # noqa: F401
# Interaction models (INTERACTIONS).
import genloop.loop.interactions.replace  # noqa: F401
import genloop.loop.interactions.mix  # noqa: F401
import genloop.loop.interactions.accumulate  # noqa: F401
import genloop.loop.interactions.accumulate_subsample  # noqa: F401
import genloop.loop.interactions.fresh  # noqa: F401
import genloop.loop.interactions.curate  # noqa: F401
import genloop.loop.interactions.detect  # noqa: F401
import genloop.loop.interactions.ecosystem  # noqa: F401
import genloop.loop.interactions.verify  # noqa: F401
# Collapse onset (metrics.onset.tolerance; onset.csv and the summary's onset columns).
import genloop.loop.onset  # noqa: F401
# Experiment trackers (TRACKERS; each imports its package only when a run uses it).
import genloop.tracking.mlflow_tracker  # noqa: F401
import genloop.tracking.tensorboard_tracker  # noqa: F401
import genloop.tracking.wandb_tracker  # noqa: F401

from .config import Config, ConfigError
from .data import DATASETS
from .data.text import TOKENIZERS
from .diffusion import SAMPLERS, SCHEDULES
from .generators import GENERATORS
from .loading import register_name_check
from .loop.interactions import INTERACTIONS
from .metrics import METRICS
from .metrics.features import EXTRACTORS
from .models import NETWORKS
from .plugins import ENTRY_POINT_GROUP, load as load_plugins  # noqa: F401  (ENTRY_POINT_GROUP: as before)
from .registry import mark_builtins_loaded
from .tracking import TRACKERS


def load(plugins: Optional[Iterable[str]] = None) -> None:
    """Register every built-in component (done once, when this module is imported), then the
    installed ``genloop.plugins`` entry points and each module in ``plugins``
    (``genloop.plugins.load``: each once; one that cannot be imported is a ``ConfigError``
    naming it)."""
    load_plugins(plugins)


def _unknown(key: str, value: str, registry) -> ConfigError:
    return ConfigError(f"{key}: unknown {registry.kind} {value!r} (known: {', '.join(registry.names())})")


@register_name_check
def check_names(cfg: Config) -> None:
    """Every registry name in ``cfg`` must exist; the error names the key and the known names."""
    checks = [("data.name", cfg.data.name, DATASETS), ("data.tokenizer", cfg.data.tokenizer, TOKENIZERS),
              ("generator.name", cfg.generator.name, GENERATORS),
              ("generator.network", cfg.generator.network, NETWORKS), ("sampler.name", cfg.sampler.name, SAMPLERS),
              ("generator.schedule", cfg.generator.schedule, SCHEDULES),
              ("loop.interaction", cfg.loop.interaction, INTERACTIONS)]
    checks += [("metrics.names", m, METRICS) for m in cfg.metrics.names]
    checks.append(("metrics.features", cfg.metrics.features, EXTRACTORS))
    checks += [("tracking", t, TRACKERS) for t in cfg.tracking]
    if cfg.train.select_features is not None:
        checks.append(("train.select_features", cfg.train.select_features, EXTRACTORS))
    for key, value, reg in checks:
        if value not in reg:
            raise _unknown(key, value, reg)
    for name, group in cfg.loop.groups().items():  # per-lineage generator overrides (loop.ecosystem.lineages)
        for f in dataclasses.fields(group):
            if f.metadata.get("overrides") != "generator":
                continue
            for i, over in enumerate(getattr(group, f.name) or []):
                for key, reg in (("name", GENERATORS), ("network", NETWORKS), ("schedule", SCHEDULES)):
                    if key in over and over[key] not in reg:
                        raise _unknown(f"loop.{name}.{f.name}[{i}].{key}", over[key], reg)


mark_builtins_loaded()  # last: every built-in, its options and its validators are registered

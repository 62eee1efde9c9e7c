"""Train once what is the same: chains whose generation trains the same model share it.

Chains that differ only in options used at sampling time (e.g. the default job's
``generator.guidance_scale``, or ``sampler.*``) train identical models whenever their
training data are identical -- at least at generation 0, which trains on the real
data.  So do chains that differ only in their interaction model (``replace`` and
``mix``): the interaction decides what a generation trains on, never how, and at
generation 0 they all train on the same real data.  The first chain to train such a
model keeps it in ``RUN/cache/models/``; every other chain whose generation has the
same *training key* loads it instead of training,
and samples, selects and scores as usual.  The numbers are identical to training the
model in each chain (the generator's weights are saved bit for bit, with torch's global
random state after training, and sampling draws from its own seeded stream).

The training key is a hash of

* the chain's resolved config less what cannot change the fit: the generator's
  sampling-time keys (its class's ``sampling_keys``), the ``metrics`` section, ``name``,
  ``seeds``, ``store``, ``sweep``, ``plugins``, ``loop.generations`` and
  ``loop.sample_count``; at generation 0 the whole ``loop`` section (the interaction and
  its options: whatever they change reaches the fit only through the training data,
  which are part of the key).  A generator that validates while it trains (``needs``
  asks for a validation score) samples and scores then, so nothing of those is left out;
* the generator's seed (``lineage_seed(seed, generation, lineage)``), the lineage, the
  resolved device and the torch thread count;
* the training data themselves (every array of the generation's training pool).

Only generators that can load their trained state (``load_state_dict``) and name their
sampling-time keys take part; the others always train.  A model is kept only
while another chain of the run with the same config key has not finished that
generation; ``prune`` removes kept models every chain is past.  ``Experiment(...,
share_models=False)`` (``genloop run --no-share``) trains every model in its chain.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional

import torch

from ..config import Config
from ..generators import GENERATORS, needs_of
from ..chains import identity_dict
from ..generators.training import read_meta
from ..runfolder import Layout, load_weights, save_weights
from ..utils import digest

log = logging.getLogger(__name__)

# Keys that never reach a generator's fit.
NOT_TRAINING = ("name", "seeds", "store", "sweep", "plugins", "metrics", "loop.generations", "loop.sample_count")


def sampling_keys(cfg: Config) -> Optional[tuple[str, ...]]:
    """The sampling-time keys of ``cfg``'s generator (its class's ``sampling_keys``: config keys,
    dotted, a section name standing for the whole section, read only when sampling), or None
    when it cannot share a model."""
    try:
        cls = GENERATORS.get(cfg.generator.name)
    except KeyError:
        return None
    keys = getattr(cls, "sampling_keys", None)
    if keys is None or not callable(getattr(cls, "load_state_dict", None)):
        return None
    return tuple(keys)


def _drop(d: dict, key: str) -> None:
    *head, last = key.split(".")
    node = d
    for part in head:
        node = node.get(part)
        if not isinstance(node, dict):
            return
    node.pop(last, None)


def training_config(cfg: Config, generation: Optional[int] = None) -> Optional[dict]:
    """The part of ``cfg`` a generator's fit can depend on at ``generation`` (None: any
    generation; None returned: this generator does not share)."""
    keys = sampling_keys(cfg)
    if keys is None:
        return None
    d = identity_dict(cfg)  # the flat layout of earlier versions: keys stay the same
    if needs_of(cfg).validation:  # validation samples: sampler, guidance and metric features shape the fit
        dropped = tuple(k for k in NOT_TRAINING if k != "metrics")
    else:
        dropped = NOT_TRAINING + keys
    if generation == 0:  # the interaction only picks the training data, real at generation 0
        dropped = dropped + ("loop",)
    for k in dropped:
        _drop(d, k)
    return d


def config_key(cfg: Config, generation: Optional[int] = None) -> Optional[str]:
    """A hash of ``training_config(cfg, generation)``: chains with equal keys can share the
    models of that generation (``generation=0``: chains that differ only in ``loop.*`` too)."""
    d = training_config(cfg, generation)
    return None if d is None else digest(d)


def data_digest(data: Any) -> str:
    arrays = data.arrays() if hasattr(data, "arrays") else {"data": data}
    return digest(*[(name, arrays[name]) for name in sorted(arrays)])


class SharedModels:
    """The run folder's shared models (``RUN/cache/models/g<generation>_<key>.safetensors``)."""

    def __init__(self, cache_dir: Path) -> None:
        self.dir = Path(cache_dir) / Layout.SHARED_MODELS
        self.loaded = 0  # models this process loaded instead of training
        self.saved = 0

    def path(self, generation: int, key: str) -> Path:
        return self.dir / f"g{generation:04d}_{key}.safetensors"

    def fit(self, gen: Any, lcfg: Config, data: Any, generation: int, lineage: int, seed: int,
            device: torch.device, chain: str, keep: bool) -> dict:
        """``gen.fit(data)``, or the same model loaded when another chain already trained it.
        ``keep``: save the trained model for chains that have yet to run this generation."""
        base = training_config(lcfg, generation)
        if base is None:
            return gen.fit(data)
        key = digest(base, seed, generation, lineage, str(device), torch.get_num_threads(), data_digest(data))
        path = self.path(generation, key)
        if path.exists():
            try:
                tensors = load_weights(path)
                meta = read_meta(path)
                if callable(getattr(gen, "prepare", None)):  # a model built from its training data first
                    gen.prepare(data)
                gen.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
                torch.set_rng_state(tensors["rng"])
                fit = json.loads(meta["fit"])
            except Exception as exc:  # noqa: BLE001 - a damaged file: train instead
                log.warning("%s: shared model %s is unreadable (%s); training instead", chain, path.name, exc)
            else:
                self.loaded += 1
                log.info("%s generation %d: same training config and data as chain %s; using its model (%s)",
                         chain, generation, meta.get("chain", "?"), path.name)
                return fit
        fit = gen.fit(data)
        if keep:
            tensors = {f"model.{k}": v for k, v in gen.state_dict().items()}
            tensors["rng"] = torch.get_rng_state()
            save_weights(path, tensors, {"key": key, "chain": chain, "generation": generation,
                                         "fit": json.dumps(fit)})
            self.saved += 1
        return fit

    def prune(self, below: int) -> None:
        """Remove kept models of generations below ``below`` (every chain has finished them)."""
        if not self.dir.exists():
            return
        for p in self.dir.glob("g*_*.safetensors"):
            try:
                g = int(p.name[1:].split("_", 1)[0])
            except ValueError:
                continue
            if g < below:
                p.unlink(missing_ok=True)

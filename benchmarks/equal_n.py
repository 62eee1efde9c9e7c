"""Equal-N Fréchet distances on classifier features, for the benchmarks (not part of genloop).

FD is biased upwards by about 1/N, so a generation's FD is only comparable with a real
reference computed at the same sample count.  With n = the real test set's size:

    reference = mean over draws of FD(real test, n real training images drawn without replacement)
    fake      = mean over draws of FD(real test, n of the generation's samples drawn without replacement)

Both sides use the run's cached domain classifier (its features) and the same real test set.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genloop.loading import from_dict
from genloop.data import load_real
from genloop.metrics import MetricContext
from genloop.metrics.frechet import frechet_distance_features
from genloop.runfolder import RunStore


class EqualN:
    def __init__(self, run: Path, draws: int = 3) -> None:
        import yaml

        self.store = RunStore(Path(run))
        raw = yaml.safe_load(self.store.config_path.read_text())
        g = raw.get("generator", {})
        if isinstance(g.get("guidance_scale"), list):  # a grid: any one point has the same data/metrics
            raw = {**raw, "generator": {**g, "guidance_scale": g["guidance_scale"][0]}}
        raw.pop("seeds", None)
        cfg = from_dict(raw)
        self.real = load_real(cfg.data, self.store.cache_dir / "data")
        ctx = MetricContext(config=cfg, real=self.real, device=torch.device("cpu"), cache_dir=self.store.cache_dir,
                            seed=cfg.data.split_seed)
        self.clf = ctx.classifier()  # cached by the run
        self.test = self.clf.features(self.real.test.images)
        self.n = len(self.test)
        self.draws = draws
        pool = self.real.full_train if self.real.full_train is not None else self.real.train
        rng = np.random.default_rng(0)
        self.reference = float(np.mean([
            frechet_distance_features(self.test, self.clf.features(pool.images[rng.choice(len(pool), self.n, replace=False)]))
            for _ in range(draws)]))

    def fd(self, images: np.ndarray) -> float:
        rng = np.random.default_rng(1)
        m = min(self.n, len(images))
        return float(np.mean([frechet_distance_features(self.test, self.clf.features(images[rng.choice(len(images), m, replace=False)]))
                              for _ in range(self.draws)]))

    def fd_generation(self, chain: str, generation: int) -> float:
        images, _ = self.store.load_samples(chain, generation)
        return self.fd(images)

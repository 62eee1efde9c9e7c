"""Analytic generators: closed-form density estimates that fit in milliseconds,
so that chains of hundreds of generations run in seconds and can be checked
against theory (e.g. the fitted variance of a Gaussian refitted on its own
samples shrinks as ``sigma^2 ((n-1)/n)^g``).

- ``gaussian``  mean and covariance by maximum likelihood (divisor n); sample from it.
- ``gmm``       a Gaussian mixture (scikit-learn ``GaussianMixture``, EM,
                ``generator.gmm.components`` components, ``generator.gmm.covariance_type``).
- ``kde``       a Gaussian kernel density estimate with fixed bandwidth h
                (``generator.kde.bandwidth``): a sample is a uniformly drawn training
                point plus h N(0, I).

Data: float32 vectors (N, D, 1, 1) are modelled as they are; uint8 images
(N, C, H, W) are flattened and modelled in [-1, 1] (x / 127.5 - 1, the
diffusion models' scale), and samples are clipped to [-1, 1] and rounded back
to uint8.  When ``generator.conditional`` is on and the data are labelled, one
model is fitted per class and ``sample(labels, n)`` draws each sample from its
label's model (a class absent from the training set falls back to the model
of all points).

Randomness: fitting the mixture uses ``random_state`` from ``ctx.seed``;
sampling uses ``numpy.random.default_rng([ctx.seed, 1])``, so a generation's
samples depend only on its seed and its training set.  ``state_dict`` holds the
fitted parameters as float64 tensors (saved as safetensors by the runner).
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ..config import opt
from ..data import ImageSet
from ..data.vectors import as_vectors
from . import GENERATORS, GenContext, Needs

_POOLED = -1  # key of the model fitted on all points


def _small_blas(d: int):
    """One BLAS thread for the small matrices of 16 <= D <= 256 dimensions: there,
    OpenBLAS's threads cost far more than they save (a 64 x 64 eigh takes 60 ms
    instead of 0.2 ms when they compete with torch's); no change otherwise (the
    switch itself costs ~0.5 ms, more than all the work for D < 16)."""
    if 16 <= d <= 256:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(1, user_api="blas")
    return contextlib.nullcontext()


def from_space(x: np.ndarray, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """float64 (N, D) -> (N, *shape) of ``dtype`` (the inverse of ``as_vectors(images,
    signed=True)``); uint8 clipped to [-1, 1] and rounded."""
    x = x.reshape(len(x), *shape)
    if dtype == np.uint8:
        return np.rint((np.clip(x, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
    return x.astype(np.float32)


def _root(cov: np.ndarray) -> np.ndarray:
    """A matrix L with L L^T = cov for a symmetric PSD (possibly singular) cov."""
    if cov.shape == (1, 1):
        return np.sqrt(np.maximum(cov, 0.0))
    w, v = np.linalg.eigh((cov + cov.T) / 2)
    return v * np.sqrt(np.clip(w, 0.0, None))


class _Analytic:
    """Per-class bookkeeping shared by the analytic generators.  A subclass
    implements ``_fit_one(x) -> model`` and ``_sample_one(model, m, rng) -> x``."""

    def __init__(self, ctx: GenContext) -> None:
        self.ctx = ctx
        self.cfg = ctx.config.generator
        self.options = getattr(ctx, "options", None) or ctx.config.generator.options()  # its own options (GMMOptions, KDEOptions; None for gaussian)
        self.conditional = self.cfg.conditional and ctx.num_classes > 0
        self.models: dict[int, object] = {}
        self.x: Optional[np.ndarray] = None
        self.dtype = None

    @classmethod
    def needs(cls, config) -> Needs:
        """The class labels when ``generator.conditional`` is on (one model per class)."""
        return Needs(labels=config.generator.conditional)

    # ------------------------------------------------------------------ fitting
    def fit(self, train: ImageSet) -> dict:
        if len(train) == 0:
            raise ValueError(f"{self.ctx.desc}: cannot fit {self.cfg.name!r} on an empty training set")
        self.dtype = train.images.dtype
        self.x = as_vectors(train.images, signed=True)
        with _small_blas(self.x.shape[1]):
            return self._fit_all(train)

    def _fit_all(self, train: ImageSet) -> dict:
        self.models = {}
        nll, count = 0.0, 0
        if self.conditional and train.labels is not None:
            for c in np.unique(train.labels):
                xc = self.x[train.labels == c]
                self.models[int(c)] = self._fit_one(xc)
                nll += self._nll(self.models[int(c)], xc) * len(xc)
                count += len(xc)
        else:
            self.models[_POOLED] = self._fit_one(self.x)
            nll, count = self._nll(self.models[_POOLED], self.x) * len(self.x), len(self.x)
        return {"train_loss": nll / count}

    def _model(self, c: int):
        if c not in self.models:
            if _POOLED not in self.models:
                self.models[_POOLED] = self._fit_one(self.x)
            return self.models[_POOLED]
        return self.models[c]

    # ------------------------------------------------------------------ sampling
    def sample(self, labels: Optional[np.ndarray], n: int) -> ImageSet:
        if self.x is None:
            raise RuntimeError(f"{self.cfg.name}: sample() called before fit()")
        rng = np.random.default_rng([self.ctx.seed, 1])
        d = self.x.shape[1]
        out = np.empty((n, d))
        with _small_blas(d):
            if self.conditional and labels is not None:
                labels = np.asarray(labels, dtype=np.int64)
                for c in np.unique(labels):
                    idx = np.flatnonzero(labels == c)
                    out[idx] = self._sample_one(self._model(int(c)), len(idx), rng)
            else:
                out[:] = self._sample_one(self._model(_POOLED), n, rng)
        images = from_space(out, self.ctx.shape, self.dtype)
        if labels is None:
            return ImageSet(images)
        labels = np.asarray(labels, dtype=np.int64)
        k = self.ctx.num_classes or (int(labels.max()) + 1 if len(labels) else 0)
        return ImageSet(images, labels, k)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        out = {}
        for c, model in sorted(self.models.items()):
            prefix = "all." if c == _POOLED else f"class{c}."
            for k, v in self._params(model).items():
                out[prefix + k] = torch.as_tensor(np.ascontiguousarray(v))
        return out

    # ------------------------------------------------------------------ subclass API
    def _fit_one(self, x: np.ndarray):
        raise NotImplementedError

    def _sample_one(self, model, m: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _nll(self, model, x: np.ndarray) -> float:
        return float("nan")

    def _params(self, model) -> dict[str, np.ndarray]:
        raise NotImplementedError


@GENERATORS.register("gaussian")
class GaussianGenerator(_Analytic):
    """N(mean, cov) with the maximum-likelihood mean and covariance (divisor n)."""

    @classmethod
    def theory_columns(cls, config, process: str, real) -> list[str]:
        """``variance_ratio`` under ``replace`` when one Gaussian is fitted to every point
        (unconditional, or data without labels): its expectation ((n-1)/n)^(g+1) is
        ``genloop.report.theory``'s."""
        one_model = not (config.generator.conditional and real.train.labelled)
        return ["variance_ratio"] if process == "replace" and one_model else []

    def _fit_one(self, x: np.ndarray):
        mean = x.mean(0)
        xc = x - mean
        # einsum (no BLAS) for few dimensions: BLAS would start threads for a long, thin product.
        cov = (np.einsum("ni,nj->ij", xc, xc) if x.shape[1] < 16 else xc.T @ xc) / len(x)
        return mean, cov, _root(cov)

    def _sample_one(self, model, m: int, rng: np.random.Generator) -> np.ndarray:
        mean, _, root = model
        return mean + rng.standard_normal((m, len(mean))) @ root.T

    def _nll(self, model, x: np.ndarray) -> float:
        mean, cov, _ = model
        sign, logdet = np.linalg.slogdet(cov)
        if sign <= 0:
            return float("nan")  # singular covariance: the likelihood is unbounded
        d = len(mean)
        return 0.5 * (d * math.log(2 * math.pi) + logdet + d)  # the ML fit's mean NLL per point

    def _params(self, model) -> dict[str, np.ndarray]:
        mean, cov, _ = model
        return {"mean": mean, "cov": cov}

    @property
    def variance(self) -> np.ndarray:
        """Diagonal of the fitted covariance of the model of all points (or of each class, stacked)."""
        return np.stack([np.diag(m[1]) for _, m in sorted(self.models.items())])


@dataclass
class GMMOptions:
    """Options of the ``gmm`` generator (``generator.gmm.<key>``)."""

    components: int = opt(4, "gmm: mixture components (per class when conditional; capped at the number of points)", ge=1)
    covariance_type: str = opt("full", "gmm: covariance of each component (scikit-learn covariance_type)", choices=("full", "diag", "spherical", "tied"))


@GENERATORS.register("gmm", options=GMMOptions)
class GMMGenerator(_Analytic):
    """A Gaussian mixture fitted by EM (scikit-learn), sampled with numpy."""

    def _fit_one(self, x: np.ndarray):
        from sklearn.mixture import GaussianMixture

        if len(x) == 1:  # EM needs two points; one point is a point mass (plus reg_covar)
            return {"weights": np.ones(1), "means": x.copy(), "covariances": 1e-6 * np.eye(x.shape[1])[None], "gm": None}
        k = min(self.options.components, len(x))
        gm = GaussianMixture(n_components=k, covariance_type=self.options.covariance_type, reg_covar=1e-6,
                             random_state=int(self.ctx.seed % 2**32))
        gm.fit(x)
        covs = _full_covariances(gm.covariances_, gm.covariance_type, k, x.shape[1])
        return {"weights": gm.weights_, "means": gm.means_, "covariances": covs, "gm": gm,
                "roots": np.stack([_root(c) for c in covs])}

    def _sample_one(self, model, m: int, rng: np.random.Generator) -> np.ndarray:
        weights, means = model["weights"], model["means"]
        roots = model.get("roots")
        if roots is None:
            roots = np.stack([_root(c) for c in model["covariances"]])
        comp = rng.choice(len(weights), size=m, p=weights / weights.sum())
        z = rng.standard_normal((m, means.shape[1]))
        return means[comp] + np.einsum("nij,nj->ni", roots[comp], z)

    def _nll(self, model, x: np.ndarray) -> float:
        return float(-model["gm"].score(x)) if model["gm"] is not None else float("nan")

    def _params(self, model) -> dict[str, np.ndarray]:
        return {"weights": model["weights"], "means": model["means"], "covariances": model["covariances"]}


def _full_covariances(cov: np.ndarray, kind: str, k: int, d: int) -> np.ndarray:
    """scikit-learn's covariances_ of any covariance_type -> (k, d, d)."""
    if kind == "full":
        return np.asarray(cov)
    if kind == "tied":
        return np.repeat(np.asarray(cov)[None], k, axis=0)
    if kind == "diag":
        return np.stack([np.diag(c) for c in np.asarray(cov)])
    return np.stack([c * np.eye(d) for c in np.asarray(cov)])  # spherical


@dataclass
class KDEOptions:
    """Options of the ``kde`` generator (``generator.kde.<key>``)."""

    bandwidth: float = opt(0.1, "kde: kernel standard deviation h; a sample is a random training point + h N(0, I) (uint8 images: in [-1, 1] pixel units)", ge=0.0)


@GENERATORS.register("kde", options=KDEOptions)
class KDEGenerator(_Analytic):
    """Gaussian kernel density estimate with fixed bandwidth h: a sample is a
    uniformly chosen training point plus h N(0, I)."""

    def _fit_one(self, x: np.ndarray):
        return x

    def _sample_one(self, model, m: int, rng: np.random.Generator) -> np.ndarray:
        idx = rng.integers(0, len(model), size=m)
        return model[idx] + self.options.bandwidth * rng.standard_normal((m, model.shape[1]))

    def _params(self, model) -> dict[str, np.ndarray]:
        return {"points": model, "bandwidth": np.array([self.options.bandwidth])}

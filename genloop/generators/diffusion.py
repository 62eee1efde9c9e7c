"""Generator ``ddpm``: a (class-conditional) denoising diffusion model (Ho et al. 2020)
trained with epsilon prediction, sampled with DDPM or DDIM and classifier-free
guidance (Ho & Salimans 2022).

Training: x_0 ~ data, t ~ U{0..T-1}, eps ~ N(0, I), x_t = q_sample(x_0, t, eps),
loss = ||eps - eps_theta(x_t, t, y)||^2 (DDPM Eq. 14; or L1; optionally weighted per
timestep by Min-SNR-5, ``generator.ddpm.loss_weighting``), with y replaced by
the null label with probability ``generator.ddpm.label_dropout``.  Its options are
``DDPMOptions`` (``generator.ddpm.<key>``); its network is ``generator.network`` (options
``generator.<network>.<key>``) and its noise schedule ``generator.schedule``.  An EMA of the
weights (warm-up decay min(decay, (1 + s) / (10 + s))) is used for sampling.

The full training state (weights, EMA, AdamW moments, step, random generator)
is checkpointed every ``train.checkpoint_every`` steps to ``ctx.state_path``,
so a run killed inside a generation resumes there with identical numbers.

Checkpoint selection (``train.select_every`` > 0), as in the Keras DDIM example
the paper's flowers and birds code derives from: the validation images are
``ctx.validation`` (the loop passes the real test split; ``train.select_samples``
of them, a fixed subset per chain), never taken out of the generation's training
set, which keeps every image it is given (the Keras example also trains on its
whole training split and validates on a separate one).  Every ``select_every``
steps and at the end, as many images are sampled from the EMA weights
(``train.select_steps`` sampler steps, their own random stream) and scored by
``ctx.select_score`` (the validation KID); the EMA weights with the lowest
score are the ones kept for sampling.  The best weights so far are part of the
training state, so resuming keeps them.  Under ``replace`` this makes the
real test split choose among one training run's checkpoints of every
generation: a weak pull towards the real data, the price of selecting at all.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from ..config import as_kwargs, opt
from ..data import ImageSet
from ..diffusion import SAMPLERS, make_schedule, sample_loop
from ..models import build_network
from ..utils import chunks, progress_bar, to_model, to_uint8
from . import GENERATORS, GenContext, Needs, TrainingDiverged
from .training import TrainingRun, ema_update, total_steps, train_loop

log = logging.getLogger(__name__)


def autocast_dtype(device: torch.device, precision: str) -> Optional[torch.dtype]:
    """The autocast dtype of ``train.precision`` on ``device`` (None: plain fp32).  bf16 runs
    only on CUDA (on this CPU it is ~400x slower); ``auto`` takes bf16 on GPUs that support
    it.  CPU numbers are never changed."""
    from ..config import ConfigError

    if device.type != "cuda":
        if precision == "bf16":
            raise ConfigError(f"train.precision: bf16 needs a CUDA device (this run is on {device.type}, where bf16 is "
                              "~400x slower); use train.precision=auto or fp32")
        return None
    if precision == "fp32":
        return None
    supported = torch.cuda.is_bf16_supported()
    if precision == "bf16" and not supported:
        raise ConfigError("train.precision: bf16 is not supported by this GPU; use train.precision=auto or fp32")
    return torch.bfloat16 if supported else None


@dataclass
class DDPMOptions:
    """Options of the ``ddpm`` generator (``generator.ddpm.<key>``)."""

    uses = ("network", "schedule")  # it reads generator.network and generator.schedule

    label_dropout: float = opt(0.1, "probability of replacing the label by the null label in training (classifier-free guidance)", ge=0.0, le=1.0)
    guidance_scale: float = opt(1.0, "w in eps = (1 + w) eps(x,t,y) - w eps(x,t,null); 0 = plain conditional. s = 1 + w in the other convention", ge=0.0)
    timesteps: int = opt(1000, "T, number of diffusion steps in training", ge=2)
    loss: str = opt("mse", "noise-prediction loss", choices=("mse", "l1"))
    loss_weighting: str = opt("none", "per-timestep loss weight: none, or min_snr (Hang et al. 2023, Min-SNR-5: min(SNR_t, 5) / SNR_t for noise prediction)", choices=("none", "min_snr"))
    ema_decay: float = opt(0.999, "decay of the exponential moving average of weights used for sampling (0: no EMA)", ge=0.0, lt=1.0)

    def check_with(self, config) -> None:
        """Its sampler (``sampler.*``, the shared keys of the sampler section): DDIM cannot take more
        steps than the model has timesteps."""
        from ..config import ConfigError

        if config.sampler.name == "ddim" and config.sampler.steps > self.timesteps:
            raise ConfigError(f"sampler.steps: {config.sampler.steps} exceeds generator.ddpm.timesteps "
                              f"({self.timesteps}); lower sampler.steps or raise generator.ddpm.timesteps")


@GENERATORS.register("ddpm", options=DDPMOptions)
class DiffusionGenerator:
    # read only when sampling: chains that differ only in these share trained models (genloop.loop.sharing)
    sampling_keys = ("generator.guidance_scale", "sampler", "decode")

    def __init__(self, ctx: GenContext) -> None:
        self.ctx = ctx
        g = ctx.config.generator
        self.cfg = getattr(ctx, "options", None) or g.group("ddpm")
        self.conditional = g.conditional and ctx.num_classes > 0
        self.num_classes = ctx.num_classes if self.conditional else 0
        self.schedule = make_schedule(g.schedule, self.cfg.timesteps, g.options("schedule"))
        # Min-SNR-gamma (Hang et al. 2023), gamma = 5, for noise prediction: w_t = min(SNR_t, 5) / SNR_t,
        # SNR_t = abar_t / (1 - abar_t); it down-weights the easy low-noise timesteps.
        self._weights: Optional[torch.Tensor] = None
        if self.cfg.loss_weighting == "min_snr":
            snr = self.schedule.alpha_bar / (1.0 - self.schedule.alpha_bar)
            self._weights = (snr.clamp(max=5.0) / snr).float().to(ctx.device)
        torch.manual_seed(ctx.seed)  # network initialisation
        self.net = build_network(g.network, ctx.shape, self.num_classes, g.options("network")).to(ctx.device)
        self.amp = autocast_dtype(torch.device(ctx.device), ctx.config.train.precision)
        # channels-last for the U-Net's convolutions on CUDA (tensor cores); CPU unchanged
        self.memory_format = (torch.channels_last if torch.device(ctx.device).type == "cuda" and g.network == "unet"
                              else torch.contiguous_format)
        if self.memory_format is torch.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.ema = copy.deepcopy(self.net).eval().requires_grad_(False)
        self._best: Optional[dict] = None  # checkpoint selection: best EMA weights, score, step

    def _autocast(self):
        """bf16 autocast on CUDA when ``train.precision`` asks for it; a no-op otherwise."""
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.amp)

    @classmethod
    def needs(cls, config) -> Needs:
        """Class labels when ``generator.conditional``; a validation set and score when
        selecting checkpoints (``train.select_every``, on ``train.select_features``)."""
        t = config.train
        return Needs(labels=config.generator.conditional, validation=bool(t.select_every), features=t.select_features)

    # ------------------------------------------------------------------ training
    def _extra_state(self) -> dict:
        """The training state beyond the network and optimiser: the EMA and the best EMA weights so far."""
        tensors = {f"ema.{k}": v for k, v in self.ema.state_dict().items()}
        if self._best is not None:
            tensors.update({f"best.{k}": v for k, v in self._best["ema"].items()})
            tensors["best_score"] = torch.tensor(self._best["score"], dtype=torch.float64)
            tensors["best_step"] = torch.tensor(self._best["step"], dtype=torch.int64)
        return tensors

    def _load_extra(self, tensors: dict) -> None:
        self.ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        if "best_score" in tensors:
            self._best = {"ema": {k[5:]: v for k, v in tensors.items() if k.startswith("best.")},
                          "score": float(tensors["best_score"]), "step": int(tensors["best_step"])}

    def _validation_set(self) -> Optional[ImageSet]:
        """The validation images of checkpoint selection, or None when not selecting:
        ``train.select_samples`` images of ``ctx.validation`` (a fixed subset per chain seed)."""
        tcfg, val = self.ctx.config.train, self.ctx.validation
        if not tcfg.select_every:
            return None
        if self.ctx.select_score is None or val is None or len(val) < 2:
            log.warning("%s: train.select_every is set but there is no validation score or no validation set "
                        "(the real test split) here; keeping the last weights", self.ctx.desc)
            return None
        m = min(tcfg.select_samples, len(val))
        if m < len(val):
            perm = np.random.default_rng([self.ctx.config.seed, 0x5E1EC7]).permutation(len(val))
            val = val.subset(np.sort(perm[:m]))
        return val

    def _validate(self, val: ImageSet, step: int) -> float:
        """The validation score (lower is better) of the current EMA weights at ``step``."""
        tcfg = self.ctx.config.train
        gen = torch.Generator().manual_seed(self.ctx.seed * 1_000_003 + step)  # not the training stream
        labels = val.labels if self.conditional and val.labels is not None else None
        fake = self._draw(labels, len(val), gen, steps=tcfg.select_steps, bar=False)
        score = float(self.ctx.select_score(val.images, fake))
        if not math.isfinite(score):
            raise TrainingDiverged(f"{self.ctx.desc}: validation score {score} at step {step} (samples are not finite?)")
        if self._best is None or score < self._best["score"]:
            self._best = {"ema": {k: v.detach().clone() for k, v in self.ema.state_dict().items()},
                          "score": score, "step": step}
        log.debug("%s: validation KID %.5f at step %d (best %.5f at %d)", self.ctx.desc, score, step,
                  self._best["score"], self._best["step"])
        return score

    def _loss_fn(self, train: ImageSet, gen: torch.Generator):
        """``loss(step, batch_size)``: a batch of ``train`` (random flips with ``train.hflip``),
        a timestep and noise per image, labels dropped to the null label with probability
        ``generator.ddpm.label_dropout``, and the (Min-SNR weighted) noise-prediction error."""
        tcfg, g, dev = self.ctx.config.train, self.cfg, self.ctx.device
        x_all = to_model(train.images)
        y_all = torch.from_numpy(train.labels) if (self.conditional and train.labels is not None) else None
        n = len(x_all)

        def loss(step: int, bs: int) -> torch.Tensor:
            idx = torch.randint(0, n, (bs,), generator=gen)
            x0 = x_all[idx]
            if tcfg.hflip:  # random horizontal flips (natural images only)
                flip = torch.rand(bs, generator=gen) < 0.5
                x0 = torch.where(flip.view(-1, 1, 1, 1), x0.flip(-1), x0)
            x0 = x0.to(dev)
            t = torch.randint(0, self.schedule.T, (bs,), generator=gen).to(dev)
            noise = torch.randn(x0.shape, generator=gen).to(dev)
            y = None
            if y_all is not None:
                y = y_all[idx].clone()
                drop = torch.rand(bs, generator=gen) < g.label_dropout
                y[drop] = self.num_classes  # the null label
                y = y.to(dev)
            x_t = self.schedule.q_sample(x0, t, noise)
            if self.memory_format is torch.channels_last:
                x_t = x_t.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                pred = self.net(x_t, t, y)
            pred = pred.float()
            err = (pred - noise).square() if g.loss == "mse" else (pred - noise).abs()
            err = err.flatten(1).mean(1)
            if self._weights is not None:
                err = err * self._weights[t]
            return err.mean()

        return loss

    def fit(self, train: ImageSet) -> dict:
        ctx, tcfg = self.ctx, self.ctx.config.train
        gen = torch.Generator().manual_seed(ctx.seed)
        self._best = None
        val = self._validation_set()  # never taken out of ``train``: every training image is used

        def validate(done: int, run: TrainingRun) -> None:
            if val is not None and (done % tcfg.select_every == 0 or done == run.steps):
                self.net.eval()
                run.bar.set_postfix(loss=f"{run.loss:.4f}", val_kid=f"{self._validate(val, done):.4f}")
                self.net.train()

        out = train_loop(self._loss_fn(train, gen), self.net, ctx, len(train), lambda: self._fingerprint(train),
                         rng=gen, extra_state=self._extra_state, load_extra=self._load_extra,
                         after_update=self._ema_update, after_step=validate)
        out["train_images"] = len(train)
        if val is not None and self._best is not None:
            self.ema.load_state_dict(self._best["ema"])
            out.update({"ckpt_step": float(self._best["step"]), "ckpt_val_kid": self._best["score"]})
            log.info("%s: kept the EMA weights of step %d (validation KID %.5f) of %d steps", ctx.desc,
                     self._best["step"], self._best["score"], total_steps(tcfg, len(train)))
        return out

    def _fingerprint(self, train: ImageSet) -> str:
        from ..utils import digest

        return digest(train.images[:: max(len(train) // 64, 1)], len(train), self.ctx.seed,
                      self.ctx.config.generator.__dict__, self.ctx.config.train.__dict__)

    def _ema_update(self, step: int) -> None:
        ema_update(self.ema, self.net, self.cfg.ema_decay, step)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def _draw(self, labels: Optional[np.ndarray], n: int, gen: torch.Generator, steps: Optional[int] = None,
              bar: bool = True) -> np.ndarray:
        """``n`` uint8 images from the EMA weights (conditioned on ``labels`` when given),
        with the configured sampler (``steps`` overrides ``sampler.steps``)."""
        ctx = self.ctx
        scfg = ctx.config.sampler
        sampler = SAMPLERS.get(scfg.name)(self.schedule, steps=steps or scfg.steps, clip_x0=scfg.clip_x0,
                                             **as_kwargs(scfg.options()))
        out = []
        pbar = progress_bar(n, f"{ctx.desc} sample", ctx.progress and bar, unit="img", heartbeat=bar)
        for s in chunks(n, scfg.batch_size):
            m = s.stop - s.start
            y = torch.from_numpy(np.asarray(labels[s], dtype=np.int64)).to(ctx.device) if labels is not None else None
            with self._autocast():
                x = sample_loop(self.ema, sampler, (m, *ctx.shape), y, self.num_classes,
                                self.cfg.guidance_scale, gen, ctx.device)
            x = x.float()
            out.append(to_uint8(x))
            pbar.update(m)
        pbar.close()
        return np.concatenate(out) if out else np.zeros((0, *ctx.shape), np.uint8)

    def sample(self, labels: Optional[np.ndarray], n: int) -> ImageSet:
        use_labels = self.conditional and labels is not None
        gen = torch.Generator().manual_seed(self.ctx.seed + 1_000_003)
        images = self._draw(labels if use_labels else None, n, gen)
        # An unconditional model ignores requested labels: its samples carry none.
        out_labels = np.asarray(labels, dtype=np.int64) if use_labels else None
        return ImageSet(images, out_labels, self.num_classes if out_labels is not None else 0)

    def state_dict(self) -> dict:
        """The EMA weights used for sampling (from the unwrapped module)."""
        return dict(self.ema.state_dict())

    def load_state_dict(self, tensors: dict) -> None:
        self.ema.load_state_dict(tensors)
        self.net.load_state_dict(tensors)

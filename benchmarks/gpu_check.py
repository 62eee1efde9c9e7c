"""Every CUDA path of genloop, run and timed in one command, for the first minutes on a GPU.

    python benchmarks/gpu_check.py [--out gpu_check.json] [--hf-model DIR] [--mnist DIR]
    python benchmarks/gpu_check.py --dry-run          # the same parts on the CPU at tiny sizes

Parts, each in its own subprocess with its own time limit (a part that fails or runs
out of time is reported as such and the others still run; the whole check stays
within ``--budget`` seconds, 465 by default, under 8 minutes with start-up):

* ``env``: torch, CUDA, the GPU, bf16 support and the TF32 switches.
* ``a_cuda_tests``: ``pytest -m cuda`` (tests/test_cuda.py: bf16 autocast and
  channels-last against fp32 and the CPU, every sampler on the GPU, hf-causal-lm on the
  GPU, Inception features on the GPU against the CPU).
* ``b_paper_mnist``: the ``paper-mnist`` preset's generator (28x28, its U-Net, T = 400,
  batch 256, ancestral sampling, guidance w = 1) through genloop's ``DiffusionGenerator``:
  the first training steps in bf16 autocast and in fp32 from the same seed (step time,
  peak GPU memory, per-step loss difference), sampling images/s in both precisions and
  the pixel difference between their samples from the same weights, and from these rates
  an estimate of one full generation (20 epochs of 60,000 images + 60,000 samples).
  Real MNIST when ``--mnist DIR`` (or ``data/mnist``) holds the IDX files, else the
  8x8 digits resized to 28x28 (same shapes, so the same costs).
* ``c_shared_gpu_local``: ``genloop.run`` (what ``genloop run`` calls) of a small
  diffusion config, one chain alone (``--workers 1``) and four chains with
  ``--workers 4 --gpus-per-chain 0.25``: each worker's pid and visible device (a metric
  of ``gpu_check_probe``), wall time and generations/s.
* ``c_shared_gpu_ray``: the same four chains with ``--backend ray`` (skipped, saying
  so, when ray is not installed).
* ``d_hf_causal_lm``: ``hf-causal-lm`` on the local model folder ``--hf-model DIR``
  (skipped, saying so, without it): one generation's training tokens/s and decoding
  new tokens/s (beam search as Shumailov et al., and sampling).
* ``e_inception``: the FID Inception features on the GPU: images/s at two batch sizes
  and the difference to the CPU's features (skipped, saying so, without the weights
  file; genloop never downloads it).

Output: every figure in one JSON file (``--out``) and a short table on stdout.
``--dry-run`` runs every part on the CPU at tiny sizes (figures meaningless as speeds;
the tiny hf model and a randomly initialised Inception stand in for missing files).
``--fail PART`` (or ``GENLOOP_GPU_CHECK_FAIL=PART,...``; ``PART:hang`` hangs instead)
makes a part fail on purpose, to see the report of a failure; ``--limit PART=S`` sets a
part's time limit.  See docs/gpu.md.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent

# (part, time limit in seconds on a GPU, in a dry run)
PARTS = [
    ("env", 40, 60),
    ("a_cuda_tests", 75, 120),
    ("b_paper_mnist", 105, 120),
    ("c_shared_gpu_local", 85, 150),
    ("c_shared_gpu_ray", 80, 120),
    ("d_hf_causal_lm", 60, 120),
    ("e_inception", 40, 120),
]
DEFAULT_BUDGET = 465.0  # seconds for the whole check on a GPU (8 minutes less start-up)
DRY_BUDGET = 420.0  # the dry run's: generous, for CPUs shared with other jobs
FAIL_ENV = "GENLOOP_GPU_CHECK_FAIL"


class Skip(Exception):
    """A part that cannot run here (a missing file or package); the message says why."""


# --------------------------------------------------------------------------- the parent


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Run and time every CUDA path of genloop (docs/gpu.md).")
    ap.add_argument("--dry-run", action="store_true", help="every part on the CPU at tiny sizes")
    ap.add_argument("--out", default="gpu_check.json", help="the JSON file of every figure (default gpu_check.json)")
    ap.add_argument("--parts", default=None, help="comma-separated parts to run (default: all): "
                    + ", ".join(p for p, _, _ in PARTS))
    ap.add_argument("--hf-model", default=None, metavar="DIR",
                    help="a local causal-LM folder saved with save_pretrained (e.g. SmolLM2-135M) for d_hf_causal_lm")
    ap.add_argument("--mnist", default=None, metavar="DIR",
                    help="folder with the 4 MNIST IDX files for b_paper_mnist (default: data/mnist when present)")
    ap.add_argument("--budget", type=float, default=None,
                    help=f"seconds for the whole check (default {DEFAULT_BUDGET:g}; dry run {DRY_BUDGET:g})")
    ap.add_argument("--limit", action="append", default=[], metavar="PART=SECONDS", help="a part's time limit")
    ap.add_argument("--fail", action="append", default=[], metavar="PART[:hang]",
                    help=f"make a part fail (or hang) on purpose; also ${FAIL_ENV}=PART,...")
    ap.add_argument("--part", default=None, help=argparse.SUPPRESS)  # internal: run one part in this process
    ap.add_argument("--result", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def part_limits(args: argparse.Namespace) -> dict:
    limits = {p: (dry if args.dry_run else gpu) for p, gpu, dry in PARTS}
    for item in args.limit:
        name, _, sec = item.partition("=")
        if name not in limits:
            raise SystemExit(f"gpu_check: --limit {item!r}: unknown part {name!r} (parts: {', '.join(limits)})")
        try:
            limits[name] = float(sec)
        except ValueError:
            raise SystemExit(f"gpu_check: --limit {item!r}: {sec!r} is not a number of seconds") from None
    return limits


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_part(name: str, limit: float, args: argparse.Namespace, workdir: Path) -> dict:
    """Run one part in a subprocess (its own process group) with a time limit; return its result."""
    result = workdir / f"{name}.json"
    log = workdir / f"{name}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--part", name, "--result", str(result),
           "--workdir", str(workdir / name)]
    for flag, value in (("--hf-model", args.hf_model), ("--mnist", args.mnist)):
        if value:
            cmd += [flag, value]
    if args.dry_run:
        cmd.append("--dry-run")
    for f in args.fail:
        cmd += ["--fail", f]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(BENCH)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    t0 = time.perf_counter()
    timed_out = False
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=str(ROOT), env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            rc = proc.wait()
        _kill_group(proc)  # whatever the part left behind (workers, pytest children)
    seconds = time.perf_counter() - t0
    try:
        res = json.loads(result.read_text())
    except (OSError, ValueError):
        res = {"status": "failed", "figures": {}}
    tail = log.read_text(errors="replace").strip().splitlines()[-15:] if log.exists() else []
    if timed_out:
        res["status"] = "timeout"
        res["reason"] = f"stopped after its time limit of {limit:g} s (figures: what it had measured by then)"
    elif rc != 0 and res.get("status") in (None, "running", "ok"):
        res["status"] = "failed"
        res.setdefault("reason", f"exit code {rc}: " + (tail[-1] if tail else "no output"))
    if res["status"] in ("failed", "timeout"):
        res["log_tail"] = tail
    res.update({"part": name, "seconds": round(seconds, 2), "limit_s": limit, "log": str(log)})
    return res


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def summary_line(res: dict) -> str:
    keys = res.get("headline") or []
    figs = res.get("figures", {})
    parts = [f"{k} {_fmt(figs[k])}" for k in keys if k in figs]
    if res.get("reason") and res["status"] != "ok":
        parts.append(res["reason"])
    return "; ".join(parts)


def print_table(results: list, total: float, out: Path) -> None:
    print(f"{'part':20s} {'status':8s} {'seconds':>8s}  figures")
    for r in results:
        print(f"{r['part']:20s} {r['status']:8s} {r['seconds']:8.1f}  {summary_line(r)}")
    print(f"total {total:.1f} s; every figure in {out}")


def orchestrate(args: argparse.Namespace) -> int:
    limits = part_limits(args)
    names = [p for p, _, _ in PARTS]
    if args.parts:
        wanted = [p.strip() for p in args.parts.split(",") if p.strip()]
        unknown = [p for p in wanted if p not in names]
        if unknown:
            raise SystemExit(f"gpu_check: --parts: unknown part(s) {', '.join(unknown)} (parts: {', '.join(names)})")
        names = [p for p in names if p in wanted]
    env_fail = [x.strip() for x in os.environ.get(FAIL_ENV, "").split(",") if x.strip()]
    args.fail = list(args.fail) + env_fail
    budget = args.budget if args.budget is not None else (DRY_BUDGET if args.dry_run else DEFAULT_BUDGET)
    out = Path(args.out)
    t_start = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        workdir = Path(tmp)
        for name in names:
            left = budget - (time.perf_counter() - t_start)
            if left < 5:
                results.append({"part": name, "status": "not_run", "seconds": 0.0, "limit_s": 0.0, "figures": {},
                                "reason": f"the check's budget of {budget:g} s was used up"})
                continue
            limit = min(limits[name], left)
            print(f"gpu_check: {name} (limit {limit:.0f} s) ...", flush=True)
            res = run_part(name, limit, args, workdir)
            # keep the log's tail only; the temporary folder goes away
            res.pop("log", None)
            results.append(res)
            print(f"gpu_check: {name}: {res['status']} in {res['seconds']:.1f} s", flush=True)
    total = time.perf_counter() - t_start
    report = {"dry_run": bool(args.dry_run), "command": " ".join([Path(sys.executable).name] + sys.argv),
              "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - total)),
              "total_seconds": round(total, 2), "budget_s": budget,
              "parts": {r["part"]: r for r in results}}
    tmp_out = out.with_name(out.name + ".tmp")
    tmp_out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out.write_text(json.dumps(report, indent=2, default=str))
    os.replace(tmp_out, out)
    print_table(results, total, out)
    bad = [r["part"] for r in results if r["status"] not in ("ok", "skipped")]
    return 1 if bad else 0


# --------------------------------------------------------------------------- one part (in its subprocess)


class Recorder:
    """The part's result file, rewritten after every figure (so a part stopped at its time limit
    still reports what it measured)."""

    def __init__(self, path: Path, headline: list) -> None:
        self.path, self.data = path, {"status": "running", "figures": {}, "headline": headline}
        self.flush()

    def __setitem__(self, key: str, value: Any) -> None:
        self.data["figures"][key] = value
        self.flush()

    def update(self, **kw: Any) -> None:
        self.data["figures"].update(kw)
        self.flush()

    def finish(self, status: str, reason: Optional[str] = None) -> None:
        self.data["status"] = status
        if reason:
            self.data["reason"] = reason
        self.flush()

    def flush(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        os.replace(tmp, self.path)


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _device(dry: bool):
    import torch

    if dry:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("torch sees no CUDA device (torch.cuda.is_available() is False); "
                           "run with --dry-run on a machine without a GPU")
    return torch.device("cuda")


def _peak_mb(reset: bool = False) -> float:
    import torch

    if not torch.cuda.is_available():
        return 0.0
    if reset:
        torch.cuda.reset_peak_memory_stats()
        return 0.0
    return round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)


def part_env(rec: Recorder, args: argparse.Namespace) -> None:
    import torch

    rec.update(python=platform.python_version(), torch=torch.__version__, torch_cuda=torch.version.cuda,
               cuda_available=torch.cuda.is_available(), cpu_count=os.cpu_count(), host=platform.node(),
               cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)"))
    from importlib import metadata

    for mod in ("transformers", "tokenizers", "ray"):
        try:
            rec[mod] = metadata.version(mod)
        except metadata.PackageNotFoundError:
            rec[mod] = "not installed"
    if not torch.cuda.is_available():
        if not args.dry_run:
            raise RuntimeError("torch sees no CUDA device (torch.cuda.is_available() is False)")
        return
    t = time.perf_counter()
    torch.zeros(1, device="cuda")
    _sync()
    rec["cuda_init_s"] = round(time.perf_counter() - t, 3)
    props = torch.cuda.get_device_properties(0)
    rec.update(gpu_count=torch.cuda.device_count(), gpu=props.name, gpu_memory_gib=round(props.total_memory / 2 ** 30, 1),
               compute_capability=f"{props.major}.{props.minor}", multiprocessors=props.multi_processor_count,
               bf16_supported=torch.cuda.is_bf16_supported(), cudnn=torch.backends.cudnn.version(),
               tf32_matmul=torch.backends.cuda.matmul.allow_tf32, tf32_cudnn=torch.backends.cudnn.allow_tf32,
               cudnn_benchmark=torch.backends.cudnn.benchmark)


def part_cuda_tests(rec: Recorder, args: argparse.Namespace) -> None:
    import xml.etree.ElementTree as ET

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    junit = work / "junit.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", f"--junitxml={junit}",
           "tests/test_cuda.py"]
    rec["command"] = " ".join(["python"] + cmd[1:-2] + cmd[-1:])
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=str(ROOT), capture_output=True, text=True)
    rec["pytest_seconds"] = round(time.perf_counter() - t, 2)
    tests, failures = [], []
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            outcome = "passed"
            for tag in ("failure", "error", "skipped"):
                el = case.find(tag)
                if el is not None:
                    outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                    if tag != "skipped":
                        msg = (el.get("message") or el.text or "").strip().splitlines()
                        failures.append({"test": case.get("name"), "message": msg[0][:300] if msg else ""})
                    else:
                        skip_reason = (el.get("message") or "").strip()
                    break
            tests.append({"test": case.get("name"), "outcome": outcome, "seconds": round(float(case.get("time", 0)), 2)})
    counts = {k: sum(1 for x in tests if x["outcome"] == k) for k in ("passed", "failed", "error", "skipped")}
    rec.update(**counts, tests=tests, failures=failures, pytest_exit_code=proc.returncode)
    if not tests:
        raise RuntimeError("pytest collected no cuda test: " + (proc.stdout + proc.stderr).strip().splitlines()[-1:][0]
                           if (proc.stdout + proc.stderr).strip() else "pytest collected no cuda test")
    if counts["failed"] or counts["error"]:
        raise RuntimeError(f"{counts['failed']} failed, {counts['error']} errors: "
                           + "; ".join(f"{f['test']}: {f['message']}" for f in failures[:3]))
    if not args.dry_run and counts["skipped"]:
        raise RuntimeError(f"{counts['skipped']} cuda tests were skipped on a GPU machine: {skip_reason}")


@contextlib.contextmanager
def _record_steps():
    """Wrap the optimizer step of genloop's training loop (the diffusion generator's here), recording (time, loss)
    of every step (the GPU synchronised first); the generator's own code is what runs."""
    import genloop.generators.training as gt

    original = gt.optimizer_step
    records: list = []

    def step(loss, *a, **kw):
        v = original(loss, *a, **kw)
        _sync()
        records.append((time.perf_counter(), v))
        return v

    gt.optimizer_step = step
    try:
        yield records
    finally:
        gt.optimizer_step = original


def _step_stats(records: list, t0: float, warmup: int) -> dict:
    import numpy as np

    times = np.diff([t0] + [t for t, _ in records])
    steady = times[warmup:] if len(times) > warmup else times
    return {"first_step_ms": round(float(times[0]) * 1e3, 2) if len(times) else float("nan"),
            "step_ms_median": round(float(np.median(steady)) * 1e3, 3),
            "step_ms_mean": round(float(np.mean(steady)) * 1e3, 3)}


def part_paper_mnist(rec: Recorder, args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    import genloop.builtins  # noqa: F401
    from genloop.data import DataError, load_real
    from genloop.generators import GenContext
    from genloop.generators.diffusion import DiffusionGenerator
    from genloop.generators.training import total_steps
    from genloop.loading import from_dict, load_raw
    from genloop.reference import preset_path

    dry = args.dry_run
    dev = _device(dry)
    steps = 4 if dry else 150
    warmup = 1 if dry else 20
    n_sample = 4 if dry else 1000
    n_compare = 4 if dry else 200
    sizes = ["generator.width=8", "generator.timesteps=20", "train.batch_size=8"] if dry else []
    common = ["generator.guidance_scale=1.0", "train.epochs=null", f"train.steps={steps}", "train.checkpoint_every=0",
              f"device={dev.type}", *sizes]
    root = args.mnist or (str(ROOT / "data" / "mnist") if (ROOT / "data" / "mnist").is_dir() else None)
    real, data_note = None, ""
    if root and not dry:
        try:
            raw = load_raw(preset_path("paper-mnist"), [f"data.root={root}", *common])
            real = load_real(from_dict(raw).data)
            data_note = f"MNIST from {root}"
        except (DataError, OSError) as exc:
            data_note = f"MNIST not readable in {root} ({str(exc).splitlines()[0]}); "
    if real is None:
        raw = load_raw(preset_path("paper-mnist"), ["data.name=digits", "data.image_size=28", "data.root=null", *common])
        real = load_real(from_dict(raw).data)
        data_note += "8x8 digits resized to 28x28 (the preset's shapes and batch size)"
    base = from_dict(raw)
    g, tcfg = base.generator, base.train
    rec.update(data=data_note, train_images=len(real.train), image_shape=list(real.train.shape), network=g.network,
               width=g.width, channel_mult=list(g.channel_mult), timesteps=g.timesteps, batch_size=tcfg.batch_size,
               sampler=base.sampler.name, guidance_scale=g.guidance_scale, steps_timed=steps, warmup_steps_excluded=warmup,
               device=str(dev))
    precisions = ["fp32", "fp32"] if dry else ["bf16", "fp32"]
    if not dry and not torch.cuda.is_bf16_supported():
        raise Skip("this GPU does not support bf16 (torch.cuda.is_bf16_supported() is False)")
    names = ["bf16", "fp32"]
    gens, losses = {}, {}
    for name, precision in zip(names, precisions):
        cfg = from_dict(load_raw(raw, [f"train.precision={precision}"]))
        ctx = GenContext(config=cfg, shape=real.train.shape, num_classes=real.train.num_classes, device=dev, seed=0)
        gen = DiffusionGenerator(ctx)
        rec[f"{name}_autocast"] = str(gen.amp)
        rec[f"{name}_memory_format"] = str(gen.memory_format)
        with _record_steps() as records:
            _peak_mb(reset=True)
            _sync()
            t0 = time.perf_counter()
            info = gen.fit(real.train)
        losses[name] = np.array([v for _, v in records])
        rec.update(**{f"{name}_{k}": v for k, v in _step_stats(records, t0, warmup).items()},
                   **{f"{name}_train_peak_mb": _peak_mb(), f"{name}_train_loss": round(float(info["train_loss"]), 5)})
        gens[name] = gen
    d = np.abs(losses["bf16"] - losses["fp32"])
    rec.update(loss_abs_diff_mean=float(d.mean()), loss_abs_diff_max=float(d.max()),
               loss_rel_diff_mean=float((d / np.abs(losses["fp32"])).mean()),
               step_speedup_bf16=round(rec.data["figures"]["fp32_step_ms_median"]
                                       / rec.data["figures"]["bf16_step_ms_median"], 3))
    labels = np.arange(n_sample) % max(real.train.num_classes, 1)
    # sampling throughput in bf16 (the preset's batch), then both precisions from the same weights
    gen = gens["bf16"]
    _peak_mb(reset=True)
    gen.sample(labels[: min(8, n_sample)], min(8, n_sample))  # warm-up (cuDNN algorithm choice)
    _sync()
    t = time.perf_counter()
    gen.sample(labels, n_sample)
    _sync()
    dt = time.perf_counter() - t
    rec.update(bf16_sample_images=n_sample, bf16_sample_s=round(dt, 3), bf16_images_per_s=round(n_sample / dt, 2),
               bf16_sample_peak_mb=_peak_mb())
    gens["fp32"].load_state_dict(gen.state_dict())
    out = {}
    for name in names:
        _sync()
        t = time.perf_counter()
        out[name] = gens[name].sample(labels[:n_compare], n_compare).images.astype(np.int16)
        _sync()
        rec[f"{name}_images_per_s_at_{n_compare}"] = round(n_compare / (time.perf_counter() - t), 2)
    other = gens["bf16"]._draw(labels[:n_compare], n_compare, torch.Generator().manual_seed(12345), bar=False)
    rec.update(sample_pixel_diff_bf16_vs_fp32=round(float(np.abs(out["bf16"] - out["fp32"]).mean()), 3),
               sample_pixel_diff_independent_noise=round(float(np.abs(other.astype(np.int16) - out["bf16"]).mean()), 3))
    preset = from_dict(load_raw(preset_path("paper-mnist"), ["generator.guidance_scale=1.0"]))
    full_steps = total_steps(preset.train, 60000)
    f = rec.data["figures"]
    rec.update(full_generation_steps=full_steps, full_generation_samples=60000,
               full_generation_estimate_s=round(full_steps * f["bf16_step_ms_mean"] / 1e3
                                                + 60000 / f["bf16_images_per_s"], 1))


SMALL_DIFFUSION = ["data.name=digits", "generator.network=unet", "generator.width=32", "generator.channel_mult=[1,2]",
                   "generator.depth=1", "generator.guidance_scale=1.0", "generator.timesteps=400", "train.lr=2e-4",
                   "sampler.name=ddim", "sampler.steps=20", "train.batch_size=128", "train.checkpoint_every=0",
                   "loop.generations=2", "metrics.names=[gpu_probe]", "store.samples=none", "store.checkpoints=none"]


def _shared_gpu(rec: Recorder, args: argparse.Namespace, backend: str) -> None:
    import genloop

    dry = args.dry_run
    if dry:
        steps, samples, n_chains, gpus = 10, 50, 2, 0.0
        extra = ["device=cpu", "generator.width=8", "generator.timesteps=50", "sampler.steps=3", "loop.generations=1",
                 "train.batch_size=32"]
    else:
        steps, samples, n_chains, gpus = 600, 2000, 4, 0.25
        extra = ["device=cuda", "metrics.names=[gpu_probe,classifier,fd]", "metrics.classifier.steps=300"]
    over = [*SMALL_DIFFUSION, f"train.steps={steps}", f"loop.sample_count={samples}", *extra]
    work = Path(args.workdir)
    gens = 1 if dry else 2
    rec.update(config=over, chains=n_chains, generations_per_chain=gens, gpus_per_chain=gpus, backend=backend,
               command=f"genloop run {' '.join(over)} seeds=[{','.join(map(str, range(n_chains)))}] "
                       f"--workers {n_chains} --gpus-per-chain {gpus:g}" + (" --backend ray" if backend == "ray" else "")
                       + " --plugin gpu_check_probe")
    if backend == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise Skip("ray is not installed (pip install 'genloop[ray]')") from None
    runs = [("alone", 1, "seeds=[0]")] if backend == "local" else []
    runs.append(("shared", n_chains, f"seeds=[{','.join(map(str, range(n_chains)))}]"))
    for label, workers, seeds in runs:
        t = time.perf_counter()
        rows = genloop.run(None, work / label, [*over, seeds], force=True, report=False, workers=workers,
                           backend=backend if label == "shared" else "local", gpus_per_chain=gpus,
                           threads=None if not dry else 1, plugins=["gpu_check_probe"])
        wall = time.perf_counter() - t
        gen_s = [r["total_seconds"] for r in rows]
        per_chain = {}
        for r in rows:
            per_chain.setdefault(r["chain"], []).append(r)
        rate = sum(1.0 / (sum(x["total_seconds"] for x in rs) / len(rs)) for rs in per_chain.values())
        rec.update(**{f"{label}_wall_s": round(wall, 2), f"{label}_generations": len(rows),
                      f"{label}_generations_per_s_wall": round(len(rows) / wall, 4),
                      f"{label}_generation_s_mean": round(sum(gen_s) / len(gen_s), 3),
                      f"{label}_train_s_mean": round(sum(r["train_seconds"] for r in rows) / len(rows), 3),
                      f"{label}_sample_s_mean": round(sum(r["sample_seconds"] for r in rows) / len(rows), 3),
                      f"{label}_generations_per_s_running": round(rate, 4),
                      f"{label}_workers": [{"chain": c, **{k[6:]: rs[-1][k] for k in rs[-1] if k.startswith("probe_")}}
                                           for c, rs in sorted(per_chain.items())]})
    f = rec.data["figures"]
    workers = f["shared_workers"]
    rec.update(shared_distinct_pids=len({w["pid"] for w in workers}),
               shared_visible_devices=sorted({str(w["cuda_visible_devices"]) for w in workers}))
    if backend == "local":
        rec.update(throughput_vs_alone_wall=round(f["shared_generations_per_s_wall"] / f["alone_generations_per_s_wall"], 3),
                   throughput_vs_alone_running=round(f["shared_generations_per_s_running"]
                                                     / f["alone_generations_per_s_running"], 3))
    if not dry and any(w["device"] != "cuda" and not str(w["device"]).startswith("cuda") for w in workers):
        raise RuntimeError(f"a chain did not run on the GPU: {workers}")


def part_shared_local(rec: Recorder, args: argparse.Namespace) -> None:
    _shared_gpu(rec, args, "local")


def part_shared_ray(rec: Recorder, args: argparse.Namespace) -> None:
    _shared_gpu(rec, args, "ray")


def _tiny_hf_model(folder: Path, corpus: str) -> None:
    """A GPT-2 with random weights and a byte-level BPE tokenizer (the dry run's stand-in model)."""
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator([corpus], trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|endoftext|>",
                                                eos_token="<|endoftext|>")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=backend.get_vocab_size(), n_positions=160, n_embd=32, n_layer=2, n_head=2,
                                  bos_token_id=0, eos_token_id=0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(str(folder))
    fast.save_pretrained(str(folder))


def _corpus() -> str:
    """Real English text that is always at hand: genloop's own documentation."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return "\n\n".join(p.read_text(encoding="utf-8") for p in files if p.is_file())


def part_hf(rec: Recorder, args: argparse.Namespace) -> None:
    import numpy as np

    import genloop.builtins  # noqa: F401
    from genloop.data import load_real
    from genloop.generators import GenContext, build_generator
    from genloop.loading import from_dict, load_raw

    dry = args.dry_run
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise Skip("transformers is not installed (pip install 'genloop[hf]')") from None
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    text = _corpus()
    (work / "corpus.txt").write_text(text, encoding="utf-8")
    if args.hf_model:
        folder = Path(args.hf_model).expanduser()
        if not (folder / "config.json").is_file():
            raise Skip(f"--hf-model {folder}: no config.json there (a folder saved with save_pretrained is needed)")
        model_note = str(folder)
    elif dry:
        folder = work / "tiny-gpt2"
        _tiny_hf_model(folder, text)
        model_note = "a tiny randomly initialised GPT-2 (dry run)"
    else:
        raise Skip("no --hf-model DIR given (a local causal-LM folder saved with save_pretrained, e.g. SmolLM2-135M)")
    dev = _device(dry)
    steps, batch, block, prompts = (2, 4, 16, 2) if dry else (30, 16, 64, 32)
    prompt_tokens = 8 if dry else 64
    base = [f"data.root={work / 'corpus.txt'}", "data.name=text", "data.tokenizer=pretrained",
            f"data.pretrained.path={folder}", f"data.block_size={block}", "generator.name=hf-causal-lm",
            f"generator.hf-causal-lm.model_path={folder}", f"train.steps={steps}", f"train.batch_size={batch}", "train.lr=2e-5",
            "train.warmup_steps=0", "train.checkpoint_every=0", f"decode.batch_size={prompts}",
            f"decode.prompt_tokens={prompt_tokens}", "decode.keep_prompt=false", f"device={dev.type}"]
    rec.update(model=model_note, device=str(dev), block_size=block, batch_size=batch, steps_timed=steps, prompts=prompts,
               prompt_tokens=prompt_tokens, corpus_characters=len(text))
    cfg = from_dict(load_raw(None, base))
    real = load_real(cfg.data)
    rec["train_blocks"] = len(real.train)
    ctx = GenContext(config=cfg, shape=real.train.shape, num_classes=0, device=dev, seed=0, real_train=real.train)
    gen = build_generator(ctx)
    t = time.perf_counter()
    gen._load(real.train)
    rec["load_s"] = round(time.perf_counter() - t, 2)
    rec["parameters_m"] = round(sum(p.numel() for p in gen.model.parameters()) / 1e6, 2)
    gen.model = None
    _peak_mb(reset=True)
    info = gen.fit(real.train)  # loads the weights again, then trains
    _sync()
    tokens = steps * batch * block
    rec.update(train_s=round(info["train_seconds_this_run"], 3),
               train_tokens_per_s=round(tokens / info["train_seconds_this_run"], 1), train_peak_mb=_peak_mb(),
               train_loss=round(float(info["train_loss"]), 4))
    for label, extra in (("beam", ["decode.beams=5", "decode.repetition_penalty=3.0"]), ("sample", [])):
        gen.ctx = GenContext(config=from_dict(load_raw(None, base + extra)), shape=real.train.shape, num_classes=0,
                             device=dev, seed=0, real_train=real.train)
        _peak_mb(reset=True)
        _sync()
        t = time.perf_counter()
        out = gen.sample(None, prompts)
        _sync()
        dt = time.perf_counter() - t
        rec.update(**{f"{label}_s": round(dt, 3), f"{label}_new_tokens_per_s": round(prompts * block / dt, 1),
                      f"{label}_peak_mb": _peak_mb(), f"{label}_passage": out.texts(1)[0][:120]})
        assert np.asarray(out.tokens).shape == (prompts, block)


def part_inception(rec: Recorder, args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from genloop.metrics.features.inception import (FIDInceptionV3, InceptionFeatures, InceptionWeightsError,
                                                    load_inception)

    dry = args.dry_run
    dev = _device(dry)
    try:
        net, path = load_inception(None)
        rec["weights"] = str(path)
    except InceptionWeightsError as exc:
        if not dry:
            raise Skip("the FID Inception weights file is absent: " + str(exc).strip().splitlines()[0]
                       + " (set GENLOOP_INCEPTION_WEIGHTS or put it in the torch hub cache)") from None
        torch.manual_seed(0)
        net = FIDInceptionV3().eval()
        rec["weights"] = "randomly initialised (dry run: the weights file is absent)"
    rng = np.random.default_rng(0)
    n = 2 if dry else 1000
    images = rng.integers(0, 256, (n, 1, 28, 28), dtype=np.uint8)
    rec.update(device=str(dev), images=n, image_shape=[1, 28, 28], note="resized to 299x299 inside, as pytorch-fid")
    import copy

    cpu_net = copy.deepcopy(net)
    for bs in ((2,) if dry else (50, 250)):
        feats = InceptionFeatures(net, dev, batch_size=bs)
        feats(images[:bs])  # warm-up
        _peak_mb(reset=True)
        _sync()
        t = time.perf_counter()
        out = feats(images)
        _sync()
        dt = time.perf_counter() - t
        rec.update(**{f"images_per_s_batch_{bs}": round(n / dt, 1), f"peak_mb_batch_{bs}": _peak_mb()})
    if not dry:
        m = 16
        ref = InceptionFeatures(cpu_net, "cpu", batch_size=m)(images[:m])
        gpu = out[:m]
        rec.update(cpu_compare_images=m,
                   feature_rel_diff_vs_cpu=float(np.linalg.norm(gpu - ref) / np.linalg.norm(ref)),
                   feature_max_abs_diff_vs_cpu=float(np.abs(gpu - ref).max()))


PART_FUNCS: dict = {
    "env": (part_env, ["gpu", "torch", "torch_cuda", "bf16_supported"]),
    "a_cuda_tests": (part_cuda_tests, ["passed", "failed", "error", "skipped"]),
    "b_paper_mnist": (part_paper_mnist, ["bf16_step_ms_median", "fp32_step_ms_median", "bf16_train_peak_mb",
                                         "loss_rel_diff_mean", "bf16_images_per_s", "full_generation_estimate_s"]),
    "c_shared_gpu_local": (part_shared_local, ["shared_visible_devices", "shared_distinct_pids",
                                               "throughput_vs_alone_wall", "throughput_vs_alone_running"]),
    "c_shared_gpu_ray": (part_shared_ray, ["shared_visible_devices", "shared_distinct_pids",
                                           "shared_generations_per_s_wall"]),
    "d_hf_causal_lm": (part_hf, ["parameters_m", "train_tokens_per_s", "beam_new_tokens_per_s",
                                 "sample_new_tokens_per_s"]),
    "e_inception": (part_inception, ["images_per_s_batch_50", "images_per_s_batch_250", "images_per_s_batch_2",
                                     "feature_rel_diff_vs_cpu"]),
}


def child(args: argparse.Namespace) -> int:
    name = args.part
    func, headline = PART_FUNCS[name]
    rec = Recorder(Path(args.result), headline)
    fails = {f.partition(":")[0]: f.partition(":")[2] or "error" for f in args.fail}
    if name in fails:
        if fails[name] == "hang":
            rec["forced"] = "hang"
            time.sleep(10 ** 6)
        rec.finish("failed", f"forced failure (--fail {name})")
        return 1
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.dry_run:
        import torch

        torch.set_num_threads(1)
    try:
        func(rec, args)
    except Skip as exc:
        rec.finish("skipped", str(exc))
        return 0
    except Exception as exc:  # noqa: BLE001 - reported in the JSON, the other parts go on
        traceback.print_exc()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        rec.finish("failed", f"{type(exc).__name__}: {first}"[:500])
        return 1
    rec.finish("ok")
    return 0


def main(argv: Optional[list] = None) -> int:
    args = parse_args(argv)
    if args.part:
        return child(args)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())

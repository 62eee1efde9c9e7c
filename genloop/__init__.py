"""genloop: simulate the feedback loop between generative models and their training data.

Python API::

    import genloop
    rows = genloop.run(preset="theory")                     # a shipped preset, into runs/theory
    rows = genloop.run(preset="default", overrides=["loop.generations=3"], out_dir="runs/short")
    rows = genloop.run("my.yaml", out_dir="runs/x", overrides=["loop.generations=3"])
    rows = genloop.run("my.yaml", out_dir="runs/y", overrides=["seeds=[0,1,2]"], workers=2)
    rows = genloop.run("my.yaml", out_dir="runs/y", overrides=["seeds=[0,1,2,3]"])  # extends: adds seed 3
    state = genloop.status("runs/y")     # generations finished / planned, failures, ETA
    scores = genloop.evaluate(real_set, fake_set, features="pixels")   # image metrics outside the loop
    genloop.load_builtins()              # before using genloop.loading or a registry directly

``run`` returns the metric rows (one dict per chain and generation) and draws
the plots and report into the run folder, as ``genloop run`` does.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Optional, Union

__version__ = "0.1.0"


def load_builtins(plugins: Optional[list[str]] = None) -> None:
    """Register every built-in component, then the installed ``genloop.plugins`` entry points and
    the modules in ``plugins`` (each once).  ``run``, ``load_config``, the CLI and every sweep
    worker call it; call it yourself before the lower-level modules (``genloop.loading``, the
    registries) when you use them directly."""
    from .builtins import load

    load(plugins)


def run(config: Union[str, Path, dict, list, None] = None, out_dir: Union[str, Path, None] = None,
        overrides: Optional[list[str]] = None, *, preset: Optional[str] = None, force: bool = False, progress: bool = False,
        report: bool = True, workers: Union[int, str, None] = 1, backend: str = "local",
        address: Optional[str] = None, threads: Optional[int] = None, retries: Optional[int] = None,
        gpus_per_chain: Optional[float] = None, on_generation: Optional[Callable[[dict], None]] = None,
        on_reference: Optional[Callable[[list], None]] = None, on_start: Optional[Callable[[Any, list], None]] = None,
        return_rows: bool = True, plugins: Optional[list[str]] = None) -> Optional[list[dict]]:
    """Run an experiment (a YAML path, a raw dict of keys, a ``Config``, a list of
    those merged in order, or None for the default preset) into ``out_dir``; return
    the metric rows (None with ``return_rows=False``: a big sweep's caller then holds none).

    ``preset``: a shipped preset by name (``genloop presets`` lists them), as ``genloop run
    -p NAME``; ``config``, when given too, is merged over it, then the ``key=value``
    ``overrides``.  ``out_dir`` defaults to ``runs/<preset or config file name>``, as the CLI's.

    This is the one entry every run takes: ``genloop run`` calls it, and so do the
    tests and benchmarks.  The sweep options are the CLI's: ``workers`` (chains at
    once in worker processes; 1 = one after the other in this process; ``"auto"`` =
    as many as fit the cores), ``backend="ray"`` with an optional cluster ``address``,
    ``threads`` (torch threads per chain; default cores // workers), ``retries``
    (attempts after a chain dies, each resuming), ``gpus_per_chain`` (default:
    ``sweep.gpus_per_chain``, else 1 per chain when CUDA devices exist and the
    device is not cpu, else 0).  With workers, call it under
    ``if __name__ == "__main__":`` in scripts (workers are spawned).
    ``on_generation(row)`` sees every finished generation's row,
    ``on_reference(rows)`` the reference rows once the folder is prepared, and
    ``on_start(experiment, changed)`` the ``Experiment`` and the keys in which the
    config extends the folder's, before any work (a folder made with another
    config is refused before it, unless ``force``).  ``report``: draw the plots and
    the HTML report into the folder at the end.  ``plugins``: modules to import before the
    config is checked (added to its ``plugins`` key; see docs/adding-a-component.md)."""
    from .loop import Experiment

    load_builtins()
    if out_dir is None:
        out_dir = Path("runs") / _run_name(config, preset)
    raw = _raw_config(config, preset, overrides, plugins)

    def reference_ready(refs: list) -> None:  # the folder is prepared and the real data loaded
        _write_real_passages(exp)
        if on_reference is not None:
            on_reference(refs)

    exp = Experiment(raw, out_dir, force=force, progress=progress, on_generation=on_generation,
                     on_reference=reference_ready)
    exp.folder_change()  # refuses a folder genloop did not make, or made with another config, before any write
    existed = Path(out_dir).exists()
    try:
        return _run_locked(exp, Path(out_dir), on_start, report, workers=workers, backend=backend, address=address,
                           retries=retries, threads=threads, gpus_per_chain=gpus_per_chain, return_rows=return_rows)
    except BaseException:
        if not existed:  # a start that failed before writing anything leaves no folder
            with contextlib.suppress(OSError):
                Path(out_dir).rmdir()
        raise


def _raw_config(config: Any, preset: Optional[str], overrides: Optional[list[str]],
                plugins: Optional[list[str]]) -> dict:
    """``run``'s sources merged into one raw config: the preset, then ``config`` (a ``Config``
    is turned back into its keys), then the overrides."""
    from .config import Config
    from .loading import load_raw, to_dict
    from .reference import config_sources

    if isinstance(config, Config):
        config = to_dict(config)
    elif isinstance(config, (list, tuple)):
        config = [to_dict(c) if isinstance(c, Config) else c for c in config]
    return load_raw(config_sources(config, preset), overrides, plugins=plugins)


def _run_locked(exp: Any, out_dir: Path, on_start: Optional[Callable[[Any, list], None]], report: bool,
                retries: Optional[int], **options: Any) -> Optional[list[dict]]:
    """``run``'s work under the run folder's lock: tell ``on_start`` how the config extends the
    folder's, run the chains (``sweep.run_sweep`` with ``options``) under the config's
    experiment trackers, then draw the plots and the report (``report``), or only the plots
    that the trackers log."""
    from .sweep import DEFAULT_RETRIES, run_sweep
    from .tracking import tracked

    with exp.store.lock():  # a second writer stops here, before anything is said or written
        changed = exp.folder_change()
        if on_start is not None:
            on_start(exp, changed)
        with tracked(exp) as tracking:  # the experiment trackers of the config key `tracking` (none: a no-op)
            rows = run_sweep(exp, retries=DEFAULT_RETRIES if retries is None else retries, **options)
            if report:
                from .report import draw

                draw(out_dir)
            elif tracking is not None:  # the trackers log the plots
                from .report.plots import plot_run

                plot_run(out_dir, formats=("png",))
    return rows


def status(run_dir: Union[str, Path]) -> dict:
    """How far a run folder has got (what ``genloop status --json`` prints): per chain the
    generations finished / planned, state, last metric row, failure and seconds per
    generation; the writer holding the folder's lock; totals and an ETA.  Needs no lock."""
    from .runfolder.status import run_status

    return run_status(run_dir)


def load_config(config: Union[str, Path, dict, list, None] = None, overrides: Optional[list[str]] = None, *,
                preset: Optional[str] = None):
    """Resolved chains of a config: a list of ``Chain`` (``.id``, ``.config``: the ``Config``, ``.varied``: its settings).

    The sources are ``run``'s: ``preset`` (a shipped preset by name), then ``config`` (a YAML
    path, a dict, or a list of those) merged over it, then the overrides; the ``default``
    preset when neither is given (``genloop config [-p NAME] [key=value ...]``)."""
    from .chains import expand
    from .loading import load_raw
    from .reference import config_sources

    load_builtins()
    return expand(load_raw(config_sources(config, preset), overrides))


def evaluate(real: Any, fake: Any, features: str = "inception", **options: Any) -> dict:
    """Image-quality metrics of the image set ``fake`` against ``real`` outside the loop, as
    ``genloop eval``: ``{name: value}`` for fd, kid and prdc.  ``options`` are those of
    ``genloop.metrics.evaluate.evaluate`` (``k``, ``metrics``, ``device``, ``cache_dir`` ...),
    which this calls once the built-ins are loaded."""
    load_builtins()
    from .metrics.evaluate import evaluate as evaluate_sets

    return evaluate_sets(real, fake, features, **options)


REAL_PASSAGES = 3  # real text passages per chain the report shows beside each generation's


def _write_real_passages(exp: Any) -> None:
    """For text data: the first decoded blocks of each chain's real training text, in
    ``RUN/real_passages.json`` (chain id -> passages), which the report shows beside every
    generation's passages.  Uses the real data ``prepare`` has just loaded."""
    from .runfolder import write_json

    out = {}
    for ch in exp.chains:
        real = exp.real_for(ch.config)
        if not callable(getattr(real.train, "texts", None)):  # not text (images, vectors)
            return
        out[ch.id] = real.train.texts(REAL_PASSAGES)
    if out:
        write_json(exp.store.real_passages_path, out)


def _run_name(config: Any, preset: Optional[str]) -> str:
    """The default run folder's name, as the CLI's: the config file's stem, else the preset's name."""
    if isinstance(config, (str, Path)):
        return Path(config).stem
    return preset if isinstance(preset, str) and preset else "default"

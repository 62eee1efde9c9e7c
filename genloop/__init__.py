"""genloop: simulate the feedback loop between generative models and their training data.

Python API::

    import genloop
    rows = genloop.run("my.yaml", out_dir="runs/x", overrides=["loop.generations=3"])

``run`` returns the metric rows (one dict per chain and generation) and draws
the plots and report into the run folder, as ``genloop run`` does.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

__version__ = "0.1.0"


def run(config: Union[str, Path, dict, None] = None, out_dir: Union[str, Path] = "runs/default",
        overrides: Optional[list[str]] = None, *, force: bool = False, progress: bool = False,
        report: bool = True) -> list[dict]:
    """Run an experiment (a YAML path, a raw dict of keys, a ``Config`` or None for
    the default preset) into ``out_dir``; return the metric rows."""
    from .config import Config, load_raw, preset_path, to_dict
    from .loop import Experiment

    if config is None:
        config = preset_path("default")
    if isinstance(config, Config):
        config = to_dict(config)
    raw = load_raw(config, overrides)
    rows = Experiment(raw, out_dir, force=force, progress=progress).run()
    if report:
        from .report import plot_run

        from .report.html import write_report

        plot_run(Path(out_dir))
        write_report(Path(out_dir))
    return rows


def load_config(config: Union[str, Path, dict, None] = None, overrides: Optional[list[str]] = None):
    """Resolved chains of a config: ``[(chain id, Config, varied settings), ...]``."""
    from .config import expand, load_raw, preset_path

    raw = load_raw(config if config is not None else preset_path("default"), overrides)
    return expand(raw)

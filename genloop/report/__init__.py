"""Pictures and reports drawn from a run folder (read through ``store``).
Only the CLI (and the notebook API) import this package."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from .plots import plot_run  # noqa: F401


def draw(run_dir: Path, classes: Optional[list[int]] = None) -> tuple[list[Path], Optional[Path]]:
    """Redraw a run folder's plots and HTML report: (the plot files, the report or None).
    ``classes``: the per-class accuracy panels (default: the paper's 1, 3 and 9 when the
    data has them, else every class, up to ten; ``plots.panel_classes``)."""
    import matplotlib

    from .html import write_report

    # Labels come from grid values and config text: drawn as written, never read as mathtext ('$').
    with matplotlib.rc_context({"text.parse_math": False}):
        plots = plot_run(Path(run_dir), classes=classes)
        return plots, write_report(Path(run_dir), classes)

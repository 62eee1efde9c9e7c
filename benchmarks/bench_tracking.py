"""Cost of the experiment trackers (run: ``python benchmarks/bench_tracking.py``).

A small image job whose generations take well under a second, so that what the
trackers add shows (digits; a Gaussian fitted to the 1,437 training images, FD on
pixels; 2 chains x 10 generations, one after the other in this process) is run
without trackers and then with each tracker alone (``tracking=[mlflow]``, ``[wandb]``,
``[tensorboard]``) and with all three, each into a fresh run folder.  Printed per run:
the wall time of ``genloop.run`` (report=False: with trackers the plots are drawn for
them, without they are not) and the seconds spent inside the trackers (starting their
runs, logging each generation's metrics and grid, logging the plots, ending the runs:
``Tracking.seconds``, logged by genloop.tracking at INFO).  The trackers' packages are
imported once, in a warm-up run that is not timed.

Command and output: see docs/tracking.md.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import genloop

TINY = ["generator.name=gaussian", "generator.guidance_scale=1.0", "metrics.names=[fd]", "metrics.features=pixels",
        "metrics.min_samples_warning=0", "device=cpu", "loop.generations=10", "seeds=[0,1]"]
SETS = [[], ["mlflow"], ["wandb"], ["tensorboard"], ["mlflow", "wandb", "tensorboard"]]


class Seconds(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def main() -> None:
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; cores: {os.cpu_count()}")
    handler = Seconds()
    logger = logging.getLogger("genloop.tracking")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        genloop.run(None, root / "warm", TINY + ["loop.generations=1", "seeds=[0]",
                                                 "tracking=[mlflow,wandb,tensorboard]"], report=False)
        for names in SETS:
            handler.lines.clear()
            t0 = time.perf_counter()
            genloop.run(None, root / ("-".join(names) or "none"), TINY + [f"tracking=[{','.join(names)}]"],
                        report=False)
            wall = time.perf_counter() - t0
            inside = {m.group(1): (int(m.group(2)), float(m.group(3))) for m in
                      (re.match(r"tracker (\w+) logged (\d+) generation\(s\) in ([\d.]+)s", s)
                       for s in handler.lines) if m}
            parts = ", ".join(f"{n} {s:.2f} s for {g} generations ({1000 * s / max(g, 1):.0f} ms each)"
                              for n, (g, s) in inside.items())
            print(f"tracking=[{','.join(names)}]: {wall:6.1f} s wall" + (f"; inside the trackers: {parts}" if parts else ""),
                  flush=True)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    sys.exit(main())

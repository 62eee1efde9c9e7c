"""Weights & Biases: one W&B run per chain (``tracking: [wandb]``, ``pip install 'genloop[wandb]'``).

Mode: ``WANDB_MODE`` when it is set, else ``offline``: nothing leaves the machine; the
runs are written to ``RUN/tracking/wandb/offline-run-*`` and ``wandb sync`` uploads
them later (``WANDB_MODE=online`` logs live, after ``wandb login``).  Project:
``WANDB_PROJECT`` when set, else ``genloop`` (``WANDB_ENTITY`` is read by W&B itself);
group: the run folder's name, so a sweep's chains sit together; run name
``<run folder>/<chain>``.  Config: the resolved config (``section.key``); history: each
numeric column of a generation's row at ``step = generation``, with the sample grid as
the image ``samples/grid`` (text data: a table ``samples/passages``); the run folder's
plots as images ``plots/<name>`` at the last generation's step.

Resume: the run id is kept in ``RUN/tracking/state.json``; a resumed run calls
``wandb.init(id=..., resume="allow")``, which in offline mode writes one more
``offline-run-*`` folder with the same id; it holds only the generations not logged
before (``wandb sync`` of both folders gives one run)."""
from __future__ import annotations

import json
import os
import secrets

from ..runfolder import Layout
from . import TRACKERS, Tracker, import_package


@TRACKERS.register("wandb")
class WandbTracker(Tracker):
    state_every_step = True  # an offline run cannot tell what an earlier session logged
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        wandb = self.wandb = import_package("wandb", "wandb")
        run_id = self.state.get("run_id") or secrets.token_hex(4)
        folder = self.root.resolve().name
        directory = Layout(self.root).tracking_dir
        directory.mkdir(parents=True, exist_ok=True)
        settings = wandb.Settings(silent=True, console="off", x_disable_stats=True, disable_git=True,
                                  save_code=False)
        self.run = wandb.init(mode=os.environ.get("WANDB_MODE") or "offline", dir=str(directory),
                              project=os.environ.get("WANDB_PROJECT") or "genloop", group=folder,
                              name=f"{folder}/{self.chain}", id=run_id, resume="allow", config=self.params,
                              tags=None, notes=self.tags["genloop.run_folder"], reinit="create_new",
                              settings=settings)
        self.state["run_id"] = run_id

    def log_generation(self, step: int, metrics: dict, files: list) -> None:
        data: dict = dict(metrics)
        for f in files:
            if f.suffix == ".png":
                data[f"samples/{f.stem}"] = self.wandb.Image(str(f))
            elif f.suffix == ".json":
                data[f"samples/{f.stem}"] = self.wandb.Table(columns=["passage"],
                                                             data=[[p] for p in json.loads(f.read_text())])
        self.run.log(data, step=step)

    def log_plots(self, step: int, plots: list) -> None:
        self.run.log({f"plots/{p.stem}": self.wandb.Image(str(p)) for p in plots}, step=step)

    def close(self, status: str) -> None:
        self.run.finish(exit_code=0 if status == "finished" else 1)

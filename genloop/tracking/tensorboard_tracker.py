"""TensorBoard: event files per chain (``tracking: [tensorboard]``, ``pip install 'genloop[tensorboard]'``).

Where: ``RUN/tracking/tensorboard/<chain>`` (``tensorboard --logdir RUN/tracking/tensorboard``
shows every chain of the run side by side).  Written with ``torch.utils.tensorboard``
(it needs the tensorboard package).  The resolved config is the text ``config`` and an
HParams entry (written when the chain's log starts); each numeric column of a
generation's row is a scalar at ``step = generation``; the generation's sample grid is
the image ``samples/grid`` (text data: the text ``samples/passages``); the run folder's
plots are images ``plots/<name>`` at the last generation's step.

Resume: a resumed run writes a new event file in the same folder, opened with
``purge_step`` = the first generation it logs, so anything a crash left beyond that
step is hidden and no generation shows twice."""
from __future__ import annotations

import json
from pathlib import Path

from ..runfolder import Layout
from . import TRACKERS, Tracker, import_package


def _image(path: Path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _hparam(v: object) -> object:
    return v if isinstance(v, (int, float, str, bool)) else str(v)


@TRACKERS.register("tensorboard")
class TensorBoardTracker(Tracker):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        import_package("tensorboard", "tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.dir = Layout(self.root).tracking_dir / "tensorboard" / self.chain
        new = not self.state.get("started")
        self.writer = SummaryWriter(str(self.dir), purge_step=None if new else self.first_step, flush_secs=30)
        if new:
            from torch.utils.tensorboard.summary import hparams

            lines = ["| key | value |", "| --- | --- |"] + [f"| {k} | {v} |" for k, v in self.params.items()]
            self.writer.add_text("config", "\n".join(lines), 0)
            for summary in hparams({k: _hparam(v) for k, v in self.params.items()}, {}):
                self.writer.file_writer.add_summary(summary)
            self.writer.flush()
            self.state["started"] = True

    def log_generation(self, step: int, metrics: dict, files: list) -> None:
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, step)
        for f in files:
            if f.suffix == ".png":
                self.writer.add_image(f"samples/{f.stem}", _image(f), step, dataformats="HWC")
            elif f.suffix == ".json":
                passages = json.loads(f.read_text())
                self.writer.add_text(f"samples/{f.stem}", "\n\n".join(f"    {p}".replace("\n", "\n    ")
                                                                      for p in passages), step)
        self.writer.flush()

    def log_plots(self, step: int, plots: list) -> None:
        for p in plots:
            self.writer.add_image(f"plots/{p.stem}", _image(p), step, dataformats="HWC")
        self.writer.flush()

    def close(self, status: str) -> None:
        self.writer.close()

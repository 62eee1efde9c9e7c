"""MLflow: one MLflow run per chain (``tracking: [mlflow]``, ``pip install 'genloop[mlflow]'``).

Where: ``MLFLOW_TRACKING_URI`` when it is set (a server, ``sqlite:///...``, a folder),
else a local file store in ``RUN/tracking/mlruns`` (MLflow keeps that store in
maintenance mode; genloop allows it for this process with ``MLFLOW_ALLOW_FILE_STORE``).
Experiment: ``MLFLOW_EXPERIMENT_NAME`` when set, else the config's ``name``.  Run name
``<run folder>/<chain>``; tags ``genloop.run_folder``, ``genloop.chain`` and the chain's
grid settings.  Parameters: the resolved config (``section.key``); metrics: each numeric
column of a generation's row at ``step = generation``; artifacts: ``gen_NNN/grid.png``
(or ``passages.json``) and ``plots/*.png``.

Resume: the run id is kept in ``RUN/tracking/state.json``; a resumed run reopens that
MLflow run and logs only the generations it does not hold yet (it also reads the
run's own metric history, so a crash between logging and saving the state file does
not log a generation twice)."""
from __future__ import annotations

import os
from typing import Optional

from ..runfolder import Layout
from . import TRACKERS, Tracker, import_package

BATCH = 100  # MLflow takes at most 100 params or tags per log_batch call


def _value(v: object) -> str:
    return "None" if v is None else str(v)[:6000]


@TRACKERS.register("mlflow")
class MLflowTracker(Tracker):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        mlflow = import_package("mlflow", "mlflow")
        from mlflow.entities import Param, RunTag

        uri = os.environ.get("MLFLOW_TRACKING_URI") or (Layout(self.root).tracking_dir / "mlruns").resolve().as_uri()
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = mlflow.MlflowClient(tracking_uri=uri)
        self.Metric = mlflow.entities.Metric
        run = None
        if self.state.get("run_id"):
            try:
                run = self.client.get_run(self.state["run_id"])
            except Exception:  # noqa: BLE001 - deleted, or another store: start a new run
                run = None
        if run is not None:
            self.run_id = run.info.run_id
            if run.info.status != "RUNNING":
                self.client.update_run(self.run_id, status="RUNNING")
            return
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or self.experiment
        exp = self.client.get_experiment_by_name(name)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(name)
        self.run_id = self.client.create_run(exp_id, run_name=f"{self.root.resolve().name}/{self.chain}").info.run_id
        self.state.update(run_id=self.run_id, logged=0, plots=None)
        params = [Param(k, _value(v)) for k, v in self.params.items()]
        tags = [RunTag(k, _value(v)) for k, v in self.tags.items()]
        for i in range(0, len(params), BATCH):
            self.client.log_batch(self.run_id, params=params[i:i + BATCH])
        for i in range(0, len(tags), BATCH):
            self.client.log_batch(self.run_id, tags=tags[i:i + BATCH])

    def logged_until(self) -> Optional[int]:
        """Generations the run holds: one past the last step of ``total_seconds`` (in every
        row), or of any metric when the run has no such column."""
        keys = list(self.client.get_run(self.run_id).data.metrics)
        keys = ["total_seconds"] if "total_seconds" in keys else keys
        steps = [m.step for k in keys for m in self.client.get_metric_history(self.run_id, k)]
        return max(steps) + 1 if steps else 0

    def log_generation(self, step: int, metrics: dict, files: list) -> None:
        import time

        ms = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[self.Metric(k, v, ms, step) for k, v in metrics.items()])
        for f in files:
            self.client.log_artifact(self.run_id, str(f), Layout.gen_name(step))

    def log_plots(self, step: int, plots: list) -> None:
        for p in plots:
            self.client.log_artifact(self.run_id, str(p), Layout.PLOTS)

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status={"finished": "FINISHED", "killed": "KILLED"}.get(status, "FAILED"))

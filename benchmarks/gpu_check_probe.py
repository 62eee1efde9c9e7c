"""A genloop plugin for ``benchmarks/gpu_check.py``: the metric ``gpu_probe`` records, in each
generation's metrics row, where the chain ran: the process id, the host, the
``CUDA_VISIBLE_DEVICES`` the process saw, the torch device of the run, the name of the
GPU behind it and the peak GPU memory of the process so far.

    genloop run ... metrics.names=[gpu_probe] --plugin gpu_check_probe

(with ``benchmarks/`` on ``PYTHONPATH``; local workers and Ray tasks import it too).
"""
from __future__ import annotations

import os
import socket

import torch

from genloop.metrics import METRICS, MetricContext


@METRICS.register("gpu_probe")
class GPUProbe:
    def __init__(self, ctx: MetricContext) -> None:
        self.device = torch.device(ctx.device)

    def __call__(self, fake) -> dict:
        out = {"probe_pid": os.getpid(), "probe_host": socket.gethostname(),
               "probe_cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)"),
               "probe_device": str(self.device), "probe_gpu": "", "probe_gpu_index": -1, "probe_peak_mb": 0.0}
        if self.device.type == "cuda" and torch.cuda.is_available():
            idx = torch.cuda.current_device()
            out.update({"probe_gpu": torch.cuda.get_device_name(idx), "probe_gpu_index": idx,
                        "probe_peak_mb": torch.cuda.max_memory_allocated(idx) / 2 ** 20})
        return out

"""``benchmarks/gpu_check.py --dry-run``: every part runs on the CPU at tiny sizes and lands in
the JSON with its status and figures; a part made to fail (``--fail``) or to hang past its
time limit is reported as such while the others still run."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
PARTS = ["env", "a_cuda_tests", "b_paper_mnist", "c_shared_gpu_local", "c_shared_gpu_ray", "d_hf_causal_lm",
         "e_inception"]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "check.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env["GENLOOP_GPU_CHECK_FAIL"] = "env"  # forced through the environment; e_inception through --fail
    proc = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(out), "--fail", "e_inception:hang",
                           "--limit", "e_inception=4"], cwd=str(ROOT), env=env, capture_output=True, text=True,
                          timeout=300)
    return proc, json.loads(out.read_text())


def test_dry_run_reports_every_part_with_status_and_figures(dry_run):
    proc, report = dry_run
    assert report["dry_run"] is True and list(report["parts"]) == PARTS
    parts = report["parts"]
    hf = importlib.util.find_spec("transformers") is not None
    for name in ("a_cuda_tests", "b_paper_mnist", "c_shared_gpu_local") + (("d_hf_causal_lm",) if hf else ()):
        assert parts[name]["status"] == "ok", (name, parts[name].get("reason"), parts[name].get("log_tail"))
        assert parts[name]["figures"] and parts[name]["seconds"] > 0
    a = parts["a_cuda_tests"]["figures"]
    assert a["skipped"] >= 5 and a["passed"] == a["failed"] == a["error"] == 0  # no GPU here: all skipped
    b = parts["b_paper_mnist"]["figures"]
    assert b["image_shape"] == [1, 28, 28] and b["timesteps"] == 20 and b["bf16_images_per_s"] > 0
    assert b["loss_abs_diff_max"] == 0.0  # on the CPU both runs are fp32 from the same seed: identical losses
    assert b["full_generation_steps"] == 4688  # 20 epochs of 60,000 images in batches of 256
    c = parts["c_shared_gpu_local"]["figures"]
    assert c["shared_distinct_pids"] == 2 and c["shared_visible_devices"] == ["(unset)"]
    assert c["alone_generations"] == 1 and c["shared_generations"] == 2 and c["throughput_vs_alone_wall"] > 0
    ray = parts["c_shared_gpu_ray"]
    assert ray["status"] in ("ok", "skipped") and (ray["status"] == "ok" or "ray" in ray["reason"])
    if hf:
        d = parts["d_hf_causal_lm"]["figures"]
        assert d["train_tokens_per_s"] > 0 and d["beam_new_tokens_per_s"] > 0 and d["sample_new_tokens_per_s"] > 0
    else:  # without the [hf] extra the part says so and the check goes on
        assert parts["d_hf_causal_lm"]["status"] == "skipped" and "genloop[hf]" in parts["d_hf_causal_lm"]["reason"]
    # the table on stdout names every part
    for name in PARTS:
        assert name in proc.stdout


def test_forced_failure_and_timeout_are_reported_while_the_others_run(dry_run):
    proc, report = dry_run
    parts = report["parts"]
    assert parts["env"]["status"] == "failed" and "forced failure" in parts["env"]["reason"]
    assert parts["e_inception"]["status"] == "timeout" and parts["e_inception"]["seconds"] < 30
    assert parts["e_inception"]["limit_s"] == 4
    assert proc.returncode == 1  # a failed part makes the check fail
    assert "failed" in proc.stdout and "timeout" in proc.stdout
    assert parts["b_paper_mnist"]["status"] == "ok"  # ran after the forced failure of env

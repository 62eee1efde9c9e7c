"""Running: chains generation by generation, models shared across chains that differ only
in sampling options, logs without progress-bar redraws, and the report redrawn mid-run."""
import logging
import math

import pytest

from genloop import run
from genloop import cli
from genloop.loading import expand, from_dict, load_raw
from genloop.loop import TIME_COLUMNS, run_in_memory
from genloop.loop.sharing import config_key
from genloop.reference import preset_path
from genloop import utils

GAUSS = ["data.name=gaussian", "data.count=250", "generator.name=gaussian",
         "metrics.names=[frechet,wasserstein,variance_ratio]", "device=cpu", "loop.generations=3", "seeds=[0,1,2]"]

# the default job's model, tiny, scored on pixel features (no domain classifier to train)
DDPM = ["loop.generations=2", "loop.sample_count=120", "train.steps=15", "train.batch_size=64",
        "train.warmup_steps=5", "train.checkpoint_every=5", "generator.width=32", "generator.depth=1",
        "generator.timesteps=50", "sampler.steps=4", "metrics.names=[fd]", "metrics.features=pixels",
        "metrics.min_samples_warning=0", "generator.guidance_scale=[1.0,0.1,1e-10]"]


def _results(rows):
    clean = [{k: "nan" if isinstance(v, float) and math.isnan(v) else v for k, v in r.items() if k not in TIME_COLUMNS}
             for r in rows]
    return sorted(clean, key=lambda r: (r["chain"], r["generation"]))


class _Stop(Exception):
    pass


def _chain_by_chain(raw):
    """The reference: every chain to its end before the next (the order of earlier versions),
    each in memory (``run_in_memory``: every model trained in its chain)."""
    return _results([{"chain": ch.id, **ch.varied, **row} for ch in expand(raw) for row in run_in_memory(ch.config)])


def test_chains_run_generation_by_generation_with_the_same_numbers(tmp_path):
    raw = load_raw(None, GAUSS)
    reference = _chain_by_chain(raw)
    order = []
    rows = run(raw, tmp_path / "run", report=False, on_generation=lambda r: order.append((r["chain"], r["generation"])))
    ids = [c.id for c in expand(raw)]
    assert order == [(cid, g) for g in range(3) for cid in ids]  # generation 0 of every chain first
    assert _results(rows) == reference

    # stopped after 4 generations (chain 0 and 1 at generation 1, chain 2 at 0), then resumed
    # and extended to 4 generations: the chains catch up generation by generation
    seen = []

    def stop_after_4(row):
        seen.append((row["chain"], row["generation"]))
        if len(seen) == 4:
            raise _Stop

    with pytest.raises(_Stop):
        run(raw, tmp_path / "cut", report=False, on_generation=stop_after_4)
    more = load_raw(None, GAUSS + ["loop.generations=4"])
    resumed = []
    rows = run(more, tmp_path / "cut", report=False, on_generation=lambda r: resumed.append((r["chain"], r["generation"])))
    assert resumed == [(ids[1], 1), (ids[2], 1)] + [(cid, g) for g in (2, 3) for cid in ids]
    assert _results(rows) == _chain_by_chain(more)


def test_sharing_key_leaves_out_sampling_options_only():
    def key(*over):
        return config_key(from_dict(load_raw(preset_path("default"), ["generator.guidance_scale=1.0", *over])))

    base = key()
    assert base is not None
    assert key("generator.guidance_scale=0.1") == base
    assert key("sampler.steps=7", "sampler.name=ddim") == base
    assert key("metrics.names=[fd]", "loop.generations=3", "store.samples=last") == base
    for trains in ("train.steps=10", "seed=1", "generator.label_dropout=0.2", "generator.width=32", "data.limit=100"):
        assert key(trains) != base, trains
    # checkpoint selection samples with the sampler and the guidance while training: nothing is shared then
    assert key("train.select_every=100", "generator.guidance_scale=0.1") != key("train.select_every=100")
    # the interaction only picks the training data: at generation 0 (real data) it is left out
    def key0(*over):
        return config_key(from_dict(load_raw(preset_path("default"), ["generator.guidance_scale=1.0", *over])), 0)

    others = (("loop.interaction=mix",), ("loop.interaction=curate",), ("loop.interaction=mix", "loop.mix.real_fraction=0.25"))
    for other in others:
        assert key(*other) != base, other
        assert key0(*other) == key0(), other
    assert key("loop.interaction=mix", "loop.mix.real_fraction=0.25") != key("loop.interaction=mix")
    assert key0("train.steps=10") != key0()
    # generators that cannot load a trained state never share
    assert config_key(from_dict(load_raw(None, ["generator.name=gaussian"]))) is None


def test_chains_that_differ_in_guidance_share_generation_0_with_identical_numbers(tmp_path):
    raw = load_raw(preset_path("default"), DDPM)
    reference = _chain_by_chain(raw)  # every model trained in its chain

    # stopped after the first generation (its model kept for the others), then resumed
    with pytest.raises(_Stop):
        run(raw, tmp_path / "shared", report=False, on_generation=lambda r: (_ for _ in ()).throw(_Stop()))
    models = list((tmp_path / "shared" / "cache" / "models").glob("g0000_*.safetensors"))
    assert len(models) == 1
    started = []
    rows = run(raw, tmp_path / "shared", report=False, on_start=lambda exp, changed: started.append(exp))
    exp = started[0]
    assert exp.shared.loaded == 2  # generation 0 of the other two chains: loaded, not trained
    assert _results(rows) == reference
    by = {(r["chain"], r["generation"]): r for r in rows}
    ids = [c.id for c in exp.chains]
    assert by[(ids[1], 0)]["train_seconds"] < by[(ids[0], 0)]["train_seconds"]
    # later generations train on different samples: each chain trains its own; nothing is left behind
    assert not list((tmp_path / "shared" / "cache" / "models").glob("*.safetensors"))


def test_redirected_run_logs_lines_not_redraws_and_the_report_exists_mid_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(utils, "HEARTBEAT_SECONDS", 0.0)  # a heartbeat at every training or sampling step
    seen = []
    original = cli.LiveReport.generation

    def generation(self):
        original(self)
        html = tmp_path / "run" / "report.html"
        seen.append(html.exists() and "1 of 4 generations finished" in html.read_text())

    monkeypatch.setattr(cli.LiveReport, "generation", generation)
    out = tmp_path / "run"
    over = [o for o in DDPM if not o.startswith("generator.guidance_scale")] + ["generator.guidance_scale=[1.0,0.1]",
                                                                                 "train.steps=4"]
    assert cli.main(["run", "-o", str(out), *over]) == 0  # capsys: stdout and stderr are not terminals
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "\r" not in text  # no progress-bar redraws
    lines = text.splitlines()
    assert sum(" | gen " in line for line in lines) == 4
    assert any(line.startswith("genloop: report ") for line in lines[:3])  # the path, at the start
    beats = [line for line in lines if line.startswith("genloop: c0") and (" train: " in line or " sample: " in line)]
    assert beats and any("step" in b for b in beats) and any("img" in b for b in beats)
    assert len(text) < 20_000
    assert seen[0]  # the report exists after the first finished generation, and shows it
    assert "4 of 4 generations finished" in (out / "report.html").read_text()
    gens = [int(line.split(" | gen ")[1].split("|")[0]) for line in lines if " | gen " in line]
    assert gens == [0, 0, 1, 1]  # generation by generation


def test_heartbeat_is_at_most_one_a_minute(monkeypatch, caplog):
    now = [1000.0]
    monkeypatch.setattr(utils.time, "monotonic", lambda: now[0])
    utils.mark_activity()
    bar = utils.progress_bar(100, "c00 gen 0 train", False, unit="step")
    with caplog.at_level(logging.INFO, logger="genloop.heartbeat"):
        for _ in range(100):
            now[0] += 1.5  # 150 s of training
            bar.update(1)
        bar.set_postfix(loss="0.1")
    beats = [r.getMessage() for r in caplog.records if r.name == "genloop.heartbeat"]
    assert len(beats) == 2 and beats[0].startswith("c00 gen 0 train: 40/100 step")
    quiet = utils.progress_bar(10, "x", False, heartbeat=False)
    now[0] += 100
    with caplog.at_level(logging.INFO, logger="genloop.heartbeat"):
        quiet.update(1)
    assert len([r for r in caplog.records if r.name == "genloop.heartbeat"]) == 2


@pytest.mark.browser
def test_the_report_drawn_mid_run_renders_in_a_headless_browser(tmp_path, capsys, monkeypatch):
    """The live report, as it stands after the first finished generation of a two-chain run,
    opens in a headless Chromium with every picture decoded and the finished generation shown."""
    import json
    import re
    import shutil
    import subprocess

    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                   None)
    if browser is None:
        pytest.skip("no chromium (apt-get install chromium)")
    out = tmp_path / "run"
    snapshots = []
    original = cli.LiveReport.generation

    def generation(self):
        original(self)
        html = out / "report.html"
        if not snapshots and html.exists():
            snapshots.append(html.read_text())

    monkeypatch.setattr(cli.LiveReport, "generation", generation)
    over = [o for o in DDPM if not o.startswith("generator.guidance_scale")] + ["generator.guidance_scale=[1.0,0.1]",
                                                                                 "train.steps=4"]
    assert cli.main(["run", "-o", str(out), *over]) == 0
    capsys.readouterr()
    mid = snapshots[0]
    assert "1 of 4 generations finished" in mid
    probe = """<script>
function record() {
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(Array.from(document.images).map(i => [i.naturalWidth, i.naturalHeight, i.complete]));
  document.body.appendChild(pre);
}
if (document.readyState === "complete") record(); else window.addEventListener("load", record);
</script>"""
    page = tmp_path / "mid.html"
    page.write_text(mid.replace("</body>", probe + "</body>"))
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000", "--dump-dom", page.as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    m = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert m, dom.stderr[-2000:]
    sizes = json.loads(m.group(1))
    assert len(sizes) >= 1 and all(w > 0 and h > 0 and done for w, h, done in sizes), sizes
    assert "1 of 4 generations finished" in dom.stdout

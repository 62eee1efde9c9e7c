"""The worked examples of docs/adding-a-component.md run as written: each block is saved as
its own module (outside the package, as a plugin) and one run uses all four."""
import csv
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "adding-a-component.md"

# file named in the doc -> the package its relative imports resolve in
EXAMPLES = {
    "genloop/generators/jitter.py": "genloop.generators",
    "genloop/metrics/brightness.py": "genloop.metrics",
    "genloop/data/stripes.py": "genloop.data",
    "genloop/loop/interactions/halfmix.py": "genloop.loop.interactions",
}


def _absolute(code: str, package: str) -> str:
    """``from ..x import`` in ``package`` -> ``from genloop.x import`` (a plugin lives outside genloop)."""
    def repl(m):
        dots, rest = m.group(1), m.group(2)
        base = package.split(".")[: len(package.split(".")) - (len(dots) - 1)]
        return "from " + ".".join(base + ([rest] if rest else [])) + " import"
    return re.sub(r"^from (\.+)([\w.]*) import", repl, code, flags=re.M)


def _example(doc: str, path: str) -> str:
    """The first python block after the paragraph that names ``path``."""
    start = doc.index(f"`{path}`")
    block = re.search(r"```python\n(.*?)```", doc[start:], re.S)
    code = block.group(1)
    assert len(code.splitlines()) <= 40, f"{path}: the example is longer than ~40 lines"
    return code


def test_the_worked_examples_register_and_run_together(tmp_path):
    doc = DOC.read_text()
    mods = []
    for path, package in EXAMPLES.items():
        name = "doc_" + Path(path).stem
        (tmp_path / f"{name}.py").write_text(_absolute(_example(doc, path), package))
        mods.append(name)
        assert f"import {path[:-3].replace('/', '.')}  # noqa: F401" in doc  # its one import line is shown
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(REPO), env.get("PYTHONPATH", "")])
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "genloop.cli", "run", "--no-progress", "-o", str(out),
                          *[a for m in mods for a in ("--plugin", m)],
                          "data.name=stripes", "data.count=60", "data.image_size=8", "data.stripes.period=4",
                          "generator.name=jitter", "generator.jitter.scale=0.2", "generator.ddpm.guidance_scale=1", "loop.interaction=halfmix",
                          "loop.halfmix.real=0.5", "loop.generations=3", "metrics.names=[brightness]", "metrics.brightness.scale=1"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["generation"] for r in rows] == ["0", "1", "2"]
    assert all(abs(float(r["brightness_gap"])) < 40 for r in rows)

"""The documentation site: the configuration reference page is the one the code generates,
and `mkdocs build --strict` passes (every page in the nav exists, every link and anchor
resolves, no page is left out of the nav)."""
import subprocess
import sys
from pathlib import Path

import pytest

from genloop.reference import reference, reference_page

REPO = Path(__file__).resolve().parent.parent


def test_reference_page_is_the_generated_one():
    page = (REPO / "docs" / "reference.md").read_text()
    assert reference() in page  # every key's row
    assert page == reference_page(), "docs/reference.md is stale: run python docs/gen_reference.py"


def test_gen_reference_check_detects_a_stale_page(tmp_path):
    script = (REPO / "docs" / "gen_reference.py").read_text()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "gen_reference.py").write_text(script)
    (docs / "reference.md").write_text("# stale\n")
    env_path = str(REPO)
    run = lambda *a: subprocess.run([sys.executable, str(docs / "gen_reference.py"), *a], capture_output=True,  # noqa: E731
                                    text=True, env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}, timeout=120)
    assert run("--check").returncode == 1
    assert run().returncode == 0 and (docs / "reference.md").read_text() == reference_page()
    assert run("--check").returncode == 0


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install 'genloop[docs]')")
    try:
        import material  # noqa: F401
    except ImportError:
        pytest.skip("mkdocs-material is not installed (pip install 'genloop[docs]')")
    site = tmp_path / "site"
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"),
                          "-d", str(site)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert res.returncode == 0, res.stderr[-4000:]
    for page in ("index.html", "results/index.html", "reference/index.html", "loop/index.html"):
        assert (site / page).is_file(), page
    assert "mnist-small-3seeds.png" in (site / "results" / "index.html").read_text()


# Words about how the project was developed, not about the tool or its results.
DEVELOPMENT_TALK = r"issue [0-9]+|targets? (was |were |is )?(not )?met|no GPU was lent|this session|when it was written"
NOT_YET_CHECKED: set = set()


def test_user_facing_text_speaks_of_the_tool_and_its_results():
    import re

    files = [REPO / "README.md", *sorted((REPO / "genloop" / "presets").glob("*.yaml")),
             *[p for p in sorted((REPO / "docs").glob("*.md")) if p.name not in NOT_YET_CHECKED]]
    found = [f"{p.relative_to(REPO)}:{i}: {line.strip()}" for p in files
             for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(DEVELOPMENT_TALK, line, re.I)]
    assert not found, "\n".join(found)
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for command in ("pip install torch==2.13.0 -e . && genloop run",
                    "pip install torch==2.13.0 -e '.[test]' && python -m pytest -q"):
        assert command in readme
    ci = (REPO / ".ci" / "run").read_text()  # CI runs the README's test command (pip quietly)
    assert "pip install -q torch==2.13.0 -e '.[test]' && python -m pytest -q" in ci

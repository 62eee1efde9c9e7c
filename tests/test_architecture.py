"""The layers of ``genloop/`` (docs/architecture.md), checked on its source with ``ast``.

- The import graph has no circle: no module imports itself through others.
- No module imports a module of a higher layer (``LAYERS``), nor a module that ``NEVER``
  forbids within its layer; ``genloop.report`` is imported only by the entry points.
- The built-ins are registered at the entry points only: importing the lower modules
  registers nothing, and a registry asked before says so in one line.
- No module is longer than 400 lines and no function longer than 60, but the ``EXCEPTIONS``.

Edges are every ``import`` and ``from ... import`` anywhere in a module (inside functions too)
and every ``importlib.import_module("...")`` of a literal name.  ``from pkg import name``
counts as importing ``pkg`` and, when ``pkg.name`` is a module, that module as well: a
package's ``__init__`` that imports its own modules is then a facade its modules never
import (``genloop.diffusion``), and one that its modules import (``from . import
METRICS``) imports none of them (``genloop.metrics``).
"""
from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "genloop"

# High to low.  A module belongs to the entry that names it or a package above it (the
# longest such name); "genloop" names the package's own __init__ only.
LAYERS = [
    ("entry points", ("genloop", "genloop.cli", "genloop.__main__")),
    ("sweep and report", ("genloop.sweep", "genloop.report")),
    ("component catalogue", ("genloop.builtins",)),
    ("loop", ("genloop.loop",)),
    ("components and run folder", ("genloop.generators", "genloop.metrics", "genloop.data", "genloop.tracking",
                                   "genloop.runfolder", "genloop.grid")),
    ("building blocks", ("genloop.diffusion", "genloop.models")),
    ("foundation", ("genloop.config", "genloop.groups", "genloop.migrate", "genloop.registry", "genloop.plugins",
                    "genloop.coerce", "genloop.validation", "genloop.loading", "genloop.chains", "genloop.reference",
                    "genloop.utils", "genloop.theory")),
]

# Imports forbidden within a layer: (importer, imported, why).
NEVER = [
    ("genloop.metrics", "genloop.generators", "metrics score samples and models they are handed; a model both "
                                              "need lives below them (genloop.models)"),
    ("genloop.data", "genloop.generators", "data sources know nothing of the models trained on them"),
    ("genloop.data", "genloop.metrics", "data sources know nothing of how samples are scored"),
    *[(low, high, "the run folder's files know nothing of what writes them")
      for low in ("genloop.runfolder",)
      for high in ("genloop.data", "genloop.generators", "genloop.metrics", "genloop.tracking")],
]

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# What may stay over the limits, each with why.  "path" for a module, "path:qualname" for a
# function.  An entry that no longer applies fails the test too: remove it.
EXCEPTIONS = {
}

MISSING = object()


# --------------------------------------------------------------------------- the graph


def module_files(root: Path = PACKAGE) -> dict[str, Path]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _absolute(module: str, level: int, current: str, is_package: bool) -> str:
    if not level:
        return module
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imports_of(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, int]]:
    """(imported module of ``known``, line) for every import in the module ``name``."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module or "", node.level, name, is_package)
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            targets = [node.args[0].value]
        out += [(t, node.lineno) for t in targets if t in known and t != name]
    return out


def import_graph(root: Path = PACKAGE) -> tuple[dict[str, Path], dict[str, dict[str, int]]]:
    """The modules (name -> file) and the edges: importer -> {imported: first line}."""
    known = module_files(root)
    edges: dict[str, dict[str, int]] = defaultdict(dict)
    for name, path in known.items():
        for target, line in imports_of(name, path, known):
            edges[name].setdefault(target, line)
    return known, edges


def circles(nodes: list[str], edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, {}))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, {})))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def _under(name: str, prefix: str) -> bool:
    return name == prefix or (prefix != "genloop" and name.startswith(prefix + "."))


def layer_of(name: str) -> int:
    """The index in ``LAYERS`` (0 is the top) of the longest entry naming ``name``, or -1."""
    best, where = "", -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if _under(name, p) and len(p) > len(best):
                best, where = p, i
    return where


def _where(known: dict[str, Path], name: str, line: int) -> str:
    return f"{known[name].relative_to(REPO)}:{line}"


# --------------------------------------------------------------------------- the tests


def test_every_module_has_a_layer():
    known, _ = import_graph()
    lost = [str(p.relative_to(REPO)) for n, p in known.items() if layer_of(n) < 0]
    assert not lost, f"modules in no layer: {lost}; add each to LAYERS in tests/test_architecture.py " \
                     "(and to docs/architecture.md)"


def test_the_import_graph_has_no_circle():
    known, edges = import_graph()
    bad = []
    for comp in circles(sorted(known), edges):
        inside = [f"{_where(known, a, line)} imports {b}" for a in comp for b, line in sorted(edges[a].items())
                  if b in comp]
        bad.append(f"circle of {len(comp)} modules: " + "; ".join(inside))
    assert not bad, "\n".join(bad)


def test_no_module_imports_a_higher_layer():
    known, edges = import_graph()
    bad = []
    for a, targets in sorted(edges.items()):
        for b, line in sorted(targets.items()):
            la, lb = layer_of(a), layer_of(b)
            if lb < la:
                bad.append(f"{_where(known, a, line)} imports {b}: layer {LAYERS[la][0]!r} may not import "
                           f"layer {LAYERS[lb][0]!r} above it")
            for low, high, why in NEVER:
                if _under(a, low) and _under(b, high):
                    bad.append(f"{_where(known, a, line)} imports {b}: {low} never imports {high} ({why})")
    assert not bad, "\n".join(bad)


def test_report_is_imported_only_by_the_entry_points():
    known, edges = import_graph()
    bad = [f"{_where(known, a, line)} imports {b}: only the entry points (genloop.run, the CLI) draw reports"
           for a, targets in sorted(edges.items()) for b, line in sorted(targets.items())
           if _under(b, "genloop.report") and not _under(a, "genloop.report") and layer_of(a) != 0]
    assert not bad, "\n".join(bad)


def test_the_graph_finds_circles_and_upward_imports(tmp_path):
    """The checks above see what they must: a circle, an import inside a function, a literal
    ``importlib.import_module`` and ``from . import name`` of a package's module."""
    pkg = tmp_path / "genloop"
    (pkg / "loop").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "config.py").write_text("def f():\n    import importlib\n    importlib.import_module('genloop.loop.b')\n")
    (pkg / "loop" / "__init__.py").write_text("from .a import A\n")
    (pkg / "loop" / "a.py").write_text("from . import b\nA = 1\n")
    (pkg / "loop" / "b.py").write_text("B = 2\n")
    known, edges = import_graph(pkg)
    assert edges["genloop.config"] == {"genloop.loop.b": 3}
    assert set(edges["genloop.loop.a"]) == {"genloop.loop", "genloop.loop.b"}
    assert [c for c in circles(sorted(known), edges)] == [["genloop.loop", "genloop.loop.a"]]
    assert layer_of("genloop.loop.b") > layer_of("genloop.sweep") and layer_of("genloop.config") == len(LAYERS) - 1


def _function_lengths(tree: ast.AST) -> list[tuple[str, int]]:
    out = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                out.append((name, child.end_lineno - child.lineno + 1))
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def oversized() -> dict[str, str]:
    """Every module over ``MAX_MODULE_LINES`` and function over ``MAX_FUNCTION_LINES``: key -> size."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        text = path.read_text()
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            out[rel] = f"{lines} lines"
        for name, length in _function_lengths(ast.parse(text)):
            if length > MAX_FUNCTION_LINES:
                out[f"{rel}:{name}"] = f"{length} lines"
    return out


def test_modules_and_functions_are_short_but_the_listed_exceptions():
    sizes = oversized()
    new = [f"{k} ({v}; at most {MAX_FUNCTION_LINES if ':' in k else MAX_MODULE_LINES})"
           for k, v in sizes.items() if k not in EXCEPTIONS]
    stale = [k for k in EXCEPTIONS if k not in sizes]
    assert not new, "over the size limits: " + "; ".join(new) + " (split it, or add it to EXCEPTIONS with why)"
    assert not stale, f"EXCEPTIONS that no longer apply (remove them): {stale}"


def test_a_constant_repeated_below_its_layer_agrees():
    from genloop.data.text import BOS
    from genloop.models import ngram

    assert ngram.BOS == BOS


LOW_MODULES = """
import sys
import genloop.loading, genloop.registry, genloop.reference, genloop.generators, genloop.metrics, genloop.loop
assert "genloop.builtins" not in sys.modules, "a module below the entry points imported genloop.builtins"
from genloop.generators import GENERATORS
try:
    GENERATORS.get("ddpm")
except KeyError as exc:
    print(exc.args[0])
try:
    genloop.loading.load_raw(None, [])
except genloop.loading.ConfigError as exc:
    print(exc)
import genloop
print(len(genloop.load_config(preset="theory")), "genloop.builtins" in sys.modules)
"""


def test_built_ins_are_loaded_at_the_entry_points_only():
    """Importing the lower modules registers nothing; a registry or a config asked before the
    built-ins are loaded says so in one line; ``genloop.load_config`` loads them."""
    res = subprocess.run([sys.executable, "-c", LOW_MODULES], capture_output=True, text=True, timeout=300,
                         cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr[-3000:]
    get, load, chains = res.stdout.splitlines()
    hint = "no components are loaded yet; call genloop.load_builtins() first"
    assert get.startswith("unknown generator 'ddpm': ") and hint in get
    assert load.startswith(hint)
    assert chains.endswith("True") and int(chains.split()[0]) >= 1

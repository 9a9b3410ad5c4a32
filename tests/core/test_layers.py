"""The layers of cellseg_core and the app, read from the source: every import statement,
also those inside functions, checked without importing anything.

The rule: a module imports only modules of its own layer or of the layers below it,

    engine ← data ← learn ← evaluation ← methods ← batch, experiments ← cli
    (cellseg_core) ← app_support ← pages

with no import cycle anywhere; cellseg_core never imports app_support or Streamlit; and
no import sits inside a function except of an optional heavy dependency (ALLOWED_LAZY).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("cellseg_core", "app_support")

#: Layers from the bottom. A module not named here belongs to the engine (the core's
#: pure functions: params presets io color filters threshold morphology instances
#: measure metrics pipeline, and any new engine module).
LAYERS = ("engine", "data", "learn", "evaluation", "methods", "batch", "cli", "app_support")
_LAYER_OF = {
    "cellseg_core.data": "data",
    "cellseg_core.learn": "learn",
    "cellseg_core.evaluation": "evaluation",
    "cellseg_core.methods": "methods",
    "cellseg_core.batch": "batch",
    "cellseg_core.experiments": "batch",
    "cellseg_core.cli": "cli",
    "cellseg_core.__main__": "cli",
    "app_support": "app_support",
}
#: Optional or heavy dependencies that may be imported inside a function (start-up time,
#: or an extra that may be missing).
ALLOWED_LAZY = {"torch", "onnxruntime", "onnx", "dask", "distributed", "skopt", "sklearn",
                "skops"}
#: What cellseg_core must never import.
FORBIDDEN_IN_CORE = {"streamlit", "plotly", "altair", "app_support", "pages"}

RULE = ("a module imports only its own layer or those below: "
        + " ← ".join(LAYERS[:5]) + " ← batch/experiments ← cli; app_support ← pages")


def layer_of(module: str) -> str:
    """The layer of a dotted module name of cellseg_core or app_support."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        layer = _LAYER_OF.get(".".join(parts[:n]))
        if layer is not None:
            return layer
    return "engine"


def _modules(root: Path) -> dict[str, Path]:
    """Dotted name -> file of every module of PACKAGES under `root`."""
    out = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path, known) -> list[tuple[int, str, bool]]:
    """(line, imported module, inside a function) of every import in `path`; imported
    names of this repository are resolved to the module that defines them."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    out = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                      ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((child.lineno, a.name, in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".")
                    base = base[:len(base) - child.level + (1 if is_package else 0)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module
                for alias in child.names:
                    sub = f"{target}.{alias.name}"
                    out.append((child.lineno, sub if sub in known else target, in_function))
            visit(child, inner)

    visit(tree, False)
    return list(dict.fromkeys(out))  # one entry per imported module and line


def check(root: Path) -> list[str]:
    """Every violation of the rules in the source tree at `root`, as readable lines."""
    modules = _modules(root)
    graph: dict[str, set] = {m: set() for m in modules}
    problems = []
    for module, path in modules.items():
        where = f"{path.relative_to(root)}"
        rank = LAYERS.index(layer_of(module))
        for line, target, in_function in _imports(module, path, modules):
            top = target.split(".")[0]
            if in_function and top not in ALLOWED_LAZY:
                problems.append(f"{where}:{line}: imports {target} inside a function; import "
                                f"it at the top (only {sorted(ALLOWED_LAZY)} may wait)")
            if module.startswith("cellseg_core") and top in FORBIDDEN_IN_CORE:
                problems.append(f"{where}:{line}: cellseg_core imports {target}")
            if top not in PACKAGES:
                continue
            if target not in modules:
                problems.append(f"{where}:{line}: imports {target}, which does not exist")
                continue
            graph[module].add(target)
            target_layer = layer_of(target)
            if LAYERS.index(target_layer) > rank:
                problems.append(f"{where}:{line}: {module} (layer {layer_of(module)}) imports "
                                f"{target} (layer {target_layer})")
    for cycle in _cycles(graph):
        problems.append("import cycle: " + " → ".join(cycle + cycle[:1]))
    return problems


def _cycles(graph: dict[str, set]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), and
    modules that import themselves."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def test_the_layers_hold():
    problems = check(REPO)
    assert not problems, "\n".join([f"The rule: {RULE}.", *problems])


def test_every_layer_has_modules():
    found = {layer_of(m) for m in _modules(REPO)}
    assert found == set(LAYERS)


@pytest.mark.parametrize("files, expected", [
    ({"cellseg_core/params.py": "from .cli import main\n", "cellseg_core/cli/__init__.py": ""},
     "cellseg_core.params (layer engine) imports cellseg_core.cli (layer cli)"),
    ({"cellseg_core/learn/a.py": "def f():\n    from ..methods import x\n",
      "cellseg_core/methods.py": "", "cellseg_core/learn/__init__.py": ""},
     "imports cellseg_core.methods inside a function"),
    ({"cellseg_core/data/a.py": "from . import b\n", "cellseg_core/data/b.py": "from . import a\n",
      "cellseg_core/data/__init__.py": ""},
     "import cycle: cellseg_core.data.a → cellseg_core.data.b → cellseg_core.data.a"),
    ({"cellseg_core/io.py": "import streamlit\n"}, "cellseg_core imports streamlit"),
    ({"cellseg_core/io.py": "def f():\n    import torch\n"}, None),
])
def test_the_check_finds_each_kind_of_violation(tmp_path, files, expected):
    for name, text in {"cellseg_core/__init__.py": "", "app_support/__init__.py": "",
                       **files}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    problems = check(tmp_path)
    if expected is None:
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems

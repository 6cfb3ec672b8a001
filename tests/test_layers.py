"""The house rules, checked on the source: one-way layers, no import cycle, no module over 600 lines.

Imports are read from the syntax tree, function-level imports included, so a cycle cannot hide
behind a lazy import.
"""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "instrec"
MAX_LINES = 600

# Data flows one way: a module imports only modules of its own rank or below.
RANKS = {
    "instrec._version": 0, "instrec.errors": 0, "instrec.fileio": 0, "instrec.memory": 0, "instrec.results": 0,
    "instrec.devices": 1, "instrec.audio": 1, "instrec.bundle": 1, "instrec.assets": 1,
    "instrec.data": 2, "instrec.features": 3, "instrec.decision": 3, "instrec.calibration": 3, "instrec.timeline": 3, "instrec.augment": 4, "instrec.models": 4, "instrec.recipes": 5,
    "instrec.train": 6, "instrec.classifier": 7, "instrec.engines": 8, "instrec.export": 9, "instrec.evaluate": 9,
    "instrec.inference": 10, "instrec.display": 11, "instrec.spectrograms": 11, "instrec.pipeline": 11,
    "instrec.demo": 12, "instrec.service": 12, "instrec.cluster": 12, "instrec.cli": 13, "instrec.__main__": 14, "instrec": 14,
}


def _modules() -> dict[str, Path]:
    out = {}
    for p in SRC.rglob("*.py"):
        parts = list(p.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def import_graph() -> dict[str, set[str]]:
    """Module → the instrec modules it imports anywhere in its body (``from . import x`` names
    the submodule ``x`` where there is one, else the package itself)."""
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.split(".")[0] == "instrec"}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != "instrec":
                    continue
                for a in node.names:
                    found.add(f"{target}.{a.name}" if f"{target}.{a.name}" in mods else target)
        graph[name] = {m for m in found if m in mods and m != name}
    return graph


def _rank(module: str) -> int:
    while module not in RANKS:
        module = module.rpartition(".")[0]
    return RANKS[module]


def test_no_import_cycle():
    graph = import_graph()
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                raise AssertionError("import cycle: " + " → ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_lower_layers_never_import_upper_ones():
    graph = import_graph()
    assert set(graph) <= {m for m in graph if _rank(m) is not None}
    upward = [f"{m} ({_rank(m)}) imports {n} ({_rank(n)})" for m in sorted(graph) for n in sorted(graph[m])
              if _rank(n) > _rank(m)]
    assert not upward, "\n".join(upward)


def test_the_onnx_engine_imports_neither_torch_nor_the_classifier():
    graph = import_graph()
    reach, todo = set(), ["instrec.engines.onnx_engine"]
    while todo:
        m = todo.pop()
        for n in graph[m] - reach:
            reach.add(n)
            todo.append(n)
    assert "instrec.classifier" not in reach and not any(m.startswith("instrec.models") for m in reach)


def test_no_module_over_600_lines():
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, long


def test_the_graph_includes_function_level_imports():
    graph = import_graph()
    assert "instrec.inference" in graph["instrec"]  # load_model() imports it inside the function


def test_results_page_stays_a_page_of_current_claims():
    """benchmarks/RESULTS.md holds current claims with their commands; history goes to experiments/LOG.md."""
    page = SRC.parents[1] / "benchmarks" / "RESULTS.md"
    assert len(page.read_text(encoding="utf-8").splitlines()) < 400

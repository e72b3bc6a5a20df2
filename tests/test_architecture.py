"""The layers of docs/ARCHITECTURE.md, as the imports show them: every module imports only from
its own layer or lower ones, there is no import circle, and modules stay small."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mapg_verify"
LAYERS = {  # lowest first; a top-level module or subpackage -> its layer
    "problem": 0,
    "spec": 1,
    "exact": 2,
    "oracles": 3,
    "estimators": 4,
    "checks": 5,
    "progress": 0,
    "figures": 6,
    "casefile": 6,
    "results": 6,
    "description": 6,
    "output": 6,
    "report": 7,
    "paper": 7,
    "strategies": 7,
    "console": 7,
    "pipeline": 8,
    "audit": 8,
    "plugins": 9,
    "verify": 9,
    "campaign": 9,
    "cluster": 9,
    "cli": 9,
    "__init__": 10,
    "__main__": 10,
}


def _modules() -> dict[str, set[str]]:
    """Module name (dotted, without ``mapg_verify.``) -> the package modules it imports."""
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                raise AssertionError(f"{name}: relative import; write mapg_verify.{node.module}")
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mapg_verify"):
                if node.module == "mapg_verify":
                    imported |= {alias.name for alias in node.names}
                else:
                    imported.add(node.module.removeprefix("mapg_verify."))
        graph[name] = imported
    return graph


def _layer(module: str) -> int:
    return LAYERS[module.split(".")[0]]


def test_every_module_has_a_layer():
    assert not [m for m in _modules() if m.split(".")[0] not in LAYERS]


def test_imports_go_only_downward():
    upward = [
        f"{module} (layer {_layer(module)}) imports {other} (layer {_layer(other)})"
        for module, imported in _modules().items()
        for other in imported
        if _layer(other) > _layer(module)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_circle():
    graph = _modules()
    state: dict[str, str] = {}

    def visit(module: str, trail: tuple[str, ...]) -> None:
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", "import circle: " + " -> ".join((*trail, module))
        state[module] = "open"
        for other in graph.get(module, ()):
            visit(other, (*trail, module))
        state[module] = "done"

    for module in graph:
        visit(module, ())


def test_subpackages_and_sizes():
    subpackages = [p.parent.name for p in PACKAGE.glob("*/__init__.py")]
    assert len(subpackages) >= 4
    sizes = {path.relative_to(PACKAGE): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")}
    assert sizes[Path("cli.py")] <= 150
    assert not {path: n for path, n in sizes.items() if n > 400}


def test_every_module_is_named_in_the_architecture():
    """docs/ARCHITECTURE.md names every module in its layer's row (a top-level one anywhere)."""
    text = (PACKAGE.parent / "docs" / "ARCHITECTURE.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "`" in line]
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if path.name == "__init__.py":
            continue
        if len(relative.parts) == 1:
            found = f"`{path.name}`" in text
        else:
            row = next((line for line in rows if f"`{relative.parts[0]}/`" in line), "")
            found = f"`{path.name}`" in row
        if not found:
            missing.append(str(relative))
    assert not missing, missing

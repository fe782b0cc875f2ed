"""The package's layering: no import circle, no import back up, the reference without Brian2."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fbsnn_brian"

# bottom up; a module may import from its own layer or a lower one
LAYERS = [
    {"errors", "version", "validation", "files", "interrupt"},
    {"reference"},
    {"model"},
    {"io"},
    {"build"},
    {"rules"},
    {"learning"},
    {"analysis"},
    {"experiments"},
    {"cli"},
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def type_only_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:``.

    Imports there are for annotations only: they never run, so they make no dependency.
    """
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for statement in node.body:
                skipped.update(id(inner) for inner in ast.walk(statement))
    return skipped


def imports_of(path: Path) -> set[str]:
    """Every fbsnn_brian module a file imports at run time, at module or function level."""
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    type_only = type_only_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("fbsnn_brian"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("fbsnn_brian"):
                found.add(node.module)
                # `from fbsnn_brian.x import y` may name a submodule y
                for alias in node.names:
                    candidate = f"{node.module}.{alias.name}"
                    if (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").exists():
                        found.add(candidate)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = {target for target in imports_of(path) if target in modules}
        graph[name] = targets - {name}
    return graph


def layer_of(module: str) -> int:
    part = module.split(".")[1] if "." in module else ""
    for index, names in enumerate(LAYERS):
        if part in names:
            return index
    raise AssertionError(f"{module} belongs to no layer; add its folder to LAYERS")


def find_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every circle a depth-first walk of ``graph`` meets, as a list of its modules."""
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                circles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target, [*stack, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return circles


def test_the_walk_finds_circles_and_function_level_imports(tmp_path: Path) -> None:
    assert find_circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_circles({"a": {"b"}, "b": set()}) == []
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from fbsnn_brian.cli import main\n")
    assert "fbsnn_brian.cli" in imports_of(probe)
    probe.write_text("if TYPE_CHECKING:\n    from fbsnn_brian.cli import main\n")
    assert imports_of(probe) == set()


def test_no_import_circle() -> None:
    assert find_circles(import_graph()) == []


def test_no_import_runs_back_up_the_layers() -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        if module != "fbsnn_brian"  # the package face names the public API of every layer
        for target in targets
        if target != "fbsnn_brian" and layer_of(target) > layer_of(module)
    ]
    assert upward == []


def test_the_reference_loads_without_brian2() -> None:
    code = "import sys, fbsnn_brian.reference; assert 'brian2' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)

"""No module uses another module's private (single leading underscore) name.

A name with one leading underscore is private to the module that defines it: another module
that imports it, or reads it as an attribute of an imported ``fbsnn_brian`` module, depends on
an implementation detail that its owner may change at any time. Helpers that several modules
share are public (in their module's ``__all__``, with a docstring). Dunder names such as
``__version__`` are not private. The check covers the package, the tests, the benchmarks and
the analysis scripts; a module may of course use its own private names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "fbsnn_brian"
SCANNED = ("fbsnn_brian", "tests", "benchmarks", "analysis")


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_package_module(dotted: str) -> bool:
    """Whether ``dotted`` (e.g. ``fbsnn_brian.experiments.runs``) names a module of the package."""
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of attribute accesses on a name, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def private_uses(source: str, filename: str = "<source>") -> list[str]:
    """Every use of another ``fbsnn_brian`` module's private name in ``source``.

    Two forms are found: ``from fbsnn_brian.x import _name`` and ``module._name`` where
    ``module`` is bound to a ``fbsnn_brian`` module by an import of this source (``import
    fbsnn_brian.x as module``, ``from fbsnn_brian.x import module``, ``import fbsnn_brian.x``
    then ``fbsnn_brian.x._name``).
    """
    tree = ast.parse(source, filename=filename)
    modules: dict[str, str] = {}  # local name (possibly dotted) -> module it is bound to
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module != PACKAGE and not node.module.startswith(PACKAGE + "."):
                continue
            for alias in node.names:
                if _is_private(alias.name):
                    found.append(
                        f"{filename}:{node.lineno}: from {node.module} import {alias.name}"
                    )
                elif _is_package_module(f"{node.module}.{alias.name}"):
                    modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name != PACKAGE and not alias.name.startswith(PACKAGE + "."):
                    continue
                for part in alias.name.split(".")[1:]:
                    if _is_private(part):
                        found.append(f"{filename}:{node.lineno}: import {alias.name}")
                if alias.asname:
                    modules[alias.asname] = alias.name
                else:
                    # ``import a.b.c`` binds ``a`` and makes ``a.b`` and ``a.b.c`` reachable
                    parts = alias.name.split(".")
                    for end in range(1, len(parts) + 1):
                        prefix = ".".join(parts[:end])
                        modules[prefix] = prefix
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            owner = _dotted(node.value)
            if owner is not None and _bound_module(owner, modules) is not None:
                found.append(f"{filename}:{node.lineno}: {owner}.{node.attr}")
    return found


def _bound_module(owner: str, modules: dict[str, str]) -> str | None:
    """The package module ``owner`` (a dotted local name) refers to, if any."""
    parts = owner.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in modules:
            full = ".".join([modules[prefix], *parts[end:]])
            return full if _is_package_module(full) else None
    return None


def _sources() -> list[Path]:
    return sorted(
        path for folder in SCANNED for path in (ROOT / folder).rglob("*.py") if path.is_file()
    )


def test_the_scan_covers_the_package_and_the_tests() -> None:
    files = {path.relative_to(ROOT).as_posix() for path in _sources()}
    assert "fbsnn_brian/reference/ide.py" in files
    assert "tests/test_private_names.py" in files


def test_no_module_uses_another_modules_private_name() -> None:
    offences = [
        offence
        for path in _sources()
        for offence in private_uses(
            path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix()
        )
    ]
    assert not offences, "private names used across modules:\n" + "\n".join(offences)


@pytest.mark.parametrize(
    "source",
    [
        "from fbsnn_brian.reference.ide import _solve_adjoint\n",
        "from fbsnn_brian.reference.ide import readout, _outer as outer\n",
        "from fbsnn_brian.experiments import runs\nruns._datasets(1)\n",
        "import fbsnn_brian.experiments.runs as runs\nx = runs._settings\n",
        "import fbsnn_brian.reference.ide\nfbsnn_brian.reference.ide._outer(1, 2)\n",
        "from fbsnn_brian import reference as ref\nref.ide._outer\n",
    ],
)
def test_private_uses_are_found(source: str) -> None:
    assert private_uses(source)


@pytest.mark.parametrize(
    "source",
    [
        "from fbsnn_brian import __version__\n",
        "from fbsnn_brian.reference.ide import readout\n",
        "from fbsnn_brian.build.free_run import simulate as _simulate\n",
        "from fbsnn_brian.experiments import runs\nruns.train_run\n",
        "class A:\n    def f(self):\n        return self._x\n",
        "import numpy as np\nnp._NoValue\n",
        "def _own():\n    pass\n_own()\n",
    ],
)
def test_allowed_uses_pass(source: str) -> None:
    assert private_uses(source) == []

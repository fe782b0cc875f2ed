"""Size limits, counted in code lines: no module over 600, no function over 100.

Docstrings, comments and blank lines do not count, so explanations are never cut to meet a
limit; a module or function that outgrows its limit is split where a concept boundary runs.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fbsnn_brian"

MODULE_LIMIT = 600
FUNCTION_LIMIT = 100

_SKIPPED = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENDMARKER,
}


def docstring_lines(tree: ast.AST) -> set[int]:
    """Line numbers of every docstring (module, class and function)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            first = body[0] if body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def code_lines(source: str) -> set[int]:
    """Line numbers that hold code (not blank, not only a comment, not a docstring)."""
    docstrings = docstring_lines(ast.parse(source))
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in _SKIPPED:
            continue
        lines.update(
            line for line in range(token.start[0], token.end[0] + 1) if line not in docstrings
        )
    return lines


def oversized(source: str, label: str) -> list[str]:
    """The module and functions of ``source`` over their limits, with their code lines."""
    lines = code_lines(source)
    found = []
    if len(lines) > MODULE_LIMIT:
        found.append(f"{label}: {len(lines)} code lines (limit {MODULE_LIMIT})")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            span = range(node.lineno, (node.end_lineno or node.lineno) + 1)
            count = len(lines.intersection(span))
            if count > FUNCTION_LIMIT:
                found.append(f"{label}:{node.name}: {count} code lines (limit {FUNCTION_LIMIT})")
    return found


def test_no_module_or_function_over_its_limit() -> None:
    found = [
        problem
        for path in sorted(PACKAGE.rglob("*.py"))
        for problem in oversized(path.read_text(), str(path.relative_to(PACKAGE.parent)))
    ]
    assert found == []


def test_docstrings_and_comments_do_not_count() -> None:
    body = '    """A docstring\n\n    over lines.\n    """\n    # a comment\n\n    return 1\n'
    assert len(code_lines(f"def f():\n{body}")) == 2  # the def line and the return


def test_the_limits_catch_an_oversized_function() -> None:
    long_function = "def f():\n" + "    x = 1\n" * (FUNCTION_LIMIT + 1)
    assert oversized(long_function, "probe") == [
        f"probe:f: {FUNCTION_LIMIT + 2} code lines (limit {FUNCTION_LIMIT})"
    ]
    assert oversized("x = 1\n" * (MODULE_LIMIT + 1), "probe") == [
        f"probe: {MODULE_LIMIT + 1} code lines (limit {MODULE_LIMIT})"
    ]

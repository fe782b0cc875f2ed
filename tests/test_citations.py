"""Everything the code cites is in the repository, and the README's module map is complete.

Docstrings and comments point readers to documentation pages (``docs/algorithm.rst``), other
modules (``fbsnn_brian/build/neurons.py``) and data files. A citation of a file the repository
does not hold sends the reader nowhere, and a path that leaves the repository (``../shared``)
only works on the machine it was written on. The README's "Module map" is where a reader looks
up which module to change, so it must name every module of the package.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fbsnn_brian"
SCANNED_FOLDERS = ("fbsnn_brian", "tests", "benchmarks", "analysis")

#: A documentation file, cited by name or path: any ``*.md`` or ``*.rst``.
DOCUMENT = re.compile(r"(?<![\w/.:-])((?:\.\.?/)*\w[\w/.-]*\.(?:md|rst))(?![\w/-])")
#: A path into the repository's folders (or relative to the citing file) of another kind of
#: file; a bare name such as ``metrics.json`` is a file the toolkit writes, not a citation.
FOLDERS = ("fbsnn_brian", "tests", "benchmarks", "analysis", "docs", "protocols")
REPOSITORY_PATH = re.compile(
    r"(?<![\w/.:-])((?:\.\.?/)+[\w.-][\w/.-]*|(?:"
    + "|".join(FOLDERS)
    + r")/[\w/.-]+)\.(py|toml|json|cff|txt)(?![\w/-])"
)
#: Documents the toolkit writes (named in its code as the files it produces), not cites.
WRITTEN_DOCUMENTS = ("report.md",)
#: A pointer out of the repository, to the workspace around it.
OUTSIDE = re.compile(r"\.\./shared\b")


def _scanned_files() -> list[Path]:
    files = [
        path
        for folder in SCANNED_FOLDERS
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.is_file()
    ]
    # this file's own examples of bad citations are not citations
    return [path for path in files if path.name != "test_citations.py"] + [ROOT / "README.md"]


def _exists(cited: str, citing: Path) -> bool:
    """Whether ``cited`` names a file of the repository.

    A citation may be written from the repository root (``docs/algorithm.rst``), relative to
    the citing file's folder (``../README.md``), as a bare file name that is unique enough to
    find (``test_layers.py``), or as a path inside the package (``build/neurons.py``).
    """
    candidates = [ROOT / cited, citing.parent / cited, PACKAGE / cited]
    if any(candidate.is_file() for candidate in candidates):
        return True
    if "/" not in cited:
        return any(
            True
            for folder in (".", *SCANNED_FOLDERS, "docs", "protocols")
            for _ in (ROOT / folder).glob(f"**/{cited}")
        )
    return False


def citations(text: str) -> list[str]:
    """Every documentation file and every repository path named in ``text``."""
    found = [
        match.group(1)
        for match in DOCUMENT.finditer(text)
        if match.group(1) not in WRITTEN_DOCUMENTS
    ]
    found += [f"{match.group(1)}.{match.group(2)}" for match in REPOSITORY_PATH.finditer(text)]
    return found


def missing_citations(path: Path, text: str | None = None) -> list[str]:
    """The citations of ``path`` that name no file of the repository, and its ``../shared``.

    ``text`` replaces the file's contents (to check a text as if ``path`` held it).
    """
    text = path.read_text(encoding="utf-8") if text is None else text
    where = path.relative_to(ROOT).as_posix()
    problems = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if OUTSIDE.search(line):
            problems.append(f"{where}:{lineno}: points outside the repository: {line.strip()}")
        for cited in citations(line):
            if not _exists(cited, path):
                problems.append(f"{where}:{lineno}: cites {cited}, which is not in the repository")
    return problems


def test_every_cited_file_is_in_the_repository() -> None:
    problems = [problem for path in _scanned_files() for problem in missing_citations(path)]
    assert not problems, "\n".join(problems)


def test_documents_the_toolkit_writes_are_written_by_it() -> None:
    sources = "\n".join(path.read_text(encoding="utf-8") for path in PACKAGE.rglob("*.py"))
    for name in WRITTEN_DOCUMENTS:
        assert f'"{name}"' in sources, name


def test_the_documentation_pages_exist() -> None:
    for page in ("algorithm", "architecture", "baselines"):
        assert (ROOT / "docs" / f"{page}.rst").is_file(), page


@pytest.mark.parametrize(
    ("text", "cited"),
    [
        ("see ALGORITHM.md, section 4", ["ALGORITHM.md"]),
        ("(docs/algorithm.rst, section 'Error units')", ["docs/algorithm.rst"]),
        ("the runs in ``benchmarks/results/workers.json``.", ["benchmarks/results/workers.json"]),
        (
            "``fbsnn_brian/build/neurons.py`` and :mod:`fbsnn_brian.build.neurons`",
            ["fbsnn_brian/build/neurons.py"],
        ),
        ("the notes in ../design/NOTES.md", ["../design/NOTES.md"]),
        ("see ../tools/layers.py", ["../tools/layers.py"]),
        ("writes metrics.json and report.md", []),
        ("https://example.org/docs/index.rst", []),
    ],
)
def test_citations_are_recognised(text: str, cited: list[str]) -> None:
    assert citations(text) == cited


def test_a_missing_citation_and_a_pointer_outside_are_found() -> None:
    text = '"""See ARCHITECTURE.md and docs/algorithm.rst."""\nDATA = "idx:../shared/data"\n'
    problems = missing_citations(ROOT / "tests" / "test_citations.py", text)
    assert len(problems) == 2
    assert "ARCHITECTURE.md" in problems[0]
    assert "outside the repository" in problems[1]


# ------------------------------------------------------------------------------ module map


def _module_map() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("### Module map: where to change what")
    end = readme.find("\n#", start + 1)
    return readme[start : end if end != -1 else len(readme)]


def package_modules() -> list[str]:
    """Every module of the package as a path below it, e.g. ``build/devices/registry.py``."""
    return sorted(
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" and "__pycache__" not in path.parts
    )


def test_the_module_map_names_every_module() -> None:
    section = _module_map()
    named = {
        token for span in re.findall(r"`([^`]+)`", section) for token in re.findall(r"\w+", span)
    }
    missing = [module for module in package_modules() if Path(module).stem not in named]
    assert not missing, "modules missing from the README's module map: " + ", ".join(missing)

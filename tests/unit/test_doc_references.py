"""Every document the project cites is in the repository, and every cited section exists.

A user who clones the repository must be able to open whatever the README, the code, the params
and the schemas point to: a citation of a file that is not here (such as the internal notes the
project started from) or of a section a page does not have fails this test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Where citations live: everything a user reads.
SOURCES = ["README.md", "docs", "src", "params", "workflow", "benchmarks", "tests", "Snakefile"]
SUFFIXES = {".py", ".md", ".yaml", ".smk", ".rst", ".toml", ".sh", ""}
#: A Markdown file name, with an optional section: ``docs/mcr.md §4.2``, ``baselines.md``.
CITATION = re.compile(
    r"(?<![\w/.-])([\w./-]*[\w-]\.md)`{0,2}(?:\s*§\s*([0-9][0-9.]*[0-9]|[0-9]))?"
)
#: Files a page is reached by that are written by the pipeline, not committed as docs.
GENERATED = {"summary.md"}


def cited_files() -> list[Path]:
    files = []
    for name in SOURCES:
        path = ROOT / name
        candidates = path.rglob("*") if path.is_dir() else [path]
        files += [
            p
            for p in candidates
            if p.is_file() and p.suffix in SUFFIXES and "__pycache__" not in p.parts
        ]
    return sorted(files)


def citations() -> list[tuple[Path, int, str, str | None]]:
    found = []
    for path in cited_files():
        if path == Path(__file__).resolve():  # its own examples of stale citations
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for match in CITATION.finditer(line):
                found.append((path, number, match.group(1), match.group(2)))
    return found


def resolve(source: Path, name: str) -> Path | None:
    """The cited file: relative to the citing file, the repository root, or ``docs/``."""
    for base in (source.parent, ROOT, ROOT / "docs"):
        candidate = (base / name).resolve()
        if candidate.is_file() and candidate.is_relative_to(ROOT):
            return candidate
    return None


def sections(page: Path) -> set[str]:
    """Section numbers of a page's headings (``## 4. The game`` -> 4, ``### 4.2 ...`` -> 4.2)."""
    numbers = set()
    for line in page.read_text().splitlines():
        match = re.match(r"#{1,6}\s+([0-9][0-9.]*)", line)
        if match:
            numbers.add(match.group(1).rstrip("."))
    return numbers


def test_the_scan_finds_the_citations_it_must_check() -> None:
    names = {name for _, _, name, _ in citations()}
    assert {"docs/mcr.md", "docs/baselines.md", "docs/datasets.md"} <= names


@pytest.mark.parametrize(
    "stale", ["method-mcr.md §1.3", "(``offline-data.md``)", "../shared/docs/baselines.md"]
)
def test_a_citation_of_a_missing_document_is_caught(stale: str) -> None:
    match = CITATION.search(stale)
    assert match is not None
    assert resolve(ROOT / "README.md", match.group(1)) is None  # outside the repo counts


def test_a_missing_section_is_caught() -> None:
    assert "4.2" in sections(ROOT / "docs/mcr.md")
    assert "99.9" not in sections(ROOT / "docs/mcr.md")


def test_every_cited_document_and_section_exists() -> None:
    problems = []
    for path, number, name, section in citations():
        where = f"{path.relative_to(ROOT)}:{number}"
        if Path(name).name in GENERATED:
            continue
        target = resolve(path, name)
        if target is None:
            problems.append(f"{where}: {name} is not in the repository")
        elif section and section not in sections(target):
            problems.append(f"{where}: {name} has no section §{section}")
    assert not problems, "\n".join(problems)

"""The repository stands on its own: every file that a comment, a docstring, README.md or a document in docs/
cites exists here, every test a document names as `file::function` is defined there, nothing points outside
the repository, and each `docs/RELIABILITY.md item N` names an item that docs/RELIABILITY.md has.

A citation is a path under one of the repository's top-level folders (`docs/API.md`,
`tests/consensus/pbft_sim.py`, `tools/bench/`), a bare Markdown file name (`README.md`), or, in a document,
a relative path or a link target (`protocol/core.md`). Paths are relative to the repository root; in a
document also relative to the document's folder.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIPPED = {"__pycache__", "build", "dist", "node_modules"}

# Known broken citations still to fix. An entry that no longer occurs fails the test, so this list can
# only shrink.
PENDING: dict[str, set[str]] = {}


def is_skipped(path: Path) -> bool:
    parts = path.relative_to(REPO).parts
    return any(p in SKIPPED or p.startswith(".") or p.endswith(".egg-info") for p in parts)


def top_folders() -> list[str]:
    return sorted(p.name for p in REPO.iterdir() if p.is_dir() and not is_skipped(p))


PATH = re.compile(
    rf"(?<![\w./-])((?:{'|'.join(map(re.escape, top_folders()))})/(?:[\w.-]+/)*(?:[\w-]+\.(?:py|md|json|toml)|))"
    r"(?![\w/])"
)
BARE_MD = re.compile(r"(?<![\w./-])([\w-]+\.md)\b")
RELATIVE_MD = re.compile(r"(?<![\w./-])((?:[\w-]+/)+[\w-]+\.md)\b")
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
OUTSIDE = re.compile(r"\.\./" + "shared|/work/" + "shared")  # split, so this file does not match itself
ITEM = re.compile(r"docs/RELIABILITY\.md,? items? (\d+)")
TEST_NAME = re.compile(r"(tests/[\w/]+\.py)::(\w+)")


def python_files() -> list[Path]:
    return [p for p in sorted(REPO.rglob("*.py")) if not is_skipped(p)]


def documents() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def comments_and_docstrings(path: Path) -> Iterator[str]:
    source = path.read_text(encoding="utf-8")
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.string
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            docstring = ast.get_docstring(node, clean=False)
            if docstring:
                yield docstring


def citations(text: str, *, document: bool) -> Iterator[tuple[str, list[Path]]]:
    """(cited text, the places it may refer to) for every citation in `text`."""
    for match in PATH.finditer(text):
        yield match.group(1), [REPO / match.group(1)]
    for match in BARE_MD.finditer(text):
        yield match.group(1), [REPO / match.group(1)]
    if document:
        for match in RELATIVE_MD.finditer(text):
            yield match.group(1), [REPO / match.group(1)]
        for match in LINK.finditer(text):
            target = match.group(1)
            if not re.match(r"^[a-z]+:", target):
                yield target, [REPO / target]


def resolve_candidates(cited: str, candidates: list[Path], citing: Path) -> list[Path]:
    if citing.suffix == ".md":
        return [*candidates, citing.parent / cited]
    return candidates


def broken_citations() -> list[tuple[str, str]]:
    """(citing file, cited text) for every citation that names nothing in the repository."""
    broken = []
    sources = [(path, list(comments_and_docstrings(path))) for path in python_files()]
    sources += [(path, [path.read_text(encoding="utf-8")]) for path in documents()]
    for path, texts in sources:
        relative = path.relative_to(REPO).as_posix()
        for text in texts:
            for cited, candidates in citations(text, document=path.suffix == ".md"):
                places = resolve_candidates(cited, candidates, path)
                if not any(place.exists() for place in places):
                    broken.append((relative, cited))
    return sorted(set(broken))


def test_every_cited_file_exists_in_the_repository() -> None:
    broken = broken_citations()
    pending = {(path, cited) for path, names in PENDING.items() for cited in names}
    unexpected = [
        f"{path} cites {cited}, which is not in the repository"
        for path, cited in broken
        if (path, cited) not in pending
    ]
    assert unexpected == []
    fixed = sorted(pending - set(broken))
    assert fixed == [], f"no longer broken, remove from PENDING: {fixed}"


def test_nothing_points_outside_the_repository() -> None:
    offenders = []
    for path in [*python_files(), *documents()]:
        text = path.read_text(encoding="utf-8")
        if OUTSIDE.search(text):
            offenders.append(path.relative_to(REPO).as_posix())
    assert offenders == []


def test_every_test_a_document_names_is_defined() -> None:
    missing = []
    named = 0
    for path in documents():
        for file, name in TEST_NAME.findall(path.read_text(encoding="utf-8")):
            named += 1
            source = REPO / file
            defined = source.exists() and re.search(rf"^(?:async )?def {name}\(", source.read_text(), re.M)
            if not defined:
                missing.append(f"{path.relative_to(REPO)} names {file}::{name}")
    assert named > 0 and missing == []


def test_reliability_items_cited_exist() -> None:
    items = set(re.findall(r"^### (\d+)\. ", (REPO / "docs" / "RELIABILITY.md").read_text(), re.M))
    assert items == {str(n) for n in range(1, len(items) + 1)}, "items are numbered 1..N without gaps"
    cited = []
    for path in [*python_files(), *documents()]:
        for number in ITEM.findall(path.read_text(encoding="utf-8")):
            cited.append((path.relative_to(REPO).as_posix(), number))
    assert cited, "the code cites docs/RELIABILITY.md items"
    assert [(path, n) for path, n in cited if n not in items] == []


def test_the_citation_patterns_catch_what_they_should() -> None:
    text = "see docs/NOPE.md, tests/consensus/sim.py and `tools/bench/`; RELIABILITY.md item 4; docs/x.md."
    assert [cited for cited, _ in citations(text, document=False)] == [
        "docs/NOPE.md",
        "tests/consensus/sim.py",
        "tools/bench/",
        "docs/x.md",
        "RELIABILITY.md",
    ]
    links = "[the API](API.md#events), protocol/core.md and [x](https://a.b/c.md)"
    assert [cited for cited, _ in citations(links, document=True)] == ["API.md", "protocol/core.md", "API.md"]

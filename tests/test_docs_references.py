"""Every ``method.md §N(.M)`` and bug id ``B<n>`` cited in the source tree resolves in docs/method.md.

A citation is a ``§`` followed by a section number. It belongs to the nearest ``<name>.md`` before it on the
same line, or to method.md when the line names no document (``prior art §5.6``). Citations of other documents
(``metrics.md §2``) are not checked here. ``§N item(s) A[-B]`` must also name numbered items of section N.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
METHOD = ROOT / "docs" / "method.md"
SOURCE_DIRS = ("spliter", "metrics", "ablations", "reports", "tests", "docs")
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".j2", ".html", ".ipynb"}

_SECTION_CITE = re.compile(r"§\s*(\d+(?:\.\d+)?)(?:\s+items?\s+(\d+)(?:\s*-\s*(\d+))?)?")
_DOC_NAME = re.compile(r"([A-Za-z_][\w-]*)\.md\b")
_BUG_ID = re.compile(r"\bB(\d+)\b")
_NOQA = re.compile(r"#\s*noqa\b.*$")  # ruff codes such as B008 are not bug ids
_HEADING = re.compile(r"^#{2,3}\s+(\d+(?:\.\d+)?)\.?\s", re.MULTILINE)
_BUG_ENTRY = re.compile(r"^\*\s+\*\*(B\d+)\b", re.MULTILINE)
_ITEM = re.compile(r"^(\d+)\.\s", re.MULTILINE)


def source_files() -> list[Path]:
    """The tree's text sources, without the document being checked and without this test."""
    files = [ROOT / "README.md"]
    for folder in SOURCE_DIRS:
        files += sorted(p for p in (ROOT / folder).rglob("*") if p.is_file() and p.suffix in SUFFIXES)
    skip = {METHOD.resolve(), Path(__file__).resolve()}
    return [p for p in files if p.resolve() not in skip and ".venv" not in p.parts]


def line_citations(line: str) -> tuple[list[tuple[str, tuple[int, ...]]], list[str]]:
    """The method.md sections (section, cited item numbers) and the bug ids ("B<n>") one line cites."""
    sections = []
    for match in _SECTION_CITE.finditer(line):
        named = _DOC_NAME.findall(line[: match.start()])
        if named and named[-1] != "method":
            continue
        first, last = match.group(2), match.group(3) or match.group(2)
        items = tuple(range(int(first), int(last) + 1)) if first else ()
        sections.append((match.group(1), items))
    return sections, [f"B{n}" for n in _BUG_ID.findall(_NOQA.sub("", line))]


def citations() -> tuple[list[tuple[str, str, tuple[int, ...]]], list[tuple[str, str]]]:
    """Every method.md section citation as (where, section, items) and bug citation as (where, "B<n>")."""
    sections, bugs = [], []
    for path in source_files():
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{path.relative_to(ROOT)}:{lineno}"
            line_sections, line_bugs = line_citations(line)
            sections += [(where, section, items) for section, items in line_sections]
            bugs += [(where, bug) for bug in line_bugs]
    return sections, bugs


def method_text() -> str:
    if not METHOD.is_file():
        pytest.fail(f"{METHOD} is missing: the source tree cites it (method.md §N and bug ids B<n>)")
    return METHOD.read_text(encoding="utf-8")


def defined_sections(text: str) -> list[str]:
    return _HEADING.findall(text)


def section_body(text: str, section: str) -> str:
    """The text under a section's heading, up to the next heading of the same or a higher level."""
    level = 2 if "." not in section else 3
    start = re.search(rf"^#{{{level}}}\s+{re.escape(section)}\.?\s.*$", text, re.MULTILINE)
    assert start is not None, f"docs/method.md has no heading for §{section}"
    end = re.compile(rf"^#{{2,{level}}}\s", re.MULTILINE).search(text, start.end())
    return text[start.end() : end.start() if end else len(text)]


def test_the_tree_cites_method_sections_and_bug_ids():
    sections, bugs = citations()
    cited = {s for _, s, _ in sections}
    # Known citations (spliter/rotation.py, spliter/rollout.py): the scan itself must find them.
    assert {"4.1", "4.2", "4.3", "6"} <= cited
    assert {"B4", "B22", "B23"} <= {b for _, b in bugs}


def test_every_cited_section_exists():
    text = method_text()
    defined = set(defined_sections(text))
    sections, _ = citations()
    missing = sorted({(s, where) for where, s, _ in sections if s not in defined})
    assert not missing, f"sections cited but not in docs/method.md (section, first place): {missing}"


def test_every_cited_item_exists():
    text = method_text()
    sections, _ = citations()
    for where, section, items in sections:
        if items:
            numbered = {int(n) for n in _ITEM.findall(section_body(text, section))}
            absent = [i for i in items if i not in numbered]
            assert not absent, f"{where} cites §{section} item(s) {absent}, which docs/method.md does not number"


def test_every_cited_bug_id_is_described():
    defined = set(_BUG_ENTRY.findall(method_text()))
    _, bugs = citations()
    missing = sorted({(bug, where) for where, bug in bugs if bug not in defined})
    assert not missing, f"bug ids cited but not described in docs/method.md §8 (id, place): {missing}"


def test_sections_and_bug_ids_are_defined_once():
    text = method_text()
    for kind, names in (("section", defined_sections(text)), ("bug id", _BUG_ENTRY.findall(text))):
        repeated = sorted({n for n in names if names.count(n) > 1})
        assert not repeated, f"docs/method.md defines the {kind}s {repeated} more than once"


def test_bug_ids_run_from_b1_to_b23_without_gaps():
    ids = sorted(int(b[1:]) for b in _BUG_ENTRY.findall(method_text()))
    assert ids == list(range(1, 24))


def test_the_scan_skips_other_documents_and_ruff_codes():
    line = "see metrics.md §2 and method.md §4.2, §5.7; prior art §5.6 (§6 items 2-3)  # noqa: B008"
    assert line_citations(line) == ([("4.2", ()), ("5.7", ()), ("5.6", ()), ("6", (2, 3))], [])
    assert line_citations("fixes B2/B3 and B23, not B008x or AB12") == ([], ["B2", "B3", "B23"])

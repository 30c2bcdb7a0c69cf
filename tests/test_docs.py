"""The docs a newcomer reads: a README that fits in five minutes, links that lead somewhere, and no
path of the machine the docs were written on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
LINKED = [README, *DOCS, REPO / "data" / "README.md"]
ALL_DOCS = [README, *DOCS, *sorted((REPO / "data").rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
ABSOLUTE = ("/work/", "/home/", "/root/", "/Users/", "C:\\")


def rel(p: Path) -> str:
    return p.relative_to(REPO).as_posix()


def prose(text: str) -> str:
    """The text outside code blocks and inline code (links there are examples, not links)."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def slugs(path: Path) -> set[str]:
    """GitHub's anchors for a markdown file's headings."""
    out: set[str] = set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        if m := re.match(r"#{1,6}\s+(.*)", line):
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            n, base = 0, slug
            while slug in out:
                n += 1
                slug = f"{base}-{n}"
            out.add(slug)
    return out


def test_readme_fits_in_200_lines_and_keeps_its_sections():
    text = README.read_text()
    assert len(text.splitlines()) <= 200, len(text.splitlines())
    assert text.index("make demo") < text.index("## ")  # the two commands come first
    assert "make test" in text.split("## ")[0]
    for heading in ("## The pipeline, one command per stage", "## Steer one sentence from Python",
                    "## Results"):
        assert heading in text, heading
    for page in DOCS:  # every docs page is reachable from the README
        assert f"(docs/{page.name}" in text, page.name


@pytest.mark.parametrize("doc", LINKED, ids=rel)
def test_every_relative_link_points_at_an_existing_file(doc):
    broken = []
    for target in LINK.findall(prose(doc.read_text())):
        if re.match(r"[a-z][a-z+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists() or (anchor and dest.suffix == ".md" and anchor not in slugs(dest)):
            broken.append(target)
    assert not broken, f"{rel(doc)}: {broken}"


@pytest.mark.parametrize("doc", ALL_DOCS, ids=rel)
def test_no_absolute_machine_path(doc):
    text = doc.read_text()
    found = [p for p in (*ABSOLUTE, str(REPO)) if p in text]
    assert not found, f"{rel(doc)} names {found}"


PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


@pytest.mark.slow
def test_every_python_block_of_the_readme_runs(tmp_path, monkeypatch):
    """The README's Python is what a newcomer pastes first: each block runs, in order, in one
    namespace, from the repository root."""
    blocks = PYTHON_BLOCK.findall(README.read_text())
    assert blocks, "the README shows the API in a ```python block"
    assert all(len(b.strip().splitlines()) <= 10 for b in blocks)
    monkeypatch.chdir(REPO)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - the docs' own code

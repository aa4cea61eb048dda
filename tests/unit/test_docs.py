"""The README and docs/ hold together: every link and picture exists, the README stays one screen,
and docs/results.md is what ``bench/report.py`` writes from ``bench/results/*.json`` now."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# [text](target) and ![alt](target), the target up to whitespace or ")"; code spans are dropped first.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, flags=re.M):
        slug = _slug(heading)
        count = seen.get(slug, 0)
        anchors.add(slug if count == 0 else f"{slug}-{count}")
        seen[slug] = count + 1
    return anchors


def _links(path: Path) -> list[str]:
    return LINK.findall(CODE.sub("", path.read_text(encoding="utf-8")))


def test_the_pages_exist():
    names = {p.name for p in PAGES}
    assert {"guide.md", "data.md", "models.md", "evaluation.md", "results.md", "benchmarks.md", "serving.md",
            "architecture.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_and_picture_exists(page):
    broken = []
    for target in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, fragment = target.partition("#")
        resolved = page if not path_part else (page.parent / unquote(path_part)).resolve()
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif fragment and resolved.suffix == ".md" and fragment not in _anchors(resolved):
            broken.append(f"{target}: no heading #{fragment} in {resolved.relative_to(REPO)}")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)


def test_every_picture_in_docs_is_shown_somewhere():
    shown = set()
    for page in PAGES:
        for target in _links(page):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):
                shown.add((page.parent / unquote(target.partition("#")[0])).resolve())
    pictures = [p.resolve() for p in (REPO / "docs").rglob("*") if p.suffix.lower() in (".png", ".jpg", ".gif", ".svg")]
    unused = sorted(p.relative_to(REPO).as_posix() for p in pictures if p not in shown)
    assert not unused, f"pictures no page links to (link them or delete them): {unused}"


def test_readme_is_one_screen_and_speaks_to_a_user():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 160
    assert not re.search(r"\bissues?\b", text, re.I), "the README names issues: say what things do instead"
    # The two commands CI relies on (.ci/run runs scripts/test.sh).
    assert "streamlit run app.py" in text and "bash scripts/test.sh" in text


def test_results_page_is_up_to_date():
    out = subprocess.run([sys.executable, str(REPO / "bench" / "report.py"), "--check"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, (out.stderr or out.stdout) + "\nrun: python bench/report.py"

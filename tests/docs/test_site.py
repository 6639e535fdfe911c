"""The docs site builds with ``mkdocs build --strict`` (every page in the nav, every link and
anchor resolves, every included file exists), and the README stays a short front door."""

import html
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.docs.code_facts import ROOT

README = ROOT / "README.md"
DOCS = ROOT / "docs"
SNIPPET = re.compile(r'--8<-- "([^":]+)(?::([\w-]+))?"')


def snippets() -> list[tuple[str, str, str | None]]:
    """(page, file, section) of every line of the docs that includes a file (pymdownx.snippets).
    A line that starts like one but is not exactly one (``ruff format`` turns a snippet line in
    a Python block into ``--8 < --"…"``) is returned with file None, to fail below."""
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        if "_incoming" in page.parts:
            continue
        for line in page.read_text().splitlines():
            if not re.match(r"\s*--8\s*<", line):
                continue
            match = SNIPPET.fullmatch(line.strip())
            name = page.relative_to(DOCS).as_posix()
            found.append((name, *match.groups()) if match else (name, None, line.strip()))
    return found


def section_text(path: str, section: str | None) -> str:
    text = (ROOT / path).read_text()
    if section is None:
        return text
    start, end = f"--8<-- [start:{section}]", f"--8<-- [end:{section}]"
    assert start in text and end in text, f"{path} has no section {section!r}"
    return text.split(start, 1)[1].split(end, 1)[0].split("\n", 1)[1]


def test_every_snippet_line_includes_a_section_that_exists():
    found = snippets()
    assert len(found) >= 10  # the tutorial's and the API guide's
    broken = [(page, line) for page, path, line in found if path is None]
    assert broken == [], "not a snippet line (keep ruff format off it: <!-- fmt: off -->)"
    for _, path, section in found:
        assert section_text(path, section).strip(), (path, section)


def test_the_site_builds_strictly(tmp_path):
    mkdocs = shutil.which("mkdocs", path=os.path.dirname(sys.executable))
    assert mkdocs, "mkdocs is a dev dependency (pip install -e '.[dev]')"
    done = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # every included section is on its page: the code itself, not the marker
    for page, path, section in snippets():
        built = tmp_path / "site" / page.removesuffix("index.md").removesuffix(".md") / "index.html"
        text = html.unescape(re.sub(r"<[^>]+>", "", built.read_text()))
        assert not re.search(r"--8\s*<", text), page
        first = next(
            line.strip() for line in section_text(path, section).splitlines() if line.strip()
        )
        assert first in text, (page, path, section)


def test_the_readme_is_short_and_says_the_two_commands():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    assert "make demo" in text and "make test" in text


@pytest.mark.parametrize(
    "target",
    sorted(set(re.findall(r"\]\(((?!https?:|#)[^)\s]+)\)", README.read_text()))),
)
def test_every_link_of_the_readme_leads_somewhere(target):
    assert (ROOT / target.split("#")[0]).exists(), target


def test_the_docs_map_of_the_readme_covers_every_page():
    """Every page of the nav is reachable from the README's map."""
    nav_pages = set(re.findall(r":\s+([\w/-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M))
    linked = {
        t.removeprefix("docs/") for t in re.findall(r"\]\((docs/[^)#\s]+)", README.read_text())
    }
    assert sorted(nav_pages - linked) == []

"""The docs site builds with ``mkdocs build --strict`` (every page in the nav, every link and
anchor resolves, every included file exists), and the README stays a short front door."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.docs.code_facts import ROOT

README = ROOT / "README.md"


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
    tutorial = (tmp_path / "site" / "tutorial" / "first-process" / "index.html").read_text()
    assert "expense.find_approver" in tutorial  # the included code is there, not the marker
    assert "--8&lt;--" not in tutorial and "--8<--" not in tutorial


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

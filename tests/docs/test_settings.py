"""docs/reference/settings.md lists every environment variable the code reads, and only those."""

import re

from tests.docs.code_facts import ROOT, env_vars_read

PAGE = ROOT / "docs" / "reference" / "settings.md"


def documented() -> set[str]:
    """The variables of the page's tables: the backticked names of each row's first cell."""
    names = set()
    for line in PAGE.read_text().splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", first))
    return names


def test_every_variable_the_code_reads_is_documented():
    read = env_vars_read()
    missing = {name: read[name] for name in sorted(set(read) - documented())}
    assert missing == {}, "read by the code, not in docs/reference/settings.md"


def test_every_documented_variable_is_read_by_the_code():
    assert sorted(documented() - set(env_vars_read())) == []


def test_the_reader_finds_every_way_of_reading(tmp_path, monkeypatch):
    """os.environ.get, os.environ[...], os.getenv, env_bool, `in os.environ`, a constant."""
    from tests.docs import code_facts

    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "x.py").write_text(
        "import os\nLANE = 'E_CONST'\n"
        "a = os.environ.get('E_GET', '')\nb = os.environ['E_ITEM']\nc = os.getenv('E_GETENV')\n"
        "d = env_bool('E_BOOL')\ne = 'E_IN' in os.environ\nf = os.environ.get(LANE)\n"
        "os.environ['E_WRITTEN'] = '1'\n"
    )
    monkeypatch.setattr(code_facts, "ROOT", tmp_path)
    assert set(code_facts.env_vars_read("config")) == {
        "E_GET",
        "E_ITEM",
        "E_GETENV",
        "E_BOOL",
        "E_IN",
        "E_CONST",
    }

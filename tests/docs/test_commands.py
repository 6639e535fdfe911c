"""docs/reference/commands.md: every command of the project is there, with options that exist."""

import re

import pytest
from django.core.management import get_commands, load_command_class
from django.core.management.base import BaseCommand

from tests.docs.code_facts import ROOT, management_commands

PAGE = ROOT / "docs" / "reference" / "commands.md"


def rows() -> dict[str, str]:
    """command name -> the usage written in the first cell (``manage.py NAME [--opt X] ...``)."""
    found = {}
    for line in PAGE.read_text().splitlines():
        usage = re.match(r"\| `manage\.py (\w+)([^`]*)`", line)
        if usage:
            found[usage.group(1)] = usage.group(2)
    return found


def options_of(name: str) -> set[str]:
    command = load_command_class(get_commands()[name], name)
    parser = command.create_parser("manage.py", name)
    return {option for action in parser._actions for option in action.option_strings}


def test_every_command_of_the_project_is_documented():
    assert sorted(set(management_commands()) - set(rows())) == []


@pytest.mark.parametrize("name", sorted(rows()))
def test_every_documented_command_and_option_exists(name):
    assert name in get_commands(), f"manage.py {name}: no such command"
    written = set(re.findall(r"--[a-z][a-z-]*", rows()[name]))
    assert written <= options_of(name), f"manage.py {name}: {written - options_of(name)}"


@pytest.mark.parametrize("name", sorted(management_commands()))
def test_every_option_of_the_project_commands_is_documented(name):
    """Options a person would use (not Django's own, like --verbosity)."""
    bare = BaseCommand().create_parser("manage.py", "bare")
    django_own = {option for action in bare._actions for option in action.option_strings}
    own = {o for o in options_of(name) - django_own if o.startswith("--")}
    written = set(re.findall(r"--[a-z][a-z-]*", rows()[name]))
    assert own <= written, f"manage.py {name}: undocumented {own - written}"

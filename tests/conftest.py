"""Shared fixtures. Real parts everywhere: the test database is the one DATABASE_URL names."""

import json
from pathlib import Path

import pytest

from processes import engine
from processes.events import Actor

DEFINITIONS = Path(__file__).resolve().parent.parent / "processes" / "definitions"


@pytest.fixture
def system_actor():
    return Actor.system("test")


@pytest.fixture
def import_definition(db, system_actor):
    """Import and publish a definition dict (or a reference file name such as "pizza.json")."""

    def _import(data, key=None):
        if isinstance(data, str):
            data = json.loads((DEFINITIONS / data).read_text())
        definition, _ = engine.definition_import(data=data, key=key, actor=system_actor)
        return definition

    return _import


@pytest.fixture
def pizza(import_definition):
    return import_definition("pizza.json", key="pizza")


def task_states(process):
    return {t.name: t.state for t in process.tasks.order_by("id")}

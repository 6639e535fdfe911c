"""docs/reference/definition-fields.md is what scripts/docs_reference.py writes from the schema."""

import importlib.util

from tests.docs.code_facts import ROOT


def load_generator():
    spec = importlib.util.spec_from_file_location(
        "docs_reference", ROOT / "scripts" / "docs_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_page_is_the_generated_one():
    generator = load_generator()
    assert generator.PAGE.read_text() == generator.render(), (
        "docs/reference/definition-fields.md is stale: run .venv/bin/python scripts/docs_reference.py"
    )


def test_every_field_of_the_schema_is_on_the_page():
    from processes.spec.schema import definition_schema

    schema = definition_schema()
    page = load_generator().PAGE.read_text()
    fields = [*schema["properties"], *schema["$defs"]["task"]["properties"]]
    fields += schema["$defs"]["stage"]["properties"]
    assert [f for f in fields if f"| `{f}` |" not in page] == []

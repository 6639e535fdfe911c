"""Write docs/reference/definition-fields.md from the definition language's JSON Schema.

    .venv/bin/python scripts/docs_reference.py          # write the page
    .venv/bin/python scripts/docs_reference.py --check  # exit 1 when the page is out of date

The schema (``processes/spec/schema.py``) is the one home of every field's type and wording;
``tests/docs/test_reference.py`` fails when the committed page differs from what this writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "reference" / "definition-fields.md"

sys.path.insert(0, str(ROOT))

from processes.spec import schema as spec_schema  # noqa: E402  (pure: no Django set-up needed)
from processes.spec import schema_words  # noqa: E402

PATTERN_WORDS = {
    schema_words.KEY: "key (lower-case letters, digits, `_ . -`; at most 100)",
    schema_words.NAME: "name (letters, digits, `_`, space, `. : -`; at most 100)",
    schema_words.VAR_PATH: "variable path (`a.b.c`)",
    schema_words.IDENTIFIER: "identifier (letters, digits, `_`)",
    schema_words.TASK_TYPE_PATTERN: "`SERVICE`, `HUMAN`, `PROCESS`, `TIMER` or `MESSAGE` (any case)",
    schema_words.RETENTION_TEXT: "years, months, weeks or days (`P7Y`, `P90D`)",
    r"\S": "text",
    "^[A-Z]{3}$": "currency code (`EUR`)",
}
SECTIONS = {  # $defs shown as their own table, in this order, with a title
    "stage": "Stage",
    "task": "Task",
    "retry": "retry",
    "condition_leaf": "condition",
    "outcome_options": "outcomes: options of an outcome",
    "form_field": "form: a field",
    "field": "input and result: a field",
    "list_items": "items: what a list holds",
    "escalation": "escalation",
    "summary_item": "summary: an item",
    "process_call": "process (a PROCESS task's call)",
    "on_error": "on_error",
}


def anchor(name: str) -> str:
    return SECTIONS[name].split(" ")[0].split(":")[0].lower().replace("_", "-")


def kind(schema: dict) -> str:
    """A property's accepted values, in words."""
    if isinstance(schema, dict) and "x-typed" in schema:  # checked on its task type only
        return kind(schema["x-typed"])
    if schema is True or not set(schema) - {"description", "default"}:
        return "any"
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        if name == "duration":
            return "duration"
        if name == "condition":
            return "[condition](#condition)"
        return f"[object](#{anchor(name)})" if name in SECTIONS else name
    if "enum" in schema:
        if schema["enum"] == schema_words.EMPTY:
            return "empty"
        return "one of " + ", ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    if "anyOf" in schema:
        kinds = [kind(s) for s in schema["anyOf"] if s.get("type") != "null"]
        nullable = any(s.get("type") == "null" for s in schema["anyOf"])
        return " or ".join(dict.fromkeys(kinds)) + (" (or null)" if nullable else "")
    t = schema.get("type")
    if t == "string":
        words = PATTERN_WORDS.get(schema.get("pattern", ""), "text")
        if schema.get("pattern", "").startswith("^([^{}]"):
            words = "template (`SAL-{period}-{item}`)"
        if "maxLength" in schema and words == "text" and schema["maxLength"] != 200:
            words += f" (at most {schema['maxLength']})"
        return words
    if t == "array":
        items = kind(schema.get("items", {}))
        return f"list of {items}" + (" (distinct)" if schema.get("uniqueItems") else "")
    if t == "object":
        if "additionalProperties" in schema and isinstance(schema["additionalProperties"], dict):
            return f"object: name → {kind(schema['additionalProperties'])}"
        return "object"
    if t in ("integer", "number"):
        low, high = schema.get("minimum"), schema.get("maximum")
        word = "whole number" if t == "integer" else "number"
        if low is not None and high is not None and abs(high) < 10**6:
            return f"{word} {low:g}–{high:g}"
        return word
    if t == "boolean":
        return "`true` or `false`"
    return str(t)


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def rows(schema: dict, *, types_column: bool = False) -> list[str]:
    required = set(schema.get("required", ()))
    head = "| field | value | default | what |"
    if types_column:
        head = "| field | value | task types | default | what |"
    lines = [head, head_rule(head)]
    for name, prop in schema["properties"].items():
        default = prop.get("default")
        default = "required" if name in required else ("" if default is None else f"`{default}`")
        if isinstance(prop.get("default"), bool):
            default = f"`{str(prop['default']).lower()}`"
        parts = [f"`{name}`", kind(prop)]
        if types_column:
            parts.append(", ".join(prop.get("x-task-types", ["all"])))
        parts += [default, prop.get("description", "")]
        lines.append("| " + " | ".join(cell(p) for p in parts) + " |")
    return lines


def head_rule(head: str) -> str:
    return "|" + "---|" * (head.count("|") - 1)


def render() -> str:
    schema = spec_schema.definition_schema()
    defs = schema["$defs"]
    out = [
        "# Definition fields",
        "",
        "<!-- Generated by scripts/docs_reference.py from processes/spec/schema.py: edit the",
        "     schema's descriptions there, then run the script (a test compares this page). -->",
        "",
        "Every field of a definition, from the JSON Schema the server publishes at",
        f"`GET {schema_words.SCHEMA_PATH}` (point an editor at it to check a file as you type;",
        "see [the definition language](definition-language.md) for what the fields do together).",
        "The schema checks shapes; the server's validator also checks what needs the whole",
        "document and reports every problem with its JSON path. What the typed fields of",
        "`input`, `result` and `form` accept, convert and refuse, and where each is checked:",
        "[typed process data](typed-data.md).",
        "",
        "## Definition",
        "",
        *rows(schema),
        "",
        "One of `workflow_name` or `name` is required.",
        "",
        "A **duration** is an " + defs["duration"]["description"][3:],
        "",
    ]
    for name, title in SECTIONS.items():
        section = defs[name]
        if name == "outcome_options":
            section = next(s for s in section["anyOf"] if s.get("type") == "object")
        if name == "retry":
            section = next(s for s in section["anyOf"] if s.get("type") == "object")
        out += [f"## {title}" + (" {#" + anchor(name) + "}" if anchor(name) != title else ""), ""]
        if name in ("retry", "condition_leaf") or "description" in defs[name]:
            out += [defs.get(name if name != "condition_leaf" else "condition")["description"], ""]
        out += [*rows(section, types_column=name == "task"), ""]
        if name == "retry":
            out += ["A plain number is `max_attempts`.", ""]
        if name == "condition_leaf":
            out += [
                'Combine leaves with `{"all": [...]}`, `{"any": [...]}` and `{"not": ...}`.',
                "",
            ]
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if PAGE.read_text() != text:
            print(f"{PAGE.relative_to(ROOT)} is out of date: run scripts/docs_reference.py")
            return 1
        return 0
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(text)
    print(PAGE.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())

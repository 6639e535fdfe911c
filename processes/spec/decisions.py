"""A person's decision on a human task, checked against the spec's outcomes and form: the rule
the inbox form, the API and external decisions share. The form's values go through the one
field check of declared data (``spec.data``)."""

from __future__ import annotations

from typing import Any

from processes.spec.data import NUMBER_LIMIT, validate
from processes.spec.types import TaskSpec


def validate_decision(
    task_spec: TaskSpec, decision: Any, data: Any
) -> tuple[dict, dict[str, list[str]]]:
    """Check a decision against the spec's outcomes and form; return (clean data, field errors)."""
    errors: dict[str, list[str]] = {}
    if task_spec.outcomes:
        if decision not in task_spec.outcomes:
            errors["decision"] = [f"must be one of: {', '.join(task_spec.outcomes)}"]
    elif decision not in (None, "", "complete"):
        errors["decision"] = ["this task takes no decision"]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return {}, {**errors, "data": ["must be an object"]}
    # An empty form input is no value: left out, or "required" when the field is.
    given = {k: v for k, v in data.items() if v not in (None, "")}
    clean, problems = validate(task_spec.form, given, context={"decision": decision})
    for path, messages in problems.items():
        errors[f"data.{path}"] = messages
    return clean, errors


FORM_NUMBER_LIMIT = NUMBER_LIMIT  # integer and decimal form fields

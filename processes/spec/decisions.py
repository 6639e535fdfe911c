"""A person's decision on a human task, checked against the spec's outcomes and form: the rule
the inbox form, the API and external decisions share."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from processes.spec.types import FormField, TaskSpec


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
    clean: dict[str, Any] = {}
    for f in task_spec.form:
        value = data.get(f.name)
        if value in (None, ""):
            if f.required:
                errors[f"data.{f.name}"] = ["this field is required"]
            continue
        try:
            clean[f.name] = _coerce_form_value(f, value)
        except ValueError as exc:
            errors[f"data.{f.name}"] = [str(exc)]
    unknown = set(data) - {f.name for f in task_spec.form}
    for name in sorted(unknown):
        errors[f"data.{name}"] = ["unknown field"]
    return clean, errors


FORM_NUMBER_LIMIT = Decimal("1e15")  # integer and decimal form fields


def _coerce_form_value(f: FormField, value: Any) -> Any:
    if f.type in ("string", "text"):
        if not isinstance(value, str):
            raise ValueError("must be text")
        return value
    if f.type == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "on", "off", "1", "0"):
            return value.lower() in ("true", "on", "1")
        raise ValueError("must be true or false")
    if f.type == "choice":
        if value not in f.choices:
            raise ValueError(f"must be one of: {', '.join(f.choices)}")
        return value
    if f.type == "date":
        if not isinstance(value, str):
            raise ValueError("must be a date YYYY-MM-DD")
        try:
            return dt.date.fromisoformat(value).isoformat()
        except ValueError:
            raise ValueError("must be a date YYYY-MM-DD") from None
    # integer / decimal
    if isinstance(value, bool):
        raise ValueError("must be a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError("must be a number") from None
    if not number.is_finite():
        raise ValueError("must be a finite number")
    if f.type == "integer" and number != number.to_integral_value():
        raise ValueError("must be a whole number")
    if f.min is not None and number < Decimal(str(f.min)):
        raise ValueError(f"must be at least {f.min:g}")
    if f.max is not None and number > Decimal(str(f.max)):
        raise ValueError(f"must be at most {f.max:g}")
    # Bounded before int()/float(): a huge value would become inf (not storable as JSON) or an
    # integer of millions of digits.
    if abs(number) > FORM_NUMBER_LIMIT:
        raise ValueError("must be between -1e15 and 1e15")
    return int(number) if f.type == "integer" else float(number)

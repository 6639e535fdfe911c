"""The definition language: parse and validate JSON into frozen dataclasses.

The native format is a superset of the seed workflow manager's template: any such template
(``workflow_name``, ``component_name``, ``stages[].tasks[]`` with ``parent_task``, ``task_queue``,
``task_type``, ``business_status``, ``assigned_to``) parses unchanged. Validation never raises on
any JSON value: it returns every problem it finds, each with the JSON path where it is.

Pure: nothing here touches the database (the layer every other one may import).

- ``types``: the constants and the dataclasses (``ProcessSpec``, ``TaskSpec``, ...);
- ``parse`` and ``fields``: the parser;
- ``conditions``: conditions and variable paths (``lookup``, ``evaluate_condition``, ...);
- ``decisions``: a person's decision checked against a human task's outcomes and form;
- ``data``: declared, typed process data (``validate``, ``coerce``, ``check_variable_changes``,
  ``free_problems``) and ``normalize_business_key``: the checks every entrance calls;
- ``search``: the ``search`` list, the text a case is found by and the form of a query.
"""

from processes.spec.conditions import (
    MISSING,
    apply_variable_changes,
    describe_condition,
    evaluate_condition,
    lookup,
)
from processes.spec.data import (
    check_variable_changes,
    coerce,
    declared_field,
    declared_variables,
    free_problems,
    moment,
    normalize_business_key,
    text_problem,
    validate,
)
from processes.spec.decisions import FORM_NUMBER_LIMIT, validate_decision
from processes.spec.fields import parse_iso_duration, slugify_key, validate_condition
from processes.spec.flow import call_cycles, task_path
from processes.spec.form_rules import file_problem
from processes.spec.parse import ANY_HANDLER, parse, parse_or_raise
from processes.spec.search import search_term, search_text
from processes.spec.types import (
    BUSINESS_KEY_UNIQUE,
    CONDITION_OPS,
    FORM_FIELD_TYPES,
    INITIATOR,
    KEY_RE,
    KNOWN_TASK_FIELDS,
    NAME_RE,
    ON_FAILURE,
    SUMMARY_FORMATS,
    TASK_TYPES,
    VAR_PATH_RE,
    VISIBILITIES,
    CallSpec,
    Escalation,
    FormField,
    LocalText,
    MessageSpec,
    ProcessSpec,
    RetryPolicy,
    ReworkSpec,
    SpecError,
    SpecValidationError,
    StageSpec,
    SummaryItem,
    TaskSpec,
    in_language,
)

__all__ = [
    "file_problem",
    "LocalText",
    "in_language",
    "ANY_HANDLER",
    "BUSINESS_KEY_UNIQUE",
    "ON_FAILURE",
    "CONDITION_OPS",
    "FORM_FIELD_TYPES",
    "FORM_NUMBER_LIMIT",
    "INITIATOR",
    "KEY_RE",
    "KNOWN_TASK_FIELDS",
    "MISSING",
    "NAME_RE",
    "SUMMARY_FORMATS",
    "TASK_TYPES",
    "VAR_PATH_RE",
    "VISIBILITIES",
    "Escalation",
    "FormField",
    "MessageSpec",
    "ProcessSpec",
    "RetryPolicy",
    "SpecError",
    "SpecValidationError",
    "StageSpec",
    "CallSpec",
    "ReworkSpec",
    "SummaryItem",
    "TaskSpec",
    "apply_variable_changes",
    "check_variable_changes",
    "coerce",
    "declared_field",
    "declared_variables",
    "free_problems",
    "moment",
    "normalize_business_key",
    "text_problem",
    "validate",
    "call_cycles",
    "describe_condition",
    "evaluate_condition",
    "lookup",
    "search_term",
    "search_text",
    "parse",
    "parse_iso_duration",
    "parse_or_raise",
    "slugify_key",
    "task_path",
    "validate_condition",
    "validate_decision",
]

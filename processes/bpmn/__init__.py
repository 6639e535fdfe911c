"""BPMN 2.0: a definition as a diagram (with diagram interchange) and a diagram as a definition.

Pure, like ``spec``: nothing here touches the database. The API, the admin's import form and the
admin's modeler all read a file through ``definition_from_bpmn`` (the one check), then store the
definition it gives as JSON through the engine, as any other import.

- ``definition_from_bpmn(xml)``: the definition, or ``SpecValidationError`` listing every
  problem with the id of the BPMN element it is about;
- ``bpmn_from_definition(data, key)``: the BPMN document of a stored definition.
"""

from __future__ import annotations

from processes import steps
from processes.bpmn.convert import convert
from processes.bpmn.export import build_diagram, task_element_id
from processes.bpmn.read import read
from processes.bpmn.writer import write
from processes.bpmn.xml import BpmnFileError, parse_xml, schema_problems
from processes.spec import ANY_HANDLER, SpecError, SpecValidationError, parse

CONTENT_TYPES = ("application/xml", "text/xml", "application/bpmn+xml")


def definition_from_bpmn(xml: bytes | str, *, known_handlers=None) -> dict:
    """The Flowdesk definition a BPMN file describes; raises ``SpecValidationError`` whose
    errors' paths are BPMN element ids (the process's id for the definition as a whole)."""
    try:
        root = parse_xml(xml)
    except BpmnFileError as exc:
        raise SpecValidationError([SpecError(exc.element, str(exc))]) from None
    problems = schema_problems(root)
    if known_handlers is None or known_handlers is ANY_HANDLER:
        handlers = set(steps.registry.names())
    else:
        handlers = set(known_handlers)
    result = read(root, handlers)
    result.problems[:0] = problems  # not valid BPMN 2.0: said first, with the rest
    data, paths = convert(result)
    if result.problems or data is None:
        raise SpecValidationError([SpecError(e, m) for e, m in _unique(result.problems)])
    _spec, errors = parse(
        data, known_handlers=ANY_HANDLER if known_handlers is ANY_HANDLER else handlers
    )
    if errors:
        raise SpecValidationError([_located(e, paths) for e in errors])
    return data


def bpmn_from_definition(data: dict, key: str) -> bytes:
    """The BPMN 2.0 document (with a layout) of a stored, valid definition stored as ``key``."""
    return write(build_diagram(data, key))


def _located(error: SpecError, paths: dict[str, str]) -> SpecError:
    """A spec error moved to the element its JSON path is in (``stages[1].tasks[0].handler``
    → the task's id, ``handler: ...``)."""
    best = ""
    for prefix in paths:
        if len(prefix) > len(best) and (
            error.path == prefix or error.path.startswith((prefix + ".", prefix + "["))
        ):
            best = prefix
    rest = error.path[len(best) :].lstrip(".")
    message = f"{rest}: {error.message}" if rest else error.message
    return SpecError(paths.get(best, ""), message)


def _unique(problems):
    seen = set()
    for problem in problems:
        if problem not in seen:
            seen.add(problem)
            yield problem


__all__ = [
    "CONTENT_TYPES",
    "bpmn_from_definition",
    "definition_from_bpmn",
    "task_element_id",
]

"""Camunda 7 (``camunda:``) and Camunda 8 (``zeebe:``) extensions read into Flowdesk task fields:
roles and assignees, form fields, job types and external topics, called processes and their
variable mappings. What has no Flowdesk meaning is refused with the reason, never dropped.
"""

from __future__ import annotations

import json
import re

from lxml import etree

from processes.bpmn.xml import BPMN, CAMUNDA, FLOWDESK, ZEEBE, local, namespace, q
from processes.spec.types import KEY_RE, NAME_RE, VAR_PATH_RE

EXPRESSION_RE = re.compile(r"\s*[$#]\{\s*([A-Za-z0-9_.]+)\s*\}\s*\Z")
FEEL_PATH_RE = re.compile(r"\s*=\s*([A-Za-z0-9_.]+)\s*\Z")
# Engine tuning that changes nothing about what runs: read past.
TUNING = {
    "async",
    "asyncBefore",
    "asyncAfter",
    "exclusive",
    "jobPriority",
    "taskPriority",
    "historyTimeToLive",
    "versionTag",
    "isStartableInTasklist",
    "candidateStarterGroups",
    "candidateStarterUsers",
    "priority",
    "failedJobRetryTimeCycle",
}
CAMUNDA_FORM_TYPES = {
    "string": "string",
    "long": "integer",
    "boolean": "boolean",
    "date": "date",
    "enum": "choice",
    **{t: t for t in ("text", "integer", "decimal", "choice")},
}
FORM_JS_TYPES = {
    "textfield": "string",
    "textarea": "text",
    "number": "decimal",
    "checkbox": "boolean",
    "select": "choice",
    "radio": "choice",
    "datetime": "date",
}
FORM_JS_DISPLAY = {"text", "button", "spacer", "separator", "image", "html", "group", "iframe"}
JAVA_CODE = ("class", "delegateExpression", "expression")
TIMER_OR_MESSAGE = "not supported yet (timer/message tasks)"


class Problems(list):
    def add(self, message: str) -> None:
        self.append(message)


def variable(text: str | None) -> str | None:
    """``${a.b}``, ``#{a.b}`` or ``=a.b`` → ``a.b``; None for anything else."""
    if text is None:
        return None
    found = EXPRESSION_RE.match(text) or FEEL_PATH_RE.match(text)
    return found.group(1) if found and VAR_PATH_RE.fullmatch(found.group(1)) else None


def _vendor_attrs(element, problems: Problems, allowed: set[str]) -> dict[str, str]:
    """The element's camunda: attributes; any we don't know is a problem."""
    attrs = {}
    for name, value in element.attrib.items():
        qname = etree.QName(name)
        if qname.namespace != CAMUNDA:
            continue
        if qname.localname in TUNING:
            continue
        if qname.localname not in allowed:
            problems.add(f"camunda:{qname.localname}: not supported")
            continue
        attrs[qname.localname] = value
    return attrs


def _extensions(element) -> list:
    ext = element.find(q(BPMN, "extensionElements"))
    return [] if ext is None else [c for c in ext if isinstance(c.tag, str)]


def _role(groups: str | None, problems: Problems) -> str | None:
    if groups is None:
        return None
    text = groups.strip()
    if text.startswith("="):  # FEEL: a static list or string
        text = text[1:].strip().strip("[]").replace('"', "")
    names = [g.strip() for g in text.split(",") if g.strip()]
    if len(names) != 1 or not NAME_RE.fullmatch(names[0]):
        problems.add(f"candidate groups {groups!r}: a Flowdesk human task has one role (a name)")
        return None
    return names[0]


def _assignee(text: str | None, problems: Problems) -> str | None:
    if text is None:
        return None
    path = variable(text)
    if path is None:
        problems.add(
            f"assignee {text!r}: Flowdesk assigns by role, or to the user named by a variable "
            "(${variable} or =variable)"
        )
    return path


def user_task(element, problems: Problems, forms: dict[str, str]) -> dict:
    """Fields of a userTask from its camunda:/zeebe: extensions."""
    allowed = {"candidateGroups", "assignee", "candidateUsers", "formKey", "formRef"}
    attrs = _vendor_attrs(element, problems, allowed)
    fields: dict = {}
    role = _role(attrs.get("candidateGroups"), problems)
    assignee = _assignee(attrs.get("assignee"), problems)
    if "candidateUsers" in attrs:
        problems.add("candidate users: Flowdesk assigns by role (candidate groups)")
    for name in ("formKey", "formRef"):
        if name in attrs:
            problems.add(
                f"camunda:{name} {attrs[name]!r}: the form is in another file; declare its "
                "fields (camunda:formData) or set form in flowdesk:properties"
            )
    for child in _extensions(element):
        ns, name = namespace(child), local(child)
        if ns == CAMUNDA and name == "formData":
            fields["form"] = _camunda_form(child, problems)
        elif ns == ZEEBE and name == "assignmentDefinition":
            role = _role(child.get("candidateGroups"), problems) or role
            assignee = _assignee(child.get("assignee"), problems) or assignee
            if child.get("candidateUsers"):
                problems.add("candidate users: Flowdesk assigns by role (candidate groups)")
        elif ns == ZEEBE and name == "formDefinition":
            form = _zeebe_form(child, problems, forms)
            if form is not None:
                fields["form"] = form
        else:
            _common(child, fields, problems)
    if role:
        fields["assigned_to"] = role
    if assignee:
        fields["assignee"] = assignee
    return fields


def _common(child, fields: dict, problems: Problems) -> None:
    """Extension elements any task may carry: properties and headers go to the worker."""
    ns, name = namespace(child), local(child)
    if ns == FLOWDESK or (ns == ZEEBE and name == "userTask"):
        return
    if (ns, name) in ((CAMUNDA, "properties"), (ZEEBE, "properties")):
        fields["properties"] = {p.get("name"): p.get("value") for p in child}
    elif ns == ZEEBE and name == "taskHeaders":
        fields["headers"] = {h.get("key"): h.get("value") for h in child}
    else:
        prefix = {CAMUNDA: "camunda", ZEEBE: "zeebe"}.get(ns, ns)
        problems.add(f"{prefix}:{name}: not supported")


def _camunda_form(form_data, problems: Problems) -> list[dict]:
    fields = []
    for field in form_data:
        if local(field) != "formField":
            continue
        name, ftype = field.get("id"), field.get("type", "string")
        item = {"name": name, "type": CAMUNDA_FORM_TYPES.get(ftype, ftype)}
        if ftype not in CAMUNDA_FORM_TYPES:
            problems.add(f"form field {name!r}: type {ftype!r} is not supported")
        if field.get("label"):
            item["label"] = field.get("label")
        if field.get("defaultValue") is not None:
            problems.add(f"form field {name!r}: a default value is not supported")
        choices = [v.get("id") for v in field.iter(q(CAMUNDA, "value"))]
        if choices:
            item["choices"] = choices
        for constraint in field.iter(q(CAMUNDA, "constraint")):
            kind, config = constraint.get("name"), constraint.get("config")
            if kind == "required":
                item["required"] = True
            elif kind in ("min", "max") and _number(config) is not None:
                item[kind] = _number(config)
            elif kind != "readonly":
                problems.add(f"form field {name!r}: the {kind!r} constraint is not supported")
        fields.append(item)
    return fields


def _number(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return int(value) if value.is_integer() else value


def _zeebe_form(definition, problems: Problems, forms: dict[str, str]) -> list[dict] | None:
    key = definition.get("formKey") or ""
    if not key.startswith("camunda-forms:bpmn:") or key.split(":")[-1] not in forms:
        problems.add(
            f"zeebe:formDefinition {key or definition.get('formId')!r}: the form is in another "
            "file; embed it (zeebe:userTaskForm) or set form in flowdesk:properties"
        )
        return None
    try:
        schema = json.loads(forms[key.split(":")[-1]])
    except ValueError:
        problems.add("zeebe:userTaskForm: the embedded form is not valid JSON")
        return None
    fields = []
    for component in schema.get("components", []) if isinstance(schema, dict) else []:
        ctype = component.get("type")
        if ctype in FORM_JS_DISPLAY:
            continue
        if ctype not in FORM_JS_TYPES or not component.get("key"):
            problems.add(f"form component {component.get('key') or ctype!r}: not supported")
            continue
        item = {"name": component["key"], "type": FORM_JS_TYPES[ctype]}
        if component.get("label"):
            item["label"] = component["label"]
        validate = component.get("validate") or {}
        if validate.get("required"):
            item["required"] = True
        for bound in ("min", "max"):
            if isinstance(validate.get(bound), int | float):
                item[bound] = validate[bound]
        if ctype in ("select", "radio"):
            item["choices"] = [str(v.get("value")) for v in component.get("values", [])]
        fields.append(item)
    return fields


def service_task(element, problems: Problems, handlers: set[str]) -> dict:
    """Fields of a service, send, business rule or plain task: a handler or an outside queue."""
    allowed = {"type", "topic", *JAVA_CODE, "resultVariable", "decisionRef"}
    attrs = _vendor_attrs(element, problems, allowed)
    fields: dict = {}
    for name in JAVA_CODE:
        if name in attrs:
            problems.add(
                f"camunda:{name} {attrs[name]!r}: Java code does not run in Flowdesk; make it an "
                'external task (camunda:type="external" camunda:topic) or name a Flowdesk handler'
            )
    if "decisionRef" in attrs:
        problems.add("a DMN decision (camunda:decisionRef): not supported")
    job = attrs.get("topic") if attrs.get("type") == "external" else None
    if attrs.get("type") not in (None, "external"):
        problems.add(f"camunda:type {attrs['type']!r}: not supported")
    for child in _extensions(element):
        ns, name = namespace(child), local(child)
        if ns == ZEEBE and name == "taskDefinition":
            job = child.get("type")
            retries = child.get("retries")
            if retries is not None:
                if retries.strip().isdigit() and 1 <= int(retries) <= 100:
                    fields["retry"] = {"max_attempts": int(retries)}
                else:
                    problems.add(f"retries {retries!r}: a number from 1 to 100")
        elif ns == ZEEBE and name == "calledDecision":
            problems.add("a DMN decision (zeebe:calledDecision): not supported")
        else:
            _common(child, fields, problems)
    if job:
        if job in handlers:
            fields["handler"] = job
        else:
            fields["task_queue"] = job
    return fields


def call_activity(element, problems: Problems) -> dict:
    """A call activity's ``process``: the called definition and the variables passed."""
    allowed = {"calledElementBinding", "calledElementVersion", "calledElementTenantId"}
    attrs = _vendor_attrs(element, problems, allowed)
    called = element.get("calledElement")
    fields: dict = {}
    call: dict = {"input": {}, "output": {}}
    binding = attrs.get("calledElementBinding", "latest")
    if binding == "version" and (attrs.get("calledElementVersion") or "").isdigit():
        call["version"] = int(attrs["calledElementVersion"])
    elif binding != "latest":
        problems.add(f"camunda:calledElementBinding {binding!r}: only latest or a version")
    for child in _extensions(element):
        ns, name = namespace(child), local(child)
        if ns == CAMUNDA and name in ("in", "out"):
            source, target = child.get("source"), child.get("target")
            if not source or not target or child.get("variables") or child.get("businessKey"):
                problems.add(f"camunda:{name}: only source and target variables are supported")
                continue
            call["input" if name == "in" else "output"][target] = source
        elif ns == ZEEBE and name == "calledElement":
            called = child.get("processId") or called
        elif ns == ZEEBE and name == "ioMapping":
            for mapping in child:
                source = variable(mapping.get("source"))
                if source is None:
                    problems.add(f"zeebe mapping {mapping.get('source')!r}: only =variable")
                    continue
                call["input" if local(mapping) == "input" else "output"][mapping.get("target")] = (
                    source
                )
        else:
            _common(child, fields, problems)
    if called is not None:
        key = called.strip().lower()
        if KEY_RE.fullmatch(key):
            call["definition"] = key
        else:
            problems.add(f"called element {called!r}: not a Flowdesk definition key")
    fields["process"] = {k: v for k, v in call.items() if v != {}}
    return fields

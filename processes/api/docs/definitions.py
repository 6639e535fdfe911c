"""OpenAPI of ``/api/definitions/``: list, import, one definition, the definition language."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema

from processes.api import schema as s
from processes.api import serializers as ser

list_definitions = extend_schema(
    tags=["definitions"],
    summary="List definitions",
    description="The newest published version of every definition the caller may use.",
    responses={200: ser.DefinitionSerializer(many=True), **s.READ_ERRORS},
)

import_definition = extend_schema(
    tags=["definitions"],
    summary="Import a definition",
    description=(
        "The body is the definition itself: a native spec or a seed-002 template, verbatim "
        "(`application/json`), or a BPMN 2.0 file from Camunda Modeler (7 or 8) or bpmn.io "
        "(`application/xml`, `text/xml` or `application/bpmn+xml`), read into a definition "
        "first. It is validated and published as the next version of its key (`?key=` "
        "overrides the key derived from `key`, `component_name` or `workflow_name`; for BPMN, "
        "the process id). The same spec as the newest version → 200 with that version. "
        "Invalid → 400 with `error.errors` listing every problem with its JSON path (for a "
        "BPMN file: the id of the element it is about). A new key needs the global permission "
        "`processes.add_processdefinition`; a new version of an existing key needs "
        "`publish_definition` on it (403 otherwise). A `component_name` already owned by "
        "another key → 409 naming the owner."
    ),
    parameters=[
        OpenApiParameter("key", OpenApiTypes.STR, description="Definition key to use."),
        s.IDEMPOTENCY_KEY,
    ],
    request={
        "application/json": OpenApiTypes.OBJECT,
        "application/xml": OpenApiTypes.STR,
        "text/xml": OpenApiTypes.STR,
        "application/bpmn+xml": OpenApiTypes.STR,
    },
    responses={
        201: ser.DefinitionImportedSerializer,
        200: ser.DefinitionImportedSerializer,
        **s.WRITE_ERRORS,
        400: s.error(
            400,
            "The definition is not valid: every problem with its JSON path.",
            s.error_example(
                400,
                "invalid_definition",
                "the definition has 1 problem(s)",
                {"stages[2].tasks[0].parent_task": ["unknown task 'x'"]},
                errors=[{"path": "stages[2].tasks[0].parent_task", "message": "unknown task 'x'"}],
            ),
        ),
    },
    examples=[
        s.request_example("seed template", s.PIZZA_TEMPLATE),
        s.response_example("imported", {"key": "pizza", "version": 1, "created": True}, "201"),
    ],
)

definition_schema = extend_schema(
    tags=["definitions"],
    summary="The definition language as JSON Schema",
    description=(
        "The JSON Schema (draft 2020-12) of a process definition, for editors: point a "
        "definition file's `$schema` (or the editor's JSON schema setting) at this URL. It "
        "checks the shape of a definition (fields, types, enumerations, which task types take "
        "which fields); the validator behind `POST /api/definitions/` stays the authority and "
        "also checks what needs the whole document. Public: no authentication."
    ),
    auth=[],
    responses={200: OpenApiTypes.OBJECT, 400: s.BAD_REQUEST},
)

definition_bpmn = extend_schema(
    tags=["definitions"],
    summary="One definition as BPMN 2.0",
    description=(
        "The newest published version (or `?version=`) as BPMN 2.0 XML with diagram "
        "interchange: stages as lanes, tasks as user/service tasks and call activities, "
        "conditions on sequence flows (FEEL), Flowdesk's own fields in one "
        "`flowdesk:properties` element per task. Opens in bpmn.io and Camunda Modeler; "
        "importing it again gives back the same definition."
    ),
    parameters=[
        OpenApiParameter("version", OpenApiTypes.INT, description="A version of this key."),
    ],
    responses={(200, "application/xml"): OpenApiTypes.STR, **s.READ_ERRORS},
)

definition_detail = extend_schema(
    tags=["definitions"],
    summary="One definition",
    description="Its newest published version (with the spec) and the list of versions.",
    responses={200: ser.DefinitionDetailSerializer, **s.READ_ERRORS},
)


migrate_instances = extend_schema(
    tags=["definitions"],
    summary="Move running instances to another version",
    description=(
        "Migrates the chosen active instances (`instances`, or every active one of "
        "`from_version`) to the published `to_version`, with a task `mapping` (a task not "
        "named keeps its name, if `to_version` has it, else it is dropped). A plan is computed "
        "for every instance first: which tasks map (with their state), which are dropped, which "
        "are new, which would become ready — or why the instance can't move (not active, a "
        "step running, a dropped task that has a history, a task changing type, a stage "
        "missing). With `dry_run` nothing moves; otherwise each instance the plan allows is "
        "moved in its own transaction, its row locked and its plan computed again, and a "
        "`process_migrated` event is recorded. Needs `publish_definition` and "
        "`operate_process` on the definition."
    ),
    parameters=[s.IDEMPOTENCY_KEY],
    request=ser.MigrationRequestSerializer,
    responses={200: ser.MigrationResultSerializer, **s.WRITE_ERRORS},
    examples=[
        s.request_example(
            "migrate",
            {"from_version": 1, "to_version": 2, "mapping": {"bonus": "bonus_v2"}, "dry_run": True},
        ),
        s.response_example(
            "plan",
            {
                "dry_run": True,
                "summary": {"planned": 1, "migrated": 0, "refused": 0},
                "instances": [
                    {
                        "process": s.PROCESS_ID,
                        "business_key": "SAL-2026-11-E001",
                        "state": "running",
                        "ok": True,
                        "refusal": "",
                        "mapped": [
                            {"from": "salary_base", "to": "salary_base", "state": "completed"},
                            {"from": "bonus", "to": "bonus_v2", "state": "scheduled"},
                        ],
                        "dropped": [],
                        "added": ["check_budget"],
                        "ready": ["check_budget"],
                        "migrated": False,
                    }
                ],
            },
            "200",
        ),
    ],
)

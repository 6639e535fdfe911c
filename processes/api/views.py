"""Thin DRF views: validate input, check the caller's permission, call the engine or a selector.

Paths and payloads are the contract of DESIGN §6; every error is ``{"error": {...}}``.
"""

from __future__ import annotations

import django_filters
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.signals import user_logged_in
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from processes import authority, engine, selectors
from processes.api import schema as s
from processes.api import serializers as ser
from processes.api.base import ApiView, Pagination
from processes.errors import Forbidden, InvalidInput, NotFound
from processes.events import Actor
from processes.models import ProcessDefinition, ProcessInstance, ProcessState, TaskInstance


def _actor(request) -> Actor:
    return Actor.for_user(request.user)


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _require(request, perm: str, definition_key: str, what: str) -> None:
    """403 when the caller sees the definition but lacks ``perm``; 404 when it sees nothing."""
    user = request.user
    if authority.has_definition_perm(user, perm, definition_key):
        return
    if authority.has_definition_perm(user, authority.ANY, definition_key):
        raise Forbidden(f"you may not {what} of {definition_key!r}")
    raise NotFound(f"no published definition {definition_key!r}")


class ListView(ApiView, GenericAPIView):
    pagination_class = Pagination

    def page(self, queryset, serializer_class):
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(serializer_class(page, many=True).data)


# --- auth -----------------------------------------------------------------------------------------


class TokenView(ApiView):
    """Exchange a username and password for an API token."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        tags=["auth"],
        summary="Get an API token",
        description="Send it as `Authorization: Token <token>` on every other request.",
        request=ser.TokenRequestSerializer,
        responses={
            200: ser.TokenSerializer,
            400: s.BAD_REQUEST,
            413: s.TOO_LARGE,
            415: s.UNSUPPORTED,
            429: s.LOCKED_OUT,
        },
        examples=[
            OpenApiExample(
                "credentials",
                value={"username": "shop-frontend", "password": "s3cret"},
                request_only=True,
            ),
            OpenApiExample(
                "token",
                value={"token": "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"},
                response_only=True,
            ),
        ],
        auth=[],
    )
    def post(self, request):
        data = _valid(ser.TokenRequestSerializer, request.data)
        user = authenticate(request._request, username=data["username"], password=data["password"])
        if user is None or not user.is_active:
            raise InvalidInput("unable to log in with the given credentials")
        # A login like the page's: django-axes resets the failure count, last_login is kept.
        user_logged_in.send(sender=type(user), request=request._request, user=user)
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


# --- definitions ----------------------------------------------------------------------------------


class DefinitionListView(ListView):
    queryset = ProcessDefinition.objects.none()  # the schema's model; reads go through selectors

    @extend_schema(
        tags=["definitions"],
        summary="List definitions",
        description="The newest published version of every definition the caller may use.",
        responses={200: ser.DefinitionSerializer(many=True), **s.READ_ERRORS},
    )
    def get(self, request):
        return self.page(selectors.definitions_for(request.user), ser.DefinitionSerializer)

    @extend_schema(
        tags=["definitions"],
        summary="Import a definition",
        description=(
            "The body is the definition itself: a native spec or a seed-002 template, verbatim. "
            "It is validated and published as the next version of its key (`?key=` overrides "
            "the key derived from `key`, `component_name` or `workflow_name`). The same spec as "
            "the newest version → 200 with that version. Invalid → 400 with `error.errors` "
            "listing every problem with its JSON path. A new key needs the global permission "
            "`processes.add_processdefinition`; a new version of an existing key needs "
            "`publish_definition` on it (403 otherwise). A `component_name` already owned by "
            "another key → 409 naming the owner."
        ),
        parameters=[
            OpenApiParameter("key", OpenApiTypes.STR, description="Definition key to use."),
            s.IDEMPOTENCY_KEY,
        ],
        request=OpenApiTypes.OBJECT,
        responses={
            201: ser.DefinitionImportedSerializer,
            200: ser.DefinitionImportedSerializer,
            **s.WRITE_ERRORS,
            400: s.error(
                400,
                "The definition is not valid: every problem with its JSON path.",
                OpenApiExample(
                    "400 invalid_definition",
                    value={
                        "error": {
                            "code": "invalid_definition",
                            "message": "the definition has 1 problem(s)",
                            "fields": {
                                "stages[2].tasks[0].parent_task": ["unknown task 'x'"],
                            },
                            "errors": [
                                {
                                    "path": "stages[2].tasks[0].parent_task",
                                    "message": "unknown task 'x'",
                                }
                            ],
                        }
                    },
                    response_only=True,
                    status_codes=["400"],
                ),
            ),
        },
        examples=[
            OpenApiExample("seed template", value=s.PIZZA_TEMPLATE, request_only=True),
            OpenApiExample(
                "imported",
                value={"key": "pizza", "version": 1, "created": True},
                response_only=True,
                status_codes=["201"],
            ),
        ],
    )
    def post(self, request):
        if not authority.has_any_grant(request.user, authority.PUBLISH) and not (
            authority.may_create_keys(request.user)
        ):
            raise Forbidden("you may not import definitions")
        key = request.query_params.get("key") or None
        if key is not None and (len(key) > 100 or "\x00" in key):
            raise InvalidInput("invalid key", fields={"key": ["at most 100 characters"]})
        definition, created = engine.definition_import(
            data=request.data, key=key, actor=_actor(request)
        )
        body = {"key": definition.key, "version": definition.version, "created": created}
        return Response(
            body,
            status=201 if created else 200,
            headers={"Location": f"/api/definitions/{definition.key}/"},
        )


class DefinitionDetailView(ApiView):
    queryset = ProcessDefinition.objects.none()

    @extend_schema(
        tags=["definitions"],
        summary="One definition",
        description="Its newest published version (with the spec) and the list of versions.",
        responses={200: ser.DefinitionDetailSerializer, **s.READ_ERRORS},
    )
    def get(self, request, key):
        definition, versions = selectors.definition_detail(request.user, key)
        definition.versions = versions
        return Response(ser.DefinitionDetailSerializer(definition).data)

    def get_serializer(self, *args, **kwargs):  # for the browsable schema only
        return ser.DefinitionDetailSerializer(*args, **kwargs)


# --- processes ------------------------------------------------------------------------------------


class ProcessFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=ProcessState.choices)
    definition = django_filters.CharFilter(field_name="definition_key", max_length=100)
    business_key = django_filters.CharFilter(max_length=200)
    business_status = django_filters.CharFilter(max_length=200)


class ProcessListView(ListView):
    filterset_class = ProcessFilter

    def get_queryset(self):
        return selectors.processes_for(self.request.user)

    @extend_schema(
        tags=["processes"],
        summary="List processes",
        description="Newest first; only instances of definitions the caller may see.",
        responses={200: ser.ProcessSerializer(many=True), **s.READ_ERRORS},
        examples=[
            OpenApiExample(
                "page", value=s.page_of(s.PROCESS_EXAMPLE), response_only=True, status_codes=["200"]
            )
        ],
    )
    def get(self, request):
        queryset = self.filter_queryset(self.get_queryset())
        return self.page(queryset, ser.ProcessSerializer)

    @extend_schema(
        tags=["processes"],
        summary="Start a process",
        description=(
            "Starts the newest published version of `definition`. The same `business_key` while "
            "an instance is active (running or failed) → 200 with that instance, nothing new "
            "is started. Needs `start_process` on the definition. `Location` names the instance."
        ),
        parameters=[s.IDEMPOTENCY_KEY],
        request=ser.ProcessStartSerializer,
        responses={
            201: OpenApiResponse(ser.ProcessDetailSerializer, description="Started."),
            200: OpenApiResponse(
                ser.ProcessDetailSerializer, description="Already active: the same instance."
            ),
            **s.WRITE_ERRORS,
        },
        examples=[
            OpenApiExample(
                "start",
                value={"definition": "pizza", "business_key": "ORDER-001", "input": {"size": "L"}},
                request_only=True,
            ),
            OpenApiExample(
                "started",
                value=s.PROCESS_DETAIL_EXAMPLE,
                response_only=True,
                status_codes=["201", "200"],
            ),
        ],
    )
    def post(self, request):
        data = _valid(ser.ProcessStartSerializer, request.data)
        definition = selectors.startable_definition(request.user, data["definition"])
        if definition is None:  # not published, or not for this caller: say which
            _require(request, authority.START, data["definition"], "start processes")
            raise NotFound(f"no published definition {data['definition']!r}")
        result = engine.process_start(
            definition=definition,
            business_key=data["business_key"],
            input=data["input"],
            actor=_actor(request),
        )
        # the caller may start: no second check; a new instance's tasks are already in hand
        process = selectors.with_tasks(result.process, result.tasks)
        return Response(
            ser.ProcessDetailSerializer(process).data,
            status=201 if result.created else 200,
            headers={"Location": f"/api/processes/{process.pk}/"},
        )


class ProcessDetailView(ApiView):
    @extend_schema(
        tags=["processes"],
        summary="One process",
        description="State, business status, current stage, variables and every task.",
        responses={200: ser.ProcessDetailSerializer, **s.READ_ERRORS},
        examples=[
            OpenApiExample(
                "process", value=s.PROCESS_DETAIL_EXAMPLE, response_only=True, status_codes=["200"]
            )
        ],
    )
    def get(self, request, pk):
        process = selectors.with_tasks(selectors.process_for(request.user, pk))
        return Response(ser.ProcessDetailSerializer(process).data)


class ProcessEventsView(ListView):
    queryset = ProcessInstance.objects.none()

    @extend_schema(
        tags=["processes"],
        summary="The audit log of a process",
        description="Every event in order (`seq` is gapless). `?after=<seq>` returns newer ones.",
        parameters=[
            OpenApiParameter("after", OpenApiTypes.INT, description="Only events after this seq.")
        ],
        responses={200: ser.ProcessEventSerializer(many=True), **s.READ_ERRORS},
        examples=[
            OpenApiExample(
                "events",
                value=s.page_of(
                    {
                        "seq": 1,
                        "type": "process_started",
                        "task": "",
                        "actor_type": "api",
                        "actor": "shop-frontend",
                        "created_at": "2026-11-23T10:00:00Z",
                        "data": {"definition": "pizza", "version": 1, "business_key": "ORDER-001"},
                    }
                ),
                response_only=True,
                status_codes=["200"],
            )
        ],
    )
    def get(self, request, pk):
        process = selectors.process_for(request.user, pk)
        after = request.query_params.get("after")
        if after is not None:
            try:
                after = int(after)
            except ValueError:
                raise ValidationError({"after": ["must be an integer"]}) from None
            after = max(min(after, selectors.MAX_DB_INT), -1)
        return self.page(selectors.process_events(process, after=after), ser.ProcessEventSerializer)


class ProcessCancelView(ApiView):
    @extend_schema(
        tags=["processes"],
        summary="Cancel a process",
        description=(
            "Cancels every open task, then runs compensation handlers. Needs `operate_process`. "
            "A process that is already completed or cancelled → 409."
        ),
        parameters=[s.IDEMPOTENCY_KEY],
        request=ser.ProcessCancelSerializer,
        responses={200: ser.ProcessDetailSerializer, **s.WRITE_ERRORS},
        examples=[
            OpenApiExample("cancel", value={"reason": "customer called"}, request_only=True),
        ],
    )
    def post(self, request, pk):
        data = _valid(ser.ProcessCancelSerializer, request.data)
        process = selectors.process_for(request.user, pk)
        _require(request, authority.OPERATE, process.definition_key, "cancel processes")
        engine.process_cancel(process_id=process.pk, actor=_actor(request), reason=data["reason"])
        process = selectors.with_tasks(selectors.process_for(request.user, pk))
        return Response(ser.ProcessDetailSerializer(process).data)


# --- the seed's event protocol --------------------------------------------------------------------


class SeedEventView(ApiView):
    @extend_schema(
        tags=["events"],
        summary="Send a seed event",
        description=(
            "The seed workflow manager's events: `StartWorkflow` (needs `start_process`), "
            "`TaskCompleted`, `TaskFailed`, `TaskPending` (need `operate_process`). "
            "`component_name` (or `definition`, a key) finds the definition; `business_ref_no` "
            "the newest instance. Optional `data` is merged into the process variables.\n\n"
            "202: applied. 200: changed nothing (a repeat: `duplicate: true`, or StartWorkflow "
            "for an active business key), recorded in the history. 409: the event does not fit "
            "the task's state (out of order, e.g. TaskCompleted for a pending task); recorded "
            "too, nothing changes."
        ),
        parameters=[s.IDEMPOTENCY_KEY],
        request=ser.SeedEventSerializer,
        responses={
            202: ser.SeedEventResultSerializer,
            200: OpenApiResponse(
                ser.SeedEventResultSerializer, description="Duplicate: recorded, nothing changed."
            ),
            **s.WRITE_ERRORS,
        },
        examples=[
            OpenApiExample(
                "StartWorkflow",
                value={
                    "business_ref_no": "ORDER-001",
                    "component_name": "ITALIAN",
                    "event_name": "StartWorkflow",
                },
                request_only=True,
            ),
            OpenApiExample(
                "TaskCompleted",
                value={
                    "business_ref_no": "ORDER-001",
                    "component_name": "ITALIAN",
                    "event_name": "TaskCompleted",
                    "stage_name": "ORDER",
                    "task_name": "confirm_order",
                    "task_type": "SERVICE",
                    "data": {"eta_minutes": 30},
                },
                request_only=True,
            ),
            OpenApiExample(
                "TaskFailed",
                value={
                    "business_ref_no": "ORDER-001",
                    "component_name": "ITALIAN",
                    "event_name": "TaskFailed",
                    "stage_name": "ORDER",
                    "task_name": "confirm_order",
                    "task_type": "SERVICE",
                    "error": "oven broken",
                },
                request_only=True,
            ),
            OpenApiExample(
                "TaskPending",
                value={
                    "business_ref_no": "ORDER-001",
                    "component_name": "ITALIAN",
                    "event_name": "TaskPending",
                    "stage_name": "ORDER",
                    "task_name": "confirm_order",
                    "task_type": "SERVICE",
                },
                request_only=True,
            ),
            OpenApiExample(
                "applied",
                value={
                    "event_name": "TaskCompleted",
                    "duplicate": False,
                    "process": {**s.PROCESS_EXAMPLE, "business_status": "ORDER CONFIRMED"},
                    "task": {**s.TASK_EXAMPLE, "state": "completed"},
                    "scheduled": ["make_food", "assign_executive"],
                },
                response_only=True,
                status_codes=["202"],
            ),
        ],
    )
    def post(self, request):
        data = _valid(ser.SeedEventSerializer, request.data)
        event_name = data["event_name"]
        definition = selectors.find_definition(
            key=data.get("definition"), component_name=data.get("component_name")
        )
        if event_name == "StartWorkflow":
            _require(request, authority.START, definition.key, "start processes")
        else:
            _require(request, authority.OPERATE, definition.key, "send task events")
        outcome = engine.handle_seed_event(
            event_name=event_name,
            business_ref_no=data["business_ref_no"],
            definition_key=definition.key,
            stage_name=data.get("stage_name") or None,
            task_name=data.get("task_name"),
            task_type=data.get("task_type") or None,
            data=data.get("data"),
            error=data.get("error") or None,
            actor=_actor(request),
        )
        unchanged = outcome.duplicate or (event_name == "StartWorkflow" and not outcome.created)
        body = {
            "event_name": event_name,
            "duplicate": unchanged,
            "process": ser.ProcessSerializer(outcome.process).data,
            "task": ser.TaskSerializer(outcome.task).data if outcome.task is not None else None,
            "scheduled": selectors.scheduled_task_names(outcome.process),
        }
        return Response(
            body,
            status=200 if unchanged else 202,
            headers={"Location": f"/api/processes/{outcome.process.pk}/"},
        )


class QueueTasksView(ListView):
    queryset = TaskInstance.objects.none()

    @extend_schema(
        tags=["events"],
        summary="Scheduled tasks of a task queue (for external workers)",
        description=(
            "The seed's `StartTask` payloads of every scheduled external task (a SERVICE task "
            "without a handler) in `task_queue`, oldest first, on definitions where the caller "
            "has `operate_process`. A worker does the work and answers with `TaskCompleted` or "
            "`TaskFailed` on `POST /api/events/`. Polling is safe: a task stays listed until "
            "an event closes it."
        ),
        responses={200: ser.StartTaskSerializer(many=True), **s.READ_ERRORS},
        examples=[
            OpenApiExample(
                "queue",
                value=s.page_of(s.START_TASK_EXAMPLE),
                response_only=True,
                status_codes=["200"],
            )
        ],
    )
    def get(self, request, task_queue):
        page = self.paginate_queryset(selectors.queue_tasks_for(request.user, task_queue))
        payloads = selectors.start_task_payloads(page)
        return self.get_paginated_response(
            [{**p, **ser.StartTaskSerializer(p).data} for p in payloads]
        )


# --- human tasks ----------------------------------------------------------------------------------


class InboxView(ListView):
    queryset = TaskInstance.objects.none()

    @extend_schema(
        tags=["tasks"],
        summary="Open human tasks the caller may act on",
        description=(
            "Tasks of the caller's roles (Django groups named by the task's role), assigned to "
            "or claimed by the caller; earliest due first."
        ),
        responses={200: ser.InboxTaskSerializer(many=True), **s.READ_ERRORS},
    )
    def get(self, request):
        return self.page(selectors.human_tasks_for(request.user), ser.InboxTaskSerializer)


class TaskDetailView(ApiView):
    queryset = TaskInstance.objects.none()

    @extend_schema(
        tags=["tasks"],
        summary="One human task",
        description=(
            "The task as the caller may see it: who holds it, what the caller may do (`can`, "
            "with the plain-words `refusal` when separation of duties bars them), and, for "
            "those who may read it, the variables its deciders see (the task's `show` list) "
            "and its result. Not visible to the caller → 404."
        ),
        responses={200: ser.TaskDetailSerializer, **s.READ_ERRORS},
    )
    def get(self, request, pk):
        task = selectors.human_task_for(request.user, pk)
        rights = task.rights
        task_spec = task.process.definition.parsed().task(task.name)
        task.label = task_spec.label or task.name.replace("_", " ")
        task.description = task_spec.description
        task.outcomes = list(task_spec.outcomes)
        task.variables = (
            authority.visible_variables(task.process.variables, task_spec) if rights.read else None
        )
        if not rights.read:
            task.result = None
        task.can = rights
        return Response(ser.TaskDetailSerializer(task).data)


class ProcessVariablesView(ApiView):
    @extend_schema(
        tags=["processes"],
        summary="Correct a process's variables",
        description=(
            "Sets (`set`: variable path → value) and removes (`unset`) variables of a running "
            "or failed process, with a `reason`. Needs `correct_variables` on the definition; "
            "recorded as one `variables_changed` event with each value before and after. "
            "Nothing would change → 400; a completed or cancelled process → 409."
        ),
        parameters=[s.IDEMPOTENCY_KEY],
        request=ser.VariablesCorrectionSerializer,
        responses={200: ser.ProcessDetailSerializer, **s.WRITE_ERRORS},
        examples=[
            OpenApiExample(
                "correct",
                value={"set": {"bonus.amount": 410.0}, "reason": "bonus system sent 41.00"},
                request_only=True,
            )
        ],
    )
    def post(self, request, pk):
        data = _valid(ser.VariablesCorrectionSerializer, request.data)
        process = selectors.process_for(request.user, pk)
        engine.process_correct_variables(
            process_id=process.pk,
            actor=_actor(request),
            set=data["set"],
            unset=data["unset"],
            reason=data["reason"],
        )
        process = selectors.with_tasks(selectors.process_for(request.user, pk))
        return Response(ser.ProcessDetailSerializer(process).data)


def _task_answer(request, task_id) -> Response:
    # Read without the visibility check: after a delegation the task may be someone else's now.
    task = TaskInstance.objects.select_related(
        "process", "process__definition", "assignee", "claimed_by"
    ).get(pk=task_id)
    return Response(
        {"task": ser.TaskSerializer(task).data, "process": ser.ProcessSerializer(task.process).data}
    )


_TASK_ACTION_ERRORS = {**s.WRITE_ERRORS}
_TASK_RESULT = {200: ser.TaskActionResultSerializer, **_TASK_ACTION_ERRORS}


def _task_action(summary: str, description: str, body=None, examples=()):
    """Give a task action view its input serializer (``body``) and its OpenAPI description."""

    def decorate(view_class):
        view_class.body = body
        return extend_schema_view(
            post=extend_schema(
                tags=["tasks"],
                summary=summary,
                description=description,
                parameters=[s.IDEMPOTENCY_KEY],
                request=body,
                responses=_TASK_RESULT,
                examples=list(examples),
            )
        )(view_class)

    return decorate


class _TaskActionView(ApiView):
    """Validate the body, find the task among the caller's, act through the engine, answer it.

    The body is checked before the task (400 before 404), as in every write of the API.
    """

    body: type | None = None  # input serializer (set by @_task_action); None: no body

    def act(self, *, task_id, actor: Actor, data: dict) -> None:
        raise NotImplementedError

    def post(self, request, pk):
        data = _valid(self.body, request.data) if self.body is not None else {}
        task = selectors.human_task_for(request.user, pk)
        self.act(task_id=task.pk, actor=_actor(request), data=data)
        return _task_answer(request, task.pk)


@_task_action(
    "Claim a human task",
    "Locks the task to the caller. Claimed by someone else or closed → 409.",
)
class TaskClaimView(_TaskActionView):
    def act(self, *, task_id, actor, data):
        engine.task_claim(task_id=task_id, actor=actor)


@_task_action(
    "Release a claimed human task",
    "Returns the task to its role. Claimed by someone else or closed → 409.",
)
class TaskReleaseView(_TaskActionView):
    def act(self, *, task_id, actor, data):
        engine.task_release(task_id=task_id, actor=actor)


@_task_action(
    "Complete (decide) a human task",
    "`decision` must be one of the task's outcomes (if it has any); `data` holds its "
    "form fields (errors are reported as `data.<field>`). A closed task → 409 (the "
    "attempt is recorded in the history).",
    body=ser.TaskCompleteSerializer,
    examples=[
        OpenApiExample(
            "approve",
            value={"decision": "approve", "comment": "fine", "data": {"amount": 1200}},
            request_only=True,
        )
    ],
)
class TaskCompleteView(_TaskActionView):
    def act(self, *, task_id, actor, data):
        engine.task_decide(
            task_id=task_id,
            actor=actor,
            decision=data["decision"],
            comment=data["comment"],
            data=data["data"],
        )


@_task_action(
    "Delegate a human task",
    "Assigns the task to another member of its role.",
    body=ser.TaskDelegateSerializer,
    examples=[
        OpenApiExample("delegate", value={"to": "bob", "comment": "on leave"}, request_only=True)
    ],
)
class TaskDelegateView(_TaskActionView):
    def act(self, *, task_id, actor, data):
        to_user = get_user_model().objects.filter(username=data["to"]).first()
        engine.task_delegate(task_id=task_id, actor=actor, to_user=to_user, comment=data["comment"])

"""Thin DRF views: validate input, check the caller's permission, call the engine or a selector.

Paths and payloads are the contract of DESIGN §6; every error is ``{"error": {...}}``. The
OpenAPI of each view is in ``processes/api/docs/``.
"""

from __future__ import annotations

import django_filters
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.signals import user_logged_in
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from processes import authority, engine, selectors
from processes.api import serializers as ser
from processes.api.base import ApiView, Pagination
from processes.api.docs import auth as auth_docs
from processes.api.docs import definitions as definitions_docs
from processes.api.docs import events as events_docs
from processes.api.docs import processes as processes_docs
from processes.api.docs import tasks as tasks_docs
from processes.errors import Forbidden, InvalidInput, NotFound
from processes.events import Actor
from processes.models import ProcessDefinition, ProcessInstance, ProcessState, TaskInstance


def actor_of(request) -> Actor:
    return Actor.for_user(request.user)


def validated(serializer_class, data) -> dict:
    """``data`` checked by an input serializer; 400 with every field's problem otherwise."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def require(request, perm: str, definition_key: str, what: str) -> None:
    """403 when the caller sees the definition but lacks ``perm``; 404 when it sees nothing."""
    user = request.user
    if authority.has_definition_perm(user, perm, definition_key):
        return
    if authority.has_definition_perm(user, authority.ANY, definition_key):
        raise Forbidden(f"you may not {what} of {definition_key!r}")
    raise NotFound(f"no published definition {definition_key!r}")


class ListView(ApiView, GenericAPIView):
    """A paged list (a GenericAPIView, so that the schema shows the page around the items)."""

    pagination_class = Pagination

    def page(self, queryset, serializer_class):
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(serializer_class(page, many=True).data)


# --- auth -----------------------------------------------------------------------------------------


class TokenView(ApiView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @auth_docs.token
    def post(self, request):
        data = validated(ser.TokenRequestSerializer, request.data)
        user = authenticate(request._request, username=data["username"], password=data["password"])
        if user is None or not user.is_active:
            raise InvalidInput("unable to log in with the given credentials")
        # A login like the page's: django-axes resets the failure count, last_login is kept.
        user_logged_in.send(sender=type(user), request=request._request, user=user)
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


# --- definitions ----------------------------------------------------------------------------------


class DefinitionListView(ListView):
    queryset = ProcessDefinition.objects.none()  # the schema's model; reads: selectors

    @definitions_docs.list_definitions
    def get(self, request):
        return self.page(selectors.definitions_for(request.user), ser.DefinitionSerializer)

    @definitions_docs.import_definition
    def post(self, request):
        if not authority.has_any_grant(request.user, authority.PUBLISH) and not (
            authority.may_create_keys(request.user)
        ):
            raise Forbidden("you may not import definitions")
        key = request.query_params.get("key") or None
        if key is not None and (len(key) > 100 or "\x00" in key):
            raise InvalidInput("invalid key", fields={"key": ["at most 100 characters"]})
        definition, created = engine.definition_import(
            data=request.data, key=key, actor=actor_of(request)
        )
        body = {"key": definition.key, "version": definition.version, "created": created}
        return Response(
            body,
            status=201 if created else 200,
            headers={"Location": f"/api/definitions/{definition.key}/"},
        )


class DefinitionDetailView(ApiView):
    @definitions_docs.definition_detail
    def get(self, request, key):
        definition, versions = selectors.definition_detail(request.user, key)
        definition.versions = versions
        return Response(ser.DefinitionDetailSerializer(definition).data)


# --- processes ------------------------------------------------------------------------------------


def _current(request, pk) -> Response:
    """The process as it is now, with its tasks (after an engine call changed it)."""
    process = selectors.with_tasks(selectors.process_for(request.user, pk))
    return Response(ser.ProcessDetailSerializer(process).data)


class ProcessFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=ProcessState.choices)
    definition = django_filters.CharFilter(field_name="definition_key", max_length=100)
    business_key = django_filters.CharFilter(max_length=200)
    business_status = django_filters.CharFilter(max_length=200)


class ProcessListView(ListView):
    filterset_class = ProcessFilter

    def get_queryset(self):
        return selectors.processes_for(self.request.user)

    @processes_docs.list_processes
    def get(self, request):
        return self.page(self.filter_queryset(self.get_queryset()), ser.ProcessSerializer)

    @processes_docs.start_process
    def post(self, request):
        data = validated(ser.ProcessStartSerializer, request.data)
        definition = selectors.startable_definition(request.user, data["definition"])
        if definition is None:  # not published, or not for this caller: say which
            require(request, authority.START, data["definition"], "start processes")
            raise NotFound(f"no published definition {data['definition']!r}")
        result = engine.process_start(
            definition=definition,
            business_key=data["business_key"],
            input=data["input"],
            actor=actor_of(request),
        )
        # the caller may start: no second check; a new instance's tasks are already in hand
        process = selectors.with_tasks(result.process, result.tasks)
        return Response(
            ser.ProcessDetailSerializer(process).data,
            status=201 if result.created else 200,
            headers={"Location": f"/api/processes/{process.pk}/"},
        )


class ProcessDetailView(ApiView):
    @processes_docs.process_detail
    def get(self, request, pk):
        return _current(request, pk)


class ProcessEventsView(ListView):
    queryset = ProcessInstance.objects.none()

    @processes_docs.process_events
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
    @processes_docs.cancel_process
    def post(self, request, pk):
        data = validated(ser.ProcessCancelSerializer, request.data)
        process = selectors.process_for(request.user, pk)
        require(request, authority.OPERATE, process.definition_key, "cancel processes")
        engine.process_cancel(process_id=process.pk, actor=actor_of(request), reason=data["reason"])
        return _current(request, pk)


class ProcessVariablesView(ApiView):
    @processes_docs.correct_variables
    def post(self, request, pk):
        data = validated(ser.VariablesCorrectionSerializer, request.data)
        process = selectors.process_for(request.user, pk)
        engine.process_correct_variables(
            process_id=process.pk,
            actor=actor_of(request),
            set=data["set"],
            unset=data["unset"],
            reason=data["reason"],
        )
        return _current(request, pk)


# --- the seed's event protocol --------------------------------------------------------------------


class SeedEventView(ApiView):
    @events_docs.send_event
    def post(self, request):
        data = validated(ser.SeedEventSerializer, request.data)
        event_name = data["event_name"]
        definition = selectors.find_definition(
            key=data.get("definition"), component_name=data.get("component_name")
        )
        if event_name == "StartWorkflow":
            require(request, authority.START, definition.key, "start processes")
        else:
            require(request, authority.OPERATE, definition.key, "send task events")
        outcome = engine.handle_seed_event(
            event_name=event_name,
            business_ref_no=data["business_ref_no"],
            definition_key=definition.key,
            stage_name=data.get("stage_name") or None,
            task_name=data.get("task_name"),
            task_type=data.get("task_type") or None,
            data=data.get("data"),
            error=data.get("error") or None,
            actor=actor_of(request),
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

    @events_docs.queue_tasks
    def get(self, request, task_queue):
        page = self.paginate_queryset(selectors.queue_tasks_for(request.user, task_queue))
        payloads = selectors.start_task_payloads(page)
        return self.get_paginated_response(
            [{**p, **ser.StartTaskSerializer(p).data} for p in payloads]
        )


# --- human tasks ----------------------------------------------------------------------------------


def _answer(task_id) -> Response:
    """The task and its process after an action, read without the visibility check: after a
    delegation the task may be someone else's now."""
    task = TaskInstance.objects.select_related(
        "process", "process__definition", "assignee", "claimed_by"
    ).get(pk=task_id)
    return Response(
        {"task": ser.TaskSerializer(task).data, "process": ser.ProcessSerializer(task.process).data}
    )


class InboxView(ListView):
    queryset = TaskInstance.objects.none()

    @tasks_docs.inbox
    def get(self, request):
        return self.page(selectors.human_tasks_for(request.user), ser.InboxTaskSerializer)


class TaskDetailView(ApiView):
    @tasks_docs.task_detail
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


class TaskClaimView(ApiView):
    @tasks_docs.claim
    def post(self, request, pk):
        task = selectors.human_task_for(request.user, pk)
        engine.task_claim(task_id=task.pk, actor=actor_of(request))
        return _answer(task.pk)


class TaskReleaseView(ApiView):
    @tasks_docs.release
    def post(self, request, pk):
        task = selectors.human_task_for(request.user, pk)
        engine.task_release(task_id=task.pk, actor=actor_of(request))
        return _answer(task.pk)


class TaskCompleteView(ApiView):
    @tasks_docs.complete
    def post(self, request, pk):
        data = validated(ser.TaskCompleteSerializer, request.data)
        task = selectors.human_task_for(request.user, pk)
        engine.task_decide(
            task_id=task.pk,
            actor=actor_of(request),
            decision=data["decision"],
            comment=data["comment"],
            data=data["data"],
        )
        return _answer(task.pk)


class TaskDelegateView(ApiView):
    @tasks_docs.delegate
    def post(self, request, pk):
        data = validated(ser.TaskDelegateSerializer, request.data)
        task = selectors.human_task_for(request.user, pk)
        to_user = get_user_model().objects.filter(username=data["to"]).first()
        engine.task_delegate(
            task_id=task.pk, actor=actor_of(request), to_user=to_user, comment=data["comment"]
        )
        return _answer(task.pk)

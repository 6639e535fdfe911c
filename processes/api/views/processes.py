"""``/api/processes/``: list, start, one process, its audit log, cancel, correct its variables."""

from __future__ import annotations

import django_filters
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from processes import authority, control, engine, history, selectors
from processes.api import serializers as ser
from processes.api.base import ApiView
from processes.api.docs import processes as docs
from processes.api.views.common import ListView, actor_of, require, validated
from processes.errors import NotFound
from processes.models import ProcessInstance, ProcessState


def _current(request, pk) -> Response:
    """The process as it is now, with its tasks (after an engine call changed it)."""
    process = selectors.process_for(request.user, pk)
    tasks = selectors.process_tasks(process)
    return Response(ser.ProcessDetailSerializer((process, tasks)).data)


class ProcessFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=ProcessState.choices)
    definition = django_filters.CharFilter(field_name="definition_key", max_length=100)
    business_key = django_filters.CharFilter(max_length=200)
    business_status = django_filters.CharFilter(max_length=200)
    parent = django_filters.UUIDFilter(field_name="parent_id", help_text="Children of a process.")
    q = django_filters.CharFilter(
        method="search",
        max_length=200,
        help_text="Part of the business key or of a searchable variable (the definition's "
        "`search` list), any case.",
    )

    def search(self, queryset, name, value):
        return control.search_filter(queryset, value)


class ProcessListView(ListView):
    filterset_class = ProcessFilter

    def get_queryset(self):
        return selectors.processes_for(self.request.user)

    @docs.list_processes
    def get(self, request):
        return self.page(self.filter_queryset(self.get_queryset()), ser.ProcessSerializer)

    @docs.start_process
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
        if result.archived is not None:  # "ever": the key's case was archived, nothing started
            return Response(ser.ArchivedProcessSerializer(result.archived).data, status=200)
        # the caller may start: no second check; a new instance's tasks are already in hand
        process = result.process
        tasks = result.tasks if result.tasks is not None else selectors.process_tasks(process)
        return Response(
            ser.ProcessDetailSerializer((process, tasks)).data,
            status=201 if result.created else 200,
            headers={"Location": f"/api/processes/{process.pk}/"},
        )


BATCH_STATUS = {"created": 201, "existing": 200, "invalid": 400}


class ProcessBatchView(ApiView):
    @docs.start_batch
    def post(self, request):
        data = validated(ser.ProcessBatchSerializer, request.data)
        definition = selectors.startable_definition(request.user, data["definition"])
        if definition is None:
            require(request, authority.START, data["definition"], "start processes")
            raise NotFound(f"no published definition {data['definition']!r}")
        results = engine.process_start_batch(
            definition=definition, items=data["items"], actor=actor_of(request)
        )
        summary = {"created": 0, "existing": 0, "invalid": 0}
        items = []
        for item in results:
            summary[item.outcome] += 1
            items.append(
                {
                    "index": item.index,
                    "business_key": item.business_key,
                    "status": BATCH_STATUS[item.outcome],
                    "process": str(item.process_id) if item.process_id else None,
                    "state": item.state,
                    "archived": item.archived is not None,
                    "archive": ser.ArchiveLocationSerializer(item.archived).data
                    if item.archived is not None
                    else None,
                    "errors": item.errors,
                }
            )
        return Response({"summary": summary, "items": items})


class ProcessDetailView(ApiView):
    @docs.process_detail
    def get(self, request, pk):
        query = validated(ser.ProcessAsOfQuerySerializer, request.query_params)
        if "as_of" not in query:
            return _current(request, pk)
        process = selectors.process_for(request.user, pk)
        point = history.state_at(process, query["as_of"])
        if point is None:
            raise NotFound(f"process {pk} had not started at {query['as_of'].isoformat()}")
        task_names = selectors.task_names(process)
        return Response(
            ser.ProcessAsOfSerializer(
                {"process": process, "point": point, "task_names": task_names}
            ).data
        )


class ProcessEventsView(ListView):
    queryset = ProcessInstance.objects.none()

    @docs.process_events
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


class ProcessRoundsView(ListView):
    queryset = ProcessInstance.objects.none()

    @docs.process_rounds
    def get(self, request, pk):
        process = selectors.process_for(request.user, pk)
        return self.page(selectors.task_rounds(process), ser.TaskRoundSerializer)


class ProcessCancelView(ApiView):
    @docs.cancel_process
    def post(self, request, pk):
        data = validated(ser.ProcessCancelSerializer, request.data)
        process = selectors.process_for(request.user, pk)
        require(request, authority.OPERATE, process.definition_key, "cancel processes")
        engine.process_cancel(process_id=process.pk, actor=actor_of(request), reason=data["reason"])
        return _current(request, pk)


class ProcessVariablesView(ApiView):
    @docs.correct_variables
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

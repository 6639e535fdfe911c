"""The operators' repairs: ``GET /api/incidents/``; retry, skip, replay, reassign a task.

Each repair checks its body first (400 before 404), finds the task among the definitions the
caller sees (404), then calls the engine function the admin calls, which checks
``operate_process`` (403) and the task's state (409) inside its transaction.
"""

from __future__ import annotations

from django.utils import timezone

from processes import control, engine
from processes.api import serializers as ser
from processes.api.base import ApiView
from processes.api.docs import operate as docs
from processes.api.views.common import ListView, actor_of, validated
from processes.api.views.tasks import _answer
from processes.models import ProcessEvent


class IncidentListView(ListView):
    queryset = ProcessEvent.objects.none()

    @docs.incidents
    def get(self, request):
        query = validated(ser.IncidentQuerySerializer, request.query_params)
        now = timezone.now()
        incidents = control.incidents_for(
            request.user,
            state=None if query["state"] == "all" else query["state"],
            definition=query.get("definition"),
            older_than=query.get("older_than"),
            younger_than=query.get("younger_than"),
            now=now,
        )
        page = self.paginate_queryset(incidents)
        data = ser.IncidentSerializer(page, many=True, context={"now": now}).data
        return self.get_paginated_response(data)


class TaskRetryView(ApiView):
    @docs.retry
    def post(self, request, pk):
        data = validated(ser.RepairSerializer, request.data)
        task = control.task_for_operator(request.user, pk)
        engine.task_retry(task_id=task.pk, actor=actor_of(request), reason=data["reason"])
        return _answer(task.pk)


class TaskSkipView(ApiView):
    @docs.skip
    def post(self, request, pk):
        data = validated(ser.SkipSerializer, request.data)
        task = control.task_for_operator(request.user, pk)
        engine.task_skip(
            task_id=task.pk, actor=actor_of(request), reason=data["reason"], set=data["set"] or None
        )
        return _answer(task.pk)


class TaskReplayView(ApiView):
    @docs.replay
    def post(self, request, pk):
        data = validated(ser.RepairSerializer, request.data)
        task = control.task_for_operator(request.user, pk)
        engine.task_replay(task_id=task.pk, actor=actor_of(request), reason=data["reason"])
        return _answer(task.pk)


class TaskReassignView(ApiView):
    @docs.reassign
    def post(self, request, pk):
        data = validated(ser.ReassignSerializer, request.data)
        to_user = engine.user_named(data["to_user"]) if data.get("to_user") else None
        task = control.task_for_operator(request.user, pk)
        engine.reassign_task(
            task_id=task.pk,
            actor=actor_of(request),
            to_user=to_user,
            to_role=data.get("to_role") or None,
            reason=data["reason"],
        )
        return _answer(task.pk)

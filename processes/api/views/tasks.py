"""Human tasks: the inbox, one task, and claim, release, complete (decide) and delegate.

Every action checks its body before looking the task up (400 before 404), as every write does.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework.response import Response

from processes import authority, engine, selectors, timeline
from processes.api import serializers as ser
from processes.api.base import ApiView
from processes.api.docs import tasks as docs
from processes.api.views.common import ListView, actor_of, validated
from processes.models import TaskInstance


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

    @docs.inbox
    def get(self, request):
        return self.page(selectors.human_tasks_for(request.user), ser.InboxTaskSerializer)


class TaskDetailView(ApiView):
    @docs.task_detail
    def get(self, request, pk):
        task, rights = selectors.human_task_for(request.user, pk)
        task_spec = task.process.definition.parsed().task(task.name)
        parts = {
            "result": task.result if rights.read else None,
            "label": task_spec.label or task.name.replace("_", " "),
            "description": task_spec.description,
            "outcomes": list(task_spec.outcomes),
            "variables": None,
            "corrections": None,
            "can": rights,
        }
        if rights.read:
            parts["variables"] = authority.visible_variables(task.process.variables, task_spec)
            parts["corrections"] = [
                c.as_dict()
                for c in timeline.corrections(
                    selectors.corrections_before_decision(task), task_spec
                )
            ]
        return Response(ser.task_detail(task, parts))


class TaskClaimView(ApiView):
    @docs.claim
    def post(self, request, pk):
        task, _ = selectors.human_task_for(request.user, pk)
        engine.task_claim(task_id=task.pk, actor=actor_of(request))
        return _answer(task.pk)


class TaskReleaseView(ApiView):
    @docs.release
    def post(self, request, pk):
        task, _ = selectors.human_task_for(request.user, pk)
        engine.task_release(task_id=task.pk, actor=actor_of(request))
        return _answer(task.pk)


class TaskCompleteView(ApiView):
    @docs.complete
    def post(self, request, pk):
        data = validated(ser.TaskCompleteSerializer, request.data)
        task, _ = selectors.human_task_for(request.user, pk)
        engine.task_decide(
            task_id=task.pk,
            actor=actor_of(request),
            decision=data["decision"],
            comment=data["comment"],
            data=data["data"],
            occurred_at=data.get("occurred_at"),
        )
        return _answer(task.pk)


class TaskDelegateView(ApiView):
    @docs.delegate
    def post(self, request, pk):
        data = validated(ser.TaskDelegateSerializer, request.data)
        task, _ = selectors.human_task_for(request.user, pk)
        to_user = get_user_model().objects.filter(username=data["to"]).first()
        engine.task_delegate(
            task_id=task.pk, actor=actor_of(request), to_user=to_user, comment=data["comment"]
        )
        return _answer(task.pk)

"""The seed's event protocol: ``POST /api/events/`` and the queues of external tasks; messages
from other systems (``POST /api/messages/``)."""

from rest_framework.response import Response

from processes import authority, engine, selectors
from processes.api import serializers as ser
from processes.api.base import ApiView
from processes.api.docs import events as docs
from processes.api.views.common import ListView, actor_of, require, validated
from processes.models import ProcessInstance, TaskInstance


class SeedEventView(ApiView):
    @docs.send_event
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
            occurred_at=data.get("occurred_at"),
            worker_id=data.get("worker_id") or None,
            actor=actor_of(request),
        )
        unchanged = outcome.duplicate or (event_name == "StartWorkflow" and not outcome.created)
        if outcome.archived is not None:  # "ever": the key's case was archived, nothing started
            body = {
                "event_name": event_name,
                "duplicate": True,
                "process": ser.ArchivedProcessSerializer(outcome.archived).data,
                "task": None,
                "scheduled": [],
            }
            return Response(body, status=200)
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

    @docs.queue_tasks
    def get(self, request, task_queue):
        page = self.paginate_queryset(selectors.queue_tasks_for(request.user, task_queue))
        payloads = selectors.start_task_payloads(page)
        return self.get_paginated_response(
            [{**p, **ser.StartTaskSerializer(p).data} for p in payloads]
        )


def _locked(tasks) -> list[dict]:
    """The StartTask payloads (as the plain listing shows them) with each task's lock."""
    by_id = {t.pk: t for t in tasks}
    out = []
    for payload in selectors.start_task_payloads(tasks):
        task = by_id[payload["task_id"]]
        payload = {**payload, "locked_by": task.locked_by, "lock_expires_at": task.lock_expires_at}
        out.append({**payload, **ser.LockedTaskSerializer(payload).data})
    return out


class QueueLockView(ApiView):
    @docs.queue_lock
    def post(self, request, task_queue):
        data = validated(ser.LockSerializer, request.data)
        tasks = engine.tasks_lock(task_queue=task_queue, actor=actor_of(request), **data)
        return Response(_locked(tasks))


class QueueTaskExtendView(ApiView):
    @docs.queue_extend
    def post(self, request, task_queue, pk):
        data = validated(ser.LockExtendSerializer, request.data)
        task = engine.task_lock_extend(
            task_queue=task_queue, task_id=pk, actor=actor_of(request), **data
        )
        return Response(_locked([task])[0])


class QueueTaskUnlockView(ApiView):
    @docs.queue_unlock
    def post(self, request, task_queue, pk):
        data = validated(ser.UnlockSerializer, request.data)
        task = engine.task_unlock(
            task_queue=task_queue, task_id=pk, actor=actor_of(request), **data
        )
        return Response(_locked([task])[0])


class MessageView(ApiView):
    @docs.send_message
    def post(self, request):
        data = validated(ser.MessageSerializer, request.data)
        outcome = engine.message_receive(
            name=data["name"],
            correlation_key=data["correlation_key"],
            data=data["data"],
            occurred_at=data.get("occurred_at"),
            message_id=data.get("message_id") or None,
            buffer=data.get("buffer"),
            actor=actor_of(request),
        )
        ids = [r["process_id"] for r in outcome.reached]
        processes = ProcessInstance.objects.select_related("definition").filter(pk__in=ids)
        message = outcome.message
        body = {
            "id": message.pk,
            "name": message.name,
            "correlation_key": message.correlation_key,
            "duplicate": outcome.duplicate,
            "buffered": message.buffer_until is not None and message.delivered_at is None,
            "buffer_until": message.buffer_until and message.buffer_until.isoformat(),
            "reached": outcome.reached,
            "processes": ser.ProcessSerializer(processes.order_by("created_at"), many=True).data,
        }
        return Response(body, status=200 if outcome.duplicate else 202)

"""Small helpers shared by the admin tests."""

from django.urls import reverse

from processes import engine, worker
from processes.events import Actor
from processes.models import ProcessEvent, ProcessInstance, TaskInstance, TaskState

SYSTEM = Actor.system("test")


def start(key, business_key="B-1", input=None):
    return engine.process_start(
        definition_key=key, business_key=business_key, input=input or {}, actor=SYSTEM
    ).process


def run_ready_steps(process) -> None:
    """Do what a worker would: run every scheduled step that has a handler, until none is left."""
    for _ in range(20):
        ready = list(
            TaskInstance.objects.filter(process_id=process.pk, state=TaskState.SCHEDULED).exclude(
                handler=""
            )
        )
        if not ready:
            return
        for task in ready:
            worker.run_step(task.pk)


def fresh(process) -> ProcessInstance:
    return ProcessInstance.objects.get(pk=process.pk)


def task(process, name) -> TaskInstance:
    return TaskInstance.objects.get(process_id=process.pk, name=name)


def events(process, type=None):
    qs = ProcessEvent.objects.filter(process_id=process.pk).order_by("seq")
    if type:
        qs = qs.filter(type=type)
    return list(qs)


def change_url(process) -> str:
    return reverse("admin:processes_processinstance_change", args=[process.pk])


def task_action_url(process, name, action) -> str:
    return reverse(
        "admin:processes_processinstance_task_action",
        args=[process.pk, task(process, name).pk, action],
    )

"""The seams the architecture promises: definition changes are audited with their actor; the
engine announces through hooks after commit, never into the caller; the queue never turns a
committed change into an error."""

from pathlib import Path

import pytest
from django.contrib.auth.models import Permission

from processes import engine, hooks, queue
from processes.events import Actor
from processes.models import DefinitionEvent, ImmutableError
from tests.factories import UserFactory, definition_data

pytestmark = pytest.mark.django_db


def test_every_definition_change_is_audited_with_its_actor():
    author = UserFactory(username="author")
    author.user_permissions.add(Permission.objects.get(codename="add_processdefinition"))
    actor = Actor.for_user(author)
    draft, _ = engine.definition_import(data=definition_data("flow"), actor=actor, publish=False)
    engine.definition_update_draft(
        definition_id=draft.pk, data=definition_data("flow", description="better"), actor=actor
    )
    engine.definition_publish(definition_id=draft.pk, actor=actor)
    engine.definition_retire(definition_id=draft.pk, actor=Actor.system("cleanup"))
    rows = list(DefinitionEvent.objects.filter(definition=draft).order_by("id"))
    assert [(r.type, r.actor_label) for r in rows] == [
        ("definition_imported", "author"),
        ("definition_updated", "author"),
        ("definition_published", "author"),
        ("definition_retired", "cleanup"),
    ]
    assert rows[0].actor_user == author and rows[0].data == {"status": "draft", "new_key": True}
    with pytest.raises(ImmutableError):
        rows[0].save()
    with pytest.raises(ImmutableError):
        DefinitionEvent.objects.filter(definition=draft).delete()


def test_hooks_run_after_commit_only_and_a_failing_listener_is_contained(
    django_capture_on_commit_callbacks,
):
    heard = []

    def broken(**payload):
        raise RuntimeError("listener bug")

    def listener(**payload):
        heard.append(payload)

    hooks.register("incident_opened", broken)
    hooks.register("incident_opened", listener)
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            hooks.after_commit("incident_opened", process_id="p", task_id=1, error="e")
            assert heard == []  # nothing before the commit
        assert len(callbacks) == 1
        assert heard == [{"process_id": "p", "task_id": 1, "error": "e"}]
    finally:
        hooks._listeners["incident_opened"].remove(broken)
        hooks._listeners["incident_opened"].remove(listener)
    with pytest.raises(ValueError, match="unknown hook"):
        hooks.register("nope", listener)


def test_the_adapters_listen_through_the_registry():
    names = {f.__module__ + "." + f.__name__ for f in hooks.listeners("incident_opened")}
    assert "integrations.listeners.on_incident_opened" in names
    escalated = {f.__module__ + "." + f.__name__ for f in hooks.listeners("task_escalated")}
    assert {
        "tasks_inbox.notifications.on_task_escalated",
        "integrations.listeners.on_task_escalated",
    } <= escalated
    # what the worker supervisor and manage.py setup_flowdesk announce, outside the engine
    announced = {
        name: {f.__module__ + "." + f.__name__ for f in hooks.listeners(name)}
        for name in ("cluster_stalled", "cluster_resumed", "claims_expired", "setup")
    }
    assert announced == {
        "cluster_stalled": {"integrations.alerts.cluster_stalled"},
        "cluster_resumed": {"integrations.alerts.cluster_resumed"},
        "claims_expired": {"integrations.outbox.take_over_all"},
        "setup": {"integrations.outbox.ensure_schedules"},
    }


def test_an_unreachable_broker_is_logged_not_raised(monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(queue, "async_task", refuse)
    assert queue.enqueue_step(1, timeout=5) is False
    assert "left to the timer sweep" in caplog.text


def test_the_engine_leaves_work_to_after_its_commit_through_one_path(monkeypatch):
    """``queue.on_commit`` (guarded: never raises into the request) is the engine's one way to
    act after a commit; ``hooks.after_commit`` announces through it too."""
    engine_dir = Path(engine.__file__).parent
    raw = [
        f"{path.name}:{number}"
        for path in sorted(engine_dir.glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "transaction.on_commit" in line
    ]
    assert raw == []
    registered = []
    monkeypatch.setattr(queue, "on_commit", lambda *args, **kwargs: registered.append(args))
    hooks.after_commit("task_opened", task_id=1)
    assert registered == [(hooks.emit, "task_opened")]

"""The permission seam: guardian object permissions follow a human task through its life."""

import pytest
from django.contrib.auth.models import Group, Permission
from guardian.core import ObjectPermissionChecker
from guardian.shortcuts import get_objects_for_user

from processes import engine
from processes.events import Actor
from processes.models import TaskInstance, TaskState
from tasks_inbox import permissions, selectors
from tasks_inbox.models import TaskGroupObjectPermission, TaskUserObjectPermission
from tests.factories import UserFactory
from tests.tasks_inbox.conftest import approval_definition

PERM = permissions.PERMISSION


def grants(task):
    users = set(
        TaskUserObjectPermission.objects.filter(content_object=task).values_list(
            "user__username", flat=True
        )
    )
    groups = set(
        TaskGroupObjectPermission.objects.filter(content_object=task).values_list(
            "group__name", flat=True
        )
    )
    return users, groups


def test_opened_task_grants_its_role_and_creates_a_missing_group(start):
    # given no group "managers" exists yet
    assert not Group.objects.filter(name="managers").exists()
    # when a process opens the human task
    task = start()
    # then the role's group exists and holds the object permission
    assert grants(task) == (set(), {"managers"})
    perm = TaskGroupObjectPermission.objects.get(content_object=task).permission
    assert (perm.content_type.app_label, perm.codename) == ("processes", "act_on_task")


def test_assignee_from_variables_gets_a_user_permission(import_definition):
    ada = UserFactory(username="ada")
    import_definition(approval_definition(key="assigned", assignee="manager"))
    process = engine.process_start(
        definition_key="assigned",
        business_key="EMP-9",
        input={"manager": "ada"},
        actor=Actor.system("test"),
    ).process
    task = process.tasks.get(name="approve_bonus")
    assert task.assignee == ada
    assert grants(task) == ({"ada"}, {"managers"})


def test_claim_release_delegate_and_decision_move_the_permissions(start, people):
    task = start()
    mia, paul = people["candidate"], people["peer"]
    engine.task_claim(task_id=task.pk, actor=Actor.for_user(mia))
    assert grants(task) == ({"mia"}, {"managers"})
    engine.task_release(task_id=task.pk, actor=Actor.for_user(mia))
    assert grants(task) == (set(), {"managers"})
    engine.task_delegate(task_id=task.pk, actor=Actor.for_user(mia), to_user=paul)
    assert grants(task) == ({"paul"}, {"managers"})
    engine.task_decide(
        task_id=task.pk, actor=Actor.for_user(paul), decision="reject", data={"amount": "0"}
    )
    assert grants(task) == (set(), set())


def test_cancel_and_replay_revoke_and_grant_again(start, people):
    task = start()
    engine.task_replay(task_id=task.pk, actor=Actor.system("test"))
    task.refresh_from_db()
    assert task.state == TaskState.SCHEDULED
    assert grants(task) == (set(), {"managers"})
    engine.process_cancel(process_id=task.process_id, actor=Actor.system("test"))
    assert grants(task) == (set(), set())


def test_guardian_agrees_with_the_inbox_selectors(start, people):
    """The lists read columns; guardian reads the permission rows: both must give the same."""
    tasks = [start(f"EMP-{i}") for i in range(4)]
    mia, paul, dora = people["candidate"], people["peer"], people["director"]
    engine.task_claim(task_id=tasks[0].pk, actor=Actor.for_user(mia))
    engine.task_delegate(task_id=tasks[1].pk, actor=Actor.for_user(mia), to_user=paul)
    engine.task_decide(
        task_id=tasks[2].pk, actor=Actor.for_user(mia), decision="approve", data={"amount": 5}
    )
    for user in people.values():
        by_guardian = set(
            get_objects_for_user(
                user,
                PERM,
                klass=TaskInstance,
                use_groups=True,
                with_superuser=False,
                accept_global_perms=False,
            ).values_list("pk", flat=True)
        )
        listed = set()
        for tab in ("assigned", "roles"):
            listed |= set(selectors.inbox_tasks(user=user, tab=tab).values_list("pk", flat=True))
        assert by_guardian == listed, user.username
        checker = ObjectPermissionChecker(user)
        for task in TaskInstance.objects.filter(pk__in=[t.pk for t in tasks]):
            if not user.is_superuser:  # Django's User.has_perm lets superusers do anything
                assert checker.has_perm("act_on_task", task) == selectors.can_act(user, task)
    assert {t.pk for t in selectors.inbox_tasks(user=mia, tab="assigned")} == {tasks[0].pk}
    assert {t.pk for t in selectors.inbox_tasks(user=paul, tab="assigned")} == {tasks[1].pk}
    assert {t.pk for t in selectors.inbox_tasks(user=mia, tab="done")} == {tasks[2].pk}
    assert not selectors.inbox_tasks(user=dora, tab="roles").exists()


def test_global_permission_and_superuser_grant_nothing(start, people):
    """accept_global_perms=False: a model-wide act_on_task does not open every task."""
    task = start()
    stan = people["staff"]
    stan.user_permissions.add(
        Permission.objects.get(codename="act_on_task", content_type__app_label="processes")
    )
    for user in (stan, people["superuser"]):
        assert not selectors.can_act(user, task)
        assert selectors.task_for_user(user=user, task_id=task.pk) is None
        assert not selectors.inbox_tasks(user=user, tab="roles").exists()


def test_inactive_member_sees_nothing(start, people):
    task = start()
    mia = people["candidate"]
    mia.is_active = False
    mia.save()
    assert selectors.task_for_user(user=mia, task_id=task.pk) is None
    assert not selectors.inbox_tasks(user=mia, tab="roles").exists()


@pytest.mark.parametrize("closed_by", ["decision", "cancel"])
def test_closed_task_is_read_only_for_its_role(start, people, closed_by):
    task = start()
    mia, paul = people["candidate"], people["peer"]
    if closed_by == "decision":
        engine.task_decide(
            task_id=task.pk, actor=Actor.for_user(mia), decision="approve", data={"amount": 1}
        )
    else:
        engine.process_cancel(process_id=task.process_id, actor=Actor.system("test"))
    for user in (mia, paul):
        found = selectors.task_for_user(user=user, task_id=task.pk)
        assert found is not None and found[1] == selectors.Access(True, False)
    for user in (people["other"], people["staff"], people["director"]):
        assert selectors.task_for_user(user=user, task_id=task.pk) is None

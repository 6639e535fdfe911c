"""Each fixed query of ``processes.db`` returns what its ORM twin returns; the engine's field lists
cover every column; the grant condition is guardian's rule."""

import itertools
import json
import uuid

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from guardian.shortcuts import assign_perm, get_objects_for_user
from rest_framework.authtoken.models import Token

from processes import authority, engine
from processes.db import api as db_api
from processes.db import engine as db_engine
from processes.db import grants
from processes.events import Actor
from processes.models import (
    ProcessDefinition,
    ProcessInstance,
    TaskInstance,
    overdue_q,
)
from tests.factories import UserFactory, definition_data

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("t")
FIELDS = lambda obj: {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}  # noqa: E731


@pytest.fixture
def processes(pizza, import_definition):
    import_definition(
        definition_data(
            "people",
            stages=[
                (
                    "S",
                    [
                        {
                            "task_name": "a",
                            "task_type": "HUMAN",
                            "assigned_to": "r",
                            "assignee": "who",
                        },
                        {"task_name": "b", "task_type": "HUMAN", "assigned_to": "r"},
                    ],
                )
            ],
        )
    )
    UserFactory(username="ann", roles=["r"])
    started = [
        engine.process_start(definition_key="pizza", business_key=f"O{i}", actor=SYSTEM).process
        for i in range(3)
    ]
    started.append(
        engine.process_start(
            definition_key="people", business_key="P1", input={"who": "ann"}, actor=SYSTEM
        ).process
    )
    return started


def test_the_locks_read_what_the_orm_reads(processes, transactional_db):
    for process in processes:
        orm = ProcessInstance.objects.select_related("definition").get(pk=process.pk)
        orm_tasks = list(TaskInstance.objects.filter(process=process).order_by("stage_index", "id"))
        by_id = db_engine.lock_with_tasks(process.pk)
        by_task = db_engine.lock_with_tasks(task_id=orm_tasks[-1].pk)
        for fixed, tasks in (by_id, by_task):
            assert FIELDS(fixed) == FIELDS(orm)
            assert [FIELDS(t) for t in tasks] == [FIELDS(t) for t in orm_tasks]
            d = fixed.definition
            assert (d.pk, d.key, d.version, d.published_at) == (
                orm.definition.pk,
                orm.definition.key,
                orm.definition.version,
                orm.definition.published_at,
            )
    assert db_engine.lock_with_tasks(task_id=10**12) == (None, [])
    assert db_engine.lock_with_tasks(uuid.uuid4()) == (None, [])


def test_tasks_of_a_process_are_the_orms_in_spec_order(processes):
    for process in processes:
        orm = list(TaskInstance.objects.filter(process=process).order_by("stage_index", "id"))
        fixed = db_engine.tasks_of_process(process.pk, people=True)
        assert [FIELDS(t) for t in fixed] == [FIELDS(t) for t in orm]
        for t, o in zip(fixed, orm, strict=True):
            assert (t.assignee.username if t.assignee_id else None) == (
                o.assignee.username if o.assignee_id else None
            )


@pytest.mark.parametrize("ever", [False, True])
def test_the_business_key_check_is_the_orms(processes, ever):
    engine.process_cancel(process_id=processes[0].pk, actor=SYSTEM)
    for process in processes:
        qs = ProcessInstance.objects.filter(
            definition_key=process.definition_key, business_key=process.business_key
        )
        if not ever:
            qs = qs.filter(state__in=["running", "failed"])
        orm = qs.order_by("-created_at").first()
        fixed = db_engine.existing_instance(process.definition_key, process.business_key, ever=ever)
        assert (fixed.pk if fixed else None) == (orm.pk if orm else None)


def test_the_archived_key_check_is_the_orms(db):
    import uuid

    from processes.models import ArchivedBusinessKey

    kept = ArchivedBusinessKey.objects.create(
        definition_key="salary",
        business_key="E011-2026-06",
        process_id=uuid.uuid4(),
        definition_version=3,
        state="completed",
        business_status="PAID",
        completed_at=timezone.now(),
        archive_file="salary/archive-1.jsonl",
    )
    fixed = db_engine.existing_instance("salary", "E011-2026-06", ever=True)
    assert FIELDS(fixed) == FIELDS(ArchivedBusinessKey.objects.get(pk=kept.pk))
    # only "ever" reserves it; another key or definition is free
    assert db_engine.existing_instance("salary", "E011-2026-06", ever=False) is None
    assert db_engine.existing_instance("salary", "E012-2026-06", ever=True) is None
    assert db_engine.existing_instance("pizza", "E011-2026-06", ever=True) is None
    found = db_engine.existing_instances("salary", ["E011-2026-06", "X"], ever=True)
    assert list(found) == ["E011-2026-06"] and found["E011-2026-06"].archived == kept


def test_the_token_user_is_drfs(db):
    ann = UserFactory(username="ann")
    token = Token.objects.create(user=ann)
    assert FIELDS(db_api.token_user(token.key)) == FIELDS(token.user)
    assert db_api.token_user("nope") is None


def grant_matrix():
    """Users, groups and grants in every combination that matters."""
    defs = {
        key: engine.definition_import(data=definition_data(key), actor=SYSTEM)[0]
        for key in ("k1", "k2")
    }
    v2 = engine.definition_import(data=definition_data("k1", description="v2"), actor=SYSTEM)[0]
    team = Group.objects.create(name="team")
    users = []
    perms = ["view_process", "start_process", "operate_process"]
    for n, (perm, target, via_group) in enumerate(
        itertools.product(perms, [defs["k1"], v2, defs["k2"]], [False, True])
    ):
        user = UserFactory(username=f"u{n}")
        if via_group:
            group = Group.objects.create(name=f"g{n}")
            user.groups.add(group)
            assign_perm(f"processes.{perm}", group, target)
        else:
            assign_perm(f"processes.{perm}", user, target)
        users.append(user)
    member = UserFactory(username="member")
    member.groups.add(team)
    users.append(member)
    return users


def test_the_grant_condition_is_guardians_rule(db):
    users = grant_matrix()
    perm_sets = [
        (authority.VIEW,),
        (authority.START,),
        (authority.VIEW, authority.OPERATE),
        authority.ANY,
    ]
    for user, perms, key in itertools.product(users, perm_sets, ["k1", "k2", "none"]):
        by_guardian = (
            get_objects_for_user(
                user,
                list(perms),
                klass=ProcessDefinition,
                any_perm=True,
                accept_global_perms=False,
                with_superuser=False,
            )
            .filter(key=key)
            .exists()
        )
        by_sql = grants.has_grant(user, authority.codenames(perms), key)
        assert by_sql == by_guardian, (user.username, perms, key)
        assert authority.has_definition_perm(user, perms, key) == by_guardian


def test_the_startable_definition_and_the_process_detail_apply_the_grant(db):
    users = grant_matrix()
    process = engine.process_start(definition_key="k1", business_key="B", actor=SYSTEM).process
    for user in users:
        can_start = authority.has_definition_perm(user, authority.START, "k1")
        found = db_api.startable_definition("k1", user=user, codenames=["start_process"])
        assert (found is not None) == can_start
        if found is not None:
            assert found.version == 2  # the newest published
        can_see = authority.has_definition_perm(user, authority.SEE, "k1")
        detail, allowed = db_api.process_with_grant(
            process.pk, user=user, codenames=authority.codenames(authority.SEE)
        )
        assert detail.pk == process.pk and allowed == can_see


def test_the_engine_writes_back_every_column_but_those_written_once():
    for model, written, once in (
        (TaskInstance, engine.TASK_FIELDS, engine.TASK_WRITTEN_ONCE),
        (ProcessInstance, engine.PROCESS_FIELDS, engine.PROCESS_WRITTEN_ONCE),
    ):
        names = {f.name for f in model._meta.concrete_fields}
        assert set(once) <= names, set(once) - names  # no stale name in the written-once list
        assert set(written) | set(once) == names
        assert not set(written) & set(once)


def test_overdue_has_one_meaning_everywhere(processes, client):
    """The queryset rule, the task property, the inbox tab and the API agree."""
    import datetime as dt

    from processes import selectors
    from tasks_inbox import selectors as inbox

    people = processes[-1]
    now = timezone.now()
    a, b = people.tasks.get(name="a"), people.tasks.get(name="b")
    TaskInstance.objects.filter(pk=a.pk).update(due_at=now - dt.timedelta(hours=1))
    TaskInstance.objects.filter(pk=b.pk).update(due_at=now + dt.timedelta(hours=1))
    overdue = set(TaskInstance.objects.filter(overdue_q(now)).values_list("pk", flat=True))
    assert overdue == {a.pk}
    for task in TaskInstance.objects.all():
        assert task.overdue_at(now) == (task.pk in overdue)
    ann = type(people.started_by_user or UserFactory()).objects.get(username="ann")
    assert {t.pk for t in inbox.inbox_tasks(user=ann, tab="overdue", now=now)} == {a.pk}
    listed = {t.pk: t.is_overdue for t in selectors.human_tasks_for(ann)}
    assert listed == {a.pk: True, b.pk: False}


def test_a_batch_writes_the_rows_a_single_start_writes(pizza):
    """``internals.copy_in`` (COPY, for batches) stores what ``internals.insert`` stores, column by column."""
    single = engine.process_start(definition=pizza, business_key="ONE", actor=SYSTEM).process
    [item] = engine.process_start_batch(
        definition=pizza, items=[{"business_key": "TWO"}], actor=SYSTEM
    )
    batched = ProcessInstance.objects.get(pk=item.process_id)
    differ = {
        "id",
        "business_key",
        "search_text",
        "created_at",
        "updated_at",
        "process_id",
        "last_hash",
    }
    assert (single.search_text, batched.search_text) == ("one", "two")  # the key, case-folded
    # each process's own chain, holding in both (COPY writes what INSERT writes)
    from processes.events import chain

    for process in (single, batched):
        assert chain.first_broken(list(process.events.order_by("seq"))) is None

    def same(a, b):
        fa, fb = FIELDS(a), FIELDS(b)
        return {k: v for k, v in fa.items() if k not in differ and "_at" not in k} == {
            k: v for k, v in fb.items() if k not in differ and "_at" not in k
        }

    assert same(single, batched)
    for mine, theirs in zip(single.tasks.order_by("id"), batched.tasks.order_by("id"), strict=True):
        assert same(mine, theirs)
    for mine, theirs in zip(
        single.events.order_by("seq"), batched.events.order_by("seq"), strict=True
    ):
        assert (mine.seq, mine.type, mine.task_name, mine.actor_label) == (
            theirs.seq,
            theirs.type,
            theirs.task_name,
            theirs.actor_label,
        )
        assert json.dumps(mine.data) == json.dumps(theirs.data).replace('"TWO"', '"ONE"')
        assert (mine.task_id is None) == (theirs.task_id is None)

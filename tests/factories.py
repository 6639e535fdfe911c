"""factory-boy factories for the common objects of tests."""

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group


class GroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Group
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"role{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "pw")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        """UserFactory(roles=["managers"]) puts the user in those groups (created as needed)."""
        if create and extracted:
            for name in extracted:
                self.groups.add(GroupFactory(name=name))
        if create:
            self.save()


def definition_data(key="flow", stages=None, **extra):
    """A native definition dict: ``stages`` is a list of (stage_name, [task dicts])."""
    stages = stages or [("MAIN", [{"task_name": "only", "handler": "flowdesk.noop"}])]
    return {
        "workflow_name": key.title(),
        "key": key,
        **extra,
        "stages": [
            {"stage_name": name, "stage_order": i, "tasks": tasks}
            for i, (name, tasks) in enumerate(stages)
        ],
    }


def complete_task(task, result=None, actor=None):
    """Finish ``task`` the way its kind is finished: a service (or external) task with a result,
    a HUMAN task decided by a member of its role (made when missing) with its first outcome."""
    from processes import engine
    from processes.events import Actor
    from processes.models import TaskType

    task.refresh_from_db()
    if task.type != TaskType.HUMAN:
        return engine.task_complete(
            task_id=task.pk, actor=actor or Actor.system("test"), result=result or {}
        )
    spec = task.process.definition.parsed().task(task.name)
    if actor is None:
        from django.contrib.auth import get_user_model

        person = (
            get_user_model()
            .objects.filter(groups__name=task.candidate_role, is_active=True)
            .order_by("pk")
            .first()
        ) or UserFactory(roles=[task.candidate_role])
        if task.assignee_id:
            person = task.assignee
        actor = Actor.for_user(person)
    return engine.task_decide(
        task_id=task.pk,
        actor=actor,
        decision=spec.outcomes[0] if spec.outcomes else None,
        data=result,
    )

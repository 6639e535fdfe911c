"""Small scenario helpers shared by tests."""

from processes import engine
from processes.events import Actor

PIZZA_SERVICE_TASKS = ["confirm_order", "make_food", "assign_executive", "confirm_delivery"]
PIZZA_TASKS = [*PIZZA_SERVICE_TASKS, "deliver_food"]


def courier():
    """A member of the pizza's delivery_executive role (made when missing)."""
    from django.contrib.auth import get_user_model

    from tests.factories import UserFactory

    found = get_user_model().objects.filter(username="courier").first()
    return found or UserFactory(username="courier", roles=["delivery_executive"])


def deliver(process, by=None):
    """The courier decides the HUMAN task deliver_food, as the inbox or the API would."""
    task = process.tasks.get(name="deliver_food")
    return engine.task_decide(task_id=task.pk, actor=Actor.for_user(by or courier()))


def run_pizza_to_the_end(ref="ORDER-001"):
    """Run the seed's pizza process: its service tasks through seed events, the HUMAN task
    deliver_food decided by a courier; return the completed process."""
    actor = Actor.api(label="test-client")
    process = engine.handle_seed_event(
        event_name="StartWorkflow", business_ref_no=ref, component_name="ITALIAN", actor=actor
    ).process
    for name in PIZZA_SERVICE_TASKS:
        engine.handle_seed_event(
            event_name="TaskCompleted",
            business_ref_no=ref,
            component_name="ITALIAN",
            task_name=name,
            actor=actor,
        )
    deliver(process)
    process.refresh_from_db()
    return process

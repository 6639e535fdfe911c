"""Small scenario helpers shared by tests."""

from processes import engine
from processes.events import Actor

PIZZA_TASKS = ["confirm_order", "make_food", "assign_executive", "confirm_delivery", "deliver_food"]


def run_pizza_to_the_end(ref="ORDER-001"):
    """Run the seed's pizza process through its seed events; return the completed process."""
    actor = Actor.api(label="test-client")
    process = engine.handle_seed_event(
        event_name="StartWorkflow", business_ref_no=ref, component_name="ITALIAN", actor=actor
    ).process
    for name in PIZZA_TASKS:
        engine.handle_seed_event(
            event_name="TaskCompleted",
            business_ref_no=ref,
            component_name="ITALIAN",
            task_name=name,
            actor=actor,
        )
    process.refresh_from_db()
    return process

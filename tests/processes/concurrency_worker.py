"""Child-process side of the concurrency tests: its own interpreter, its own DB connection."""

import os


def complete_branch(database_url, task_ids, barrier, results):
    """For each task: wait until the sibling process is ready too, then complete the task."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from processes import engine
    from processes.events import Actor

    actor = Actor.worker(f"pid {os.getpid()}")
    for task_id in task_ids:
        barrier.wait(timeout=30)
        try:
            engine.task_complete(task_id=task_id, actor=actor, result={"by": os.getpid()})
            results.put(("ok", task_id))
        except Exception as exc:  # reported to the parent, which fails the test
            results.put(("error", f"{task_id}: {type(exc).__name__}: {exc}"))


def decide_tasks(database_url, username, task_ids, barrier, results):
    """As ``username``, decide each task the moment the sibling process is ready too."""
    os.environ["DATABASE_URL"] = database_url
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from processes import engine
    from processes.errors import EngineError
    from processes.events import Actor

    actor = Actor.for_user(get_user_model().objects.get(username=username))
    for task_id in task_ids:
        barrier.wait(timeout=30)
        try:
            engine.task_decide(task_id=task_id, actor=actor, decision="approve")
            results.put(("ok", task_id))
        except EngineError as exc:
            results.put((type(exc).__name__, task_id, exc.message))
        except Exception as exc:
            results.put(("error", task_id, f"{type(exc).__name__}: {exc}"))


def start_processes(database_url, definition_key, business_keys, barrier, results):
    """Start each business key the moment the sibling process is ready too."""
    os.environ["DATABASE_URL"] = database_url
    import django

    django.setup()
    from processes import engine
    from processes.events import Actor

    actor = Actor.system(f"pid {os.getpid()}")
    for key in business_keys:
        barrier.wait(timeout=30)
        try:
            started = engine.process_start(
                definition_key=definition_key, business_key=key, actor=actor
            )
            results.put(("ok", key, str(started.process.pk), started.created))
        except Exception as exc:
            results.put(("error", key, f"{type(exc).__name__}: {exc}"))


def send_messages(database_url, keys, barrier, results):
    """Send ``payment_received`` for each key (buffered an hour) when the sibling is ready too."""
    os.environ["DATABASE_URL"] = database_url
    import django

    django.setup()
    from processes import engine
    from processes.events import Actor

    actor = Actor.system(f"pid {os.getpid()}")
    for key in keys:
        barrier.wait(timeout=30)
        try:
            outcome = engine.message_receive(
                name="payment_received",
                correlation_key=key,
                data={"amount": "1"},
                buffer="PT1H",
                actor=actor,
            )
            results.put(("ok", key, "buffered" if outcome.buffered else "reached"))
        except Exception as exc:
            results.put(("error", key, f"{type(exc).__name__}: {exc}"))

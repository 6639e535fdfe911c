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

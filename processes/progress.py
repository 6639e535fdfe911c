"""What a worker process tells its supervisor (``manage.py workers``): busy until when, on what.

Its own module, below the engine and the adapters, so that every kind of work a worker runs
notes itself the same way: service steps and compensations (``processes.worker``) and the
outboxes' sends (``integrations.outbox``: event deliveries, SMS). A heartbeat that waits behind
noted work still within its time is not a stall; noted work whose worker died is taken over once
its time is up.
"""

from __future__ import annotations

import logging
import os

from django.conf import settings

logger = logging.getLogger(__name__)

PROGRESS_DIR_ENV = "FLOWDESK_PROGRESS_DIR"


class Progress:
    """Tell this machine's worker supervisor what this worker process is doing.

    The supervisor sets ``FLOWDESK_PROGRESS_DIR`` for its cluster: each worker process keeps one
    file there, named by its pid, holding the time (epoch seconds) until which it is busy and
    the task ids of the steps it runs (none for other work: an event delivery), or ``0 0`` when
    idle; the file's mtime is its last change. The supervisor then does not take a heartbeat
    waiting behind work still within its time for a stall, and when a worker dies in the middle
    of a step it enqueues that step again (or sweeps when its lease expires); in the middle of
    other work, it has the work's claim taken over when ``until`` has passed. One ``pwrite`` per
    change (a few microseconds); nothing at all without the variable (a bare ``qcluster``).
    """

    def __init__(self) -> None:
        self.pid: int | None = None
        self.fds: dict[str, int] = {}

    def busy_until(self, until: float, *task_ids: int) -> None:
        # a fixed length (each pwrite covers the last note): FLOWDESK_STEP_BATCH ids, 0 for none
        width = settings.FLOWDESK_STEP_BATCH
        ids = list(task_ids[:width]) + [0] * (width - len(task_ids[:width]))
        self.write(
            str(os.getpid()), b"%20.3f" % until + b"".join(b" %20d" % i for i in ids) + b"\n"
        )

    def idle(self) -> None:
        self.busy_until(0)

    def write(self, name: str, data: bytes) -> None:
        directory = os.environ.get(PROGRESS_DIR_ENV)
        if not directory:
            return
        try:
            if self.pid != os.getpid():  # a new (forked) worker: the parent's files aren't ours
                self.pid, self.fds = os.getpid(), {}
            fd = self.fds.get(name)
            if fd is None:
                fd = self.fds[name] = os.open(
                    os.path.join(directory, name), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600
                )
            os.pwrite(fd, data, 0)
        except OSError as exc:  # the supervisor's directory went away: not the work's problem
            self.fds.pop(name, None)
            logger.debug("progress note failed: %s", exc)


progress = Progress()

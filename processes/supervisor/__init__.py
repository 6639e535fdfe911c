"""Worker supervision: ``manage.py workers`` runs django-q2's ``qcluster`` and keeps it working.

Why. django-q2 hands tasks from its pusher to its workers, and results to its monitor, through
multiprocessing queues. A process SIGKILLed while it holds one of their locks (an idle worker
blocked in ``get()``, the idle monitor, the pusher in ``put()``) leaves that lock held for good:
the sentinel replaces the dead process, the new one blocks on the same lock, and the cluster
freezes with every process alive. Nothing inside the cluster can see it.

How. The supervisor runs ``qcluster`` as its child, in a process group of its own, and every
``FLOWDESK_HEARTBEAT_SECONDS`` sends a tiny task (``processes.worker.heartbeat``) through the
broker. A worker runs it and its hook (``heartbeat_returned``) runs in the monitor, which records
it on the supervisor's ``ClusterHeartbeat`` row: a beat that comes back has gone pusher -> worker
-> monitor. Each supervisor has a heartbeat *lane* (its own broker key) that its cluster's pusher
reads before the shared queue (``RedisBroker`` / ``OrmBroker`` below): a beat is never answered
by another machine's cluster and never waits behind a backlog. The supervisor restarts the whole
process tree (SIGKILL to the group, a new ``qcluster``) when:

- no beat came back for ``FLOWDESK_STALL_SECONDS`` — unless every worker is running a step still
  within its timeout (the beat is then only waiting for a free worker; each worker says so in a
  small file, see ``processes.progress``) and no beat that a worker ran is missing (one
  that ran but never came back means the results are stuck, however busy the workers are);
- the sentinel stopped waking up (its guard loop wakes twice a second; one blocked on a lock held
  by a dead worker no longer reincarnates, times out or schedules anything);
- ``qcluster`` exited (its sentinel died, or it was killed): at once, with back-off when it keeps
  exiting right after it started.

A thread of the supervisor runs the timer loop (``processes.engine.timer_loop``): retry
back-offs, lost enqueues, leases, escalations, deadlines and compensations to the second, whether
or not the cluster works; on PostgreSQL only in the one supervisor across hosts that holds the
timer lease (``leader``: another takes over within ``FLOWDESK_TIMER_LEASE`` when its host dies). After each (re)start it does not wait for the periodic sweep: it re-enqueues the scheduled service
steps (Redis tasks that sat in the dead queues are gone; a duplicate is skipped by the engine) and
runs the timer sweep, then runs it again when the leases of the steps that were running have
expired, so a step killed mid-run is requeued within its timeout + ``FLOWDESK_LEASE_MARGIN``.
When a single worker dies in the middle of a step (the sentinel replaces it, nothing freezes),
its note names the step: enqueued again at once, or swept when its lease expires.

Its row (``ClusterHeartbeat``) lives by being written, at least every heartbeat; a clean stop
deletes it, and ``/healthz`` (``processes.health``) forgets a silent one after
``FLOWDESK_SUPERVISOR_EXPIRY``.

A stall (no beat for ``FLOWDESK_STALL_SECONDS``, not explained by busy workers) is logged at
ERROR and sends one SMS to the on-call admins; the first beat back after it sends another.
SIGTERM or SIGINT: qcluster gets SIGTERM and ``FLOWDESK_SHUTDOWN_GRACE`` seconds to finish its
running steps, then the group is SIGKILLed (qcluster can hang on SIGTERM, django-q2 #346); a
second signal skips the grace. The supervisor is a child subreaper, so processes orphaned by a
kill are reparented to it and reaped: no zombies.
"""

from processes.supervisor import record  # noqa: F401
from processes.supervisor.core import Config, Episode, Supervisor  # noqa: F401
from processes.supervisor.lane import (  # noqa: F401
    LANE_ENV,
    OrmBroker,
    RedisBroker,
    lane_name,
)
from processes.supervisor.leader import (  # noqa: F401
    TimerLeader,
    hold_lease,
    lease_holder,
    release_lease,
)
from processes.supervisor.procfs import (  # noqa: F401
    become_subreaper,
    cmdline,
    descendants,
    group_members,
    process_table,
    wakeups,
)
from processes.supervisor.tree import Tree  # noqa: F401

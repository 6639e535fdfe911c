"""The heartbeat lane: each supervised cluster's pusher reads its own lane before the shared
queue, so a beat is a real task through the same broker and workers."""

from __future__ import annotations

import hashlib
import logging
import os
import time

from django.utils import timezone
from django_q.brokers import orm, redis_broker

logger = logging.getLogger("processes.supervisor")  # one name in the logs, as documented


LANE_ENV = "FLOWDESK_HEARTBEAT_LANE"
QUICK_EXIT = 30.0  # a qcluster that exits sooner than this after its start is crash-looping
MAX_BACKOFF = 30.0
ORM_LANE_POLL = 0.5  # seconds between two looks at the heartbeat lane by the ORM pusher


class _QuietHeartbeats(logging.Filter):
    """Keep django-q's INFO lines about heartbeats (three per beat) out of the logs.

    Installed on import: the sentinel imports this module (the broker class) before it forks the
    workers, pusher and monitor, so the filter is in every process of a cluster.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        message = record.getMessage()
        return "heartbeat" not in message and ".beat." not in message


logging.getLogger("django-q").addFilter(_QuietHeartbeats())


def lane_name(cluster: str, supervisor_id: str) -> str:
    """The broker key of one supervisor's heartbeats (OrmQ.key holds 100 characters)."""
    name = f"{cluster}.beat.{supervisor_id}"
    if len(name) > 90:
        digest = hashlib.sha1(supervisor_id.encode()).hexdigest()[:16]
        name = f"{cluster[:60]}.beat.{digest}"
    return name


class RedisBroker(redis_broker.Redis):
    """django-q2's Redis broker; a supervised cluster's pusher pops its heartbeat lane first.

    One BLPOP on two keys (Redis serves the first non-empty one in order): no extra round trip.
    """

    def dequeue(self):
        lane = os.environ.get(LANE_ENV)
        if not lane:
            return super().dequeue()
        task = self.connection.blpop([f"django_q:{lane}:q", self.list_key], 1)
        if task:
            return [(None, task[1])]
        return None


class OrmBroker(orm.ORM):
    """django-q2's ORM broker; a supervised cluster's pusher looks at its heartbeat lane first,
    at most every ``ORM_LANE_POLL`` seconds (one small query on the queue table, which holds
    only queued tasks)."""

    _lane_seen = 0.0

    def dequeue(self):
        lane = os.environ.get(LANE_ENV)
        now = time.monotonic()
        if lane and now - self._lane_seen >= ORM_LANE_POLL:
            self._lane_seen = now
            for task in self.get_connection().filter(key=lane, lock__lt=timezone.now())[:1]:
                taken = (
                    self.get_connection()
                    .filter(id=task.id, lock=task.lock)
                    .update(lock=self.timeout(task))
                )
                if taken:
                    return [(task.pk, task.payload)]
        return super().dequeue()

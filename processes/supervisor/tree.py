"""The qcluster process tree the supervisor runs: started in a process group of its own,
SIGKILLed as a group, its orphans reaped, stopped within the grace."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

from django.utils import timezone

from processes.supervisor.lane import LANE_ENV, MAX_BACKOFF, QUICK_EXIT
from processes.supervisor.procfs import group_members, process_table

logger = logging.getLogger("processes.supervisor")  # one name in the logs, as documented


@dataclass
class Tree:
    """One qcluster process tree: its main process (our child) and what we know about it."""

    proc: subprocess.Popen
    started: float  # monotonic
    returncode: int | None = None
    sentinel: int | None = None
    sentinel_wakeups: int | None = None
    sentinel_woke: float = 0.0  # monotonic time its wake-up count last changed

    @property
    def pgid(self) -> int:
        return self.proc.pid


class TreeControl:
    """Starting, killing, reaping and stopping the qcluster tree (a part of ``Supervisor``)."""

    def _start_tree(self) -> None:
        self._watch_workers(time.monotonic(), tree_gone=True)  # what the dead tree's workers held
        self._clear_progress()
        self._purge_lane()
        env = dict(os.environ)
        env[LANE_ENV] = self.lane
        env["FLOWDESK_PROGRESS_DIR"] = self.progress_dir
        proc = subprocess.Popen(self.config.command, env=env, process_group=0)
        now = time.monotonic()
        self.tree = Tree(proc=proc, started=now, sentinel_woke=now)
        self.unreturned_since = None
        self.next_beat = now  # the first beat waits in the lane until the pusher is up
        logger.info("qcluster started: pid %s (process group %s)", proc.pid, proc.pid)
        self._save(tree_pgid=proc.pid, tree_started_at=timezone.now())
        self._recover()

    def _tree_exited(self, now: float) -> None:
        tree = self.tree
        lived = now - tree.started
        logger.error(
            "qcluster %s exited with %s after %.1fs: restarting its process tree",
            tree.pgid,
            _exit_text(tree.returncode),
            lived,
        )
        self._kill_tree()
        self.restarts += 1
        # Killed, or its sentinel died (it then exits with 0): start again at once. An error
        # exit right after the start (the database is down, a bad setting): back off.
        crashed = tree.returncode is not None and tree.returncode > 0
        self.quick_exits = self.quick_exits + 1 if crashed and lived < QUICK_EXIT else 0
        delay = min(MAX_BACKOFF, 2.0 ** (self.quick_exits - 2)) if self.quick_exits > 1 else 0.0
        if delay:
            logger.error("qcluster keeps failing: next start in %.0fs", delay)
        self.restart_at = now + delay

    def _restart(self, reason: str) -> None:
        logger.error("restarting qcluster %s: %s", self.tree.pgid, reason)
        self._kill_tree()
        self.restarts += 1
        self.restart_at = 0.0
        self._start_tree()

    def _kill_tree(self, timeout: float = 10.0) -> None:
        """SIGKILL the tree's process group and wait until it is gone (reaping what we can)."""
        tree, self.tree = self.tree, None
        if tree is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(tree.pgid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while True:
            self._reap(tree)
            table = process_table()
            left = group_members(tree.pgid, table)
            # Zombies count too: a killed worker's exit is reparented to us (the subreaper) only
            # once its parent is reaped, so wait until the whole group, zombies included, is gone.
            ours = {os.getpid(), *(pid for pid, (_, g, _) in table.items() if g == tree.pgid)}
            zombies = [
                pid
                for pid, (parent, group, _) in table.items()
                if group == tree.pgid and parent in ours
            ]
            if not left and not zombies and tree.returncode is not None:
                break
            if time.monotonic() > deadline:
                logger.error("processes %s of qcluster %s outlived SIGKILL", left, tree.pgid)
                break
            time.sleep(0.02)

    def _reap(self, tree: Tree | None = None) -> None:
        """Collect the exit status of our child and of orphans we adopted."""
        tree = tree or self.tree
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if tree is not None and pid == tree.proc.pid:
                tree.returncode = tree.proc.returncode = os.waitstatus_to_exitcode(status)

    # Shutting down.

    def _shutdown(self) -> None:
        tree = self.tree
        if tree is not None and tree.returncode is None:
            grace = 0.0 if self.stop_signals > 1 else self.config.grace
            logger.info("stopping qcluster %s (up to %.0fs for running steps)", tree.pgid, grace)
            with contextlib.suppress(ProcessLookupError):
                os.kill(tree.pgid, signal.SIGTERM)
            asked = time.monotonic()
            sentinel_gone = None
            while tree.returncode is None and time.monotonic() < asked + grace:
                self._reap(tree)
                if self.stop_signals > 1:
                    break
                if sentinel_gone is None and not self._sentinel_alive(tree):
                    sentinel_gone = time.monotonic()
                if sentinel_gone is not None and time.monotonic() > sentinel_gone + 2:
                    # Its sentinel is gone and qcluster is still there (SIGTERM to every
                    # process, as systemd sends, kills the sentinel at once): qcluster may hang
                    # on a lock the sentinel held (django-q2 #346). Don't wait for the grace.
                    logger.warning(
                        "qcluster %s still runs 2s after its sentinel ended: SIGKILL", tree.pgid
                    )
                    break
                time.sleep(0.05)
            else:
                if tree.returncode is None:
                    logger.warning("qcluster %s did not stop in %.0fs: SIGKILL", tree.pgid, grace)
        self._kill_tree()  # the rest of the group, in any case
        self._reap()
        self.state = "stopped"
        self._deregister()
        if self.own_progress_dir:
            shutil.rmtree(self.progress_dir, ignore_errors=True)
        logger.info("supervisor stopped")

    @staticmethod
    def _sentinel_alive(tree: Tree) -> bool:
        if tree.sentinel is None:
            return True  # not known yet: give qcluster its grace
        state = process_table().get(tree.sentinel, (0, 0, "Z"))[2]
        return state != "Z"


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"code {code}"

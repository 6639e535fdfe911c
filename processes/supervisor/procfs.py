"""The process table, read from /proc: who is in a qcluster tree, who is a zombie, who sleeps."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os

logger = logging.getLogger("processes.supervisor")  # one name in the logs, as documented


def process_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, process group, state letter), read from /proc."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        table[int(name)] = (int(fields[1]), int(fields[2]), fields[0])
    return table


def descendants(pid: int, table: dict | None = None) -> list[int]:
    """Every process below ``pid`` (children, their children, ...)."""
    table = table if table is not None else process_table()
    children: dict[int, list[int]] = {}
    for child, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(child)
    found, todo = [], list(children.get(pid, ()))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, ()))
    return found


def group_members(pgid: int, table: dict | None = None) -> list[int]:
    """Processes of process group ``pgid`` that are not zombies."""
    table = table if table is not None else process_table()
    return [pid for pid, (_, group, state) in table.items() if group == pgid and state != "Z"]


def wakeups(pid: int) -> int | None:
    """Voluntary context switches of ``pid``'s main thread (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("voluntary_ctxt_switches:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def become_subreaper() -> None:
    """Adopt orphaned descendants (PR_SET_CHILD_SUBREAPER) so their exit status is reaped here."""
    # Not Linux: orphans go to init, which reaps them.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)

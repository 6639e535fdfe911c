"""Read queries of the inbox. Views call these; nothing here writes.

Who sees and may act on a human task is one rule, ``processes.authority.task_rights``; the lists
use its SQL twins (``authority.listed_q`` and friends) on the partial indexes of open human
tasks, and a test checks that both agree. Global permissions, ``is_staff`` and superuser status
put nothing in anyone's inbox: the inbox is a person's work list, made of their roles and the
tasks they hold. Operators (a ``view_process`` grant) open any task of their definitions
read-only; nobody decides a task that isn't theirs.
"""

from __future__ import annotations

import datetime as dt

from django.contrib.auth import get_user_model
from django.db import connections
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from processes import authority, control
from processes.models import (
    Absence,
    ProcessDefinition,
    ProcessEvent,
    TaskInstance,
    TaskState,
    TaskType,
    overdue_q,
)
from processes.selectors import human_task_with_rights

TABS = {
    "assigned": _("Assigned to me"),
    "roles": _("My roles"),
    "overdue": _("Overdue"),
    "done": _("Done by me"),
}
DEFAULT_TAB = "roles"
SORTS = {
    "due": _("Due soonest"),
    "-due": _("Due latest"),
    "age": _("Oldest first"),
    "-age": _("Newest first"),
}
DEFAULT_SORT = "due"
# The list's filters besides the tab: due window (the overdue rule is models.overdue_q).
DUE_FILTERS = {
    "overdue": _("Overdue"),
    "today": _("Due today"),
    "week": _("Due within 7 days"),
    "none": _("No due date"),
}
MAX_QUERY = 200
# What a list row shows: loading less keeps a page of 25 rows cheap to build.
LIST_FIELDS = (
    "id",
    "name",
    "type",
    "state",
    "candidate_role",
    "assignee_id",
    "claimed_by_id",
    "decided_by_id",
    "due_at",
    "escalated_at",
    "scheduled_at",
    "finished_at",
    "result",
    "process__id",
    "process__business_key",
    "process__current_stage",
    "process__state",
    "process__variables",
    "process__definition_id",
    "process__definition__id",
    "process__definition__key",
    "process__definition__name",
    "process__definition__spec",
    "visibility",
    "participants",
    "assignee__id",
    "assignee__username",
    "claimed_by__id",
    "claimed_by__username",
    "on_behalf_of__id",
    "on_behalf_of__username",
)


def role_names(user) -> list[str]:
    """The roles (group names) of ``user``; none for anonymous or inactive users."""
    return sorted(authority.roles_of(user))


def _ordering(sort: str, tab: str) -> list:
    if sort == "-due":
        return [F("due_at").desc(nulls_last=True), "-id"]
    if sort == "age":
        return ["scheduled_at", "id"]
    if sort == "-age":
        return [F("scheduled_at").desc(nulls_last=True), "-id"]
    if tab == "done" and sort not in SORTS:
        return ["-finished_at", "-id"]
    return [F("due_at").asc(nulls_last=True), "id"]


def inbox_tasks(
    *,
    user,
    tab: str = DEFAULT_TAB,
    sort: str = DEFAULT_SORT,
    q: str = "",
    roles: list[str] | None = None,
    now=None,
    definition: str = "",
    due: str = "",
) -> QuerySet[TaskInstance]:
    """Human tasks of one inbox tab, newest data only for what the list shows.

    - assigned: open tasks ``user`` holds (assigned to them, delegated to them or claimed);
    - roles: open tasks of ``user``'s roles they may see listed (held ones shown as such);
    - overdue: open tasks of either kind whose due time has passed;
    - done: tasks ``user`` decided, newest first by default.
    """
    if not user.is_authenticated or not user.is_active:
        return TaskInstance.objects.none()
    if roles is None:
        roles = role_names(user)
    now = now or timezone.now()
    human = TaskInstance.objects.filter(type=TaskType.HUMAN)
    if tab == "done":
        qs = human.filter(decided_by=user)
    else:
        open_ = human.filter(state=TaskState.SCHEDULED)
        if tab == "assigned":
            qs = open_.filter(authority.held_by_q(user))
        elif tab == "overdue":
            qs = open_.filter(authority.listed_q(user, roles)).filter(overdue_q(now))
        else:
            roles_q = Q(pk__in=[])
            for role in roles:
                roles_q |= authority.role_listed_q(user, role)
            qs = open_.filter(roles_q)
    qs = control.search_filter(qs, clean_query(q), prefix="process__")
    if definition:
        qs = qs.filter(definition_key=definition)
    qs = _due_window(qs, due, now)
    return _for_list(qs).order_by(*_ordering(sort, tab))


def _due_window(qs: QuerySet[TaskInstance], due: str, now) -> QuerySet[TaskInstance]:
    if due == "overdue":
        return qs.filter(overdue_q(now))
    if due == "today":
        end = timezone.localtime(now).replace(hour=23, minute=59, second=59, microsecond=999999)
        return qs.filter(due_at__lte=end)
    if due == "week":
        return qs.filter(due_at__lte=now + dt.timedelta(days=7))
    if due == "none":
        return qs.filter(due_at__isnull=True)
    return qs


def tab_counts(*, user, roles: list[str], now=None) -> dict[str, int]:
    """How many open tasks wait in each open tab (the tab labels show them)."""
    if not user.is_authenticated or not user.is_active:
        return {}
    return {
        "assigned": inbox_tasks(user=user, tab="assigned", roles=roles, now=now).count(),
        "roles": RolePages(user=user, roles=roles, sort=DEFAULT_SORT).count(),
        "overdue": inbox_tasks(user=user, tab="overdue", roles=roles, now=now).count(),
    }


def definition_choices(user, roles: list[str]) -> list[tuple[str, str, int]]:
    """(key, name, open tasks) of the definitions of the open tasks in ``user``'s inbox, for the
    process filter.

    Counted on the tasks' own ``definition_key`` in two disjoint parts that each read one index
    (one UNION ALL query): the roles' tasks (``task_open_human_listing``, no table rows at all)
    and the few tasks held outside those roles. Then the definitions' names.
    """
    if not user.is_authenticated or not user.is_active:
        return []
    open_ = TaskInstance.objects.filter(type=TaskType.HUMAN, state=TaskState.SCHEDULED).order_by()
    of_roles = open_.filter(authority.roles_listed_q(user, roles))
    held_elsewhere = open_.filter(authority.held_by_q(user)).exclude(candidate_role__in=list(roles))
    counts: dict[str, int] = {}
    for key, n in (
        of_roles.values_list("definition_key")
        .annotate(n=Count("id"))
        .union(held_elsewhere.values_list("definition_key").annotate(n=Count("id")), all=True)
    ):
        counts[key] = counts.get(key, 0) + n
    if not counts:
        return []
    names = dict.fromkeys(counts, "")
    for key, name in (
        ProcessDefinition.objects.filter(key__in=counts)
        .order_by("key", "version")
        .values_list("key", "name")
    ):
        names[key] = name  # the newest version's name wins
    rows = [(key, names[key] or key, n) for key, n in counts.items()]
    return sorted(rows, key=lambda row: row[1].lower())


def clean_query(q: str) -> str:
    return (q or "").replace("\x00", "").strip()[:MAX_QUERY]  # PostgreSQL text refuses NUL


def _for_list(qs: QuerySet[TaskInstance]) -> QuerySet[TaskInstance]:
    return qs.select_related(
        "process", "process__definition", "assignee", "claimed_by", "on_behalf_of"
    ).only(*LIST_FIELDS)


def _merge_key(sort: str):
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    if sort == "-due":
        return lambda row: (row[1] is None, -(row[1] or far).timestamp(), -row[0])
    if sort == "age":
        return lambda row: (row[2] is None, row[2] or far, row[0])
    if sort == "-age":
        return lambda row: (row[2] is None, -(row[2] or far).timestamp(), -row[0])
    return lambda row: (row[1] is None, row[1] or far, row[0])


class RolePages:
    """The *My roles* list for the paginator, fast for people in several big roles.

    ``candidate_role IN (a, b, c) ORDER BY due_at`` reads every open task of those roles and
    sorts them. Instead, read each role's first ``offset + page`` tasks in index order
    (``task_open_human_role`` is ``(candidate_role, due_at)``), in one UNION ALL query, merge
    them here, and load only the page's rows.
    """

    ordered = True

    def __init__(self, *, user, roles: list[str], sort: str):
        self.user = user
        self.roles = roles
        self.sort = sort if sort in SORTS else DEFAULT_SORT
        self.open = TaskInstance.objects.filter(type=TaskType.HUMAN, state=TaskState.SCHEDULED)

    def count(self) -> int:
        if not self.roles:
            return 0
        return self.open.filter(authority.roles_listed_q(self.user, self.roles)).count()

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, item):
        if not isinstance(item, slice) or item.stop is None:
            raise TypeError("RolePages supports bounded slices only")
        if not self.roles:
            return []
        start, stop = item.start or 0, item.stop
        ordering = _ordering(self.sort, "roles")
        parts = [
            self.open.filter(authority.role_listed_q(self.user, role))
            .order_by(*ordering)
            .values_list("pk", "due_at", "scheduled_at")[:stop]
            for role in self.roles
        ]
        if len(parts) == 1:
            rows = list(parts[0])
        elif connections[self.open.db].features.supports_slicing_ordering_in_compound:
            rows = list(parts[0].union(*parts[1:], all=True))
        else:  # SQLite refuses LIMIT inside UNION members: one query per role
            rows = [row for part in parts for row in part]
        ids = [row[0] for row in sorted(rows, key=_merge_key(self.sort))[start:stop]]
        by_id = {t.pk: t for t in _for_list(TaskInstance.objects.filter(pk__in=ids))}
        return [by_id[i] for i in ids if i in by_id]


def inbox_list(
    *,
    user,
    tab: str = DEFAULT_TAB,
    sort: str = DEFAULT_SORT,
    q: str = "",
    roles=None,
    now=None,
    definition: str = "",
    due: str = "",
):
    """What the inbox page paginates: ``RolePages`` for *My roles* without a search or filter,
    else the ``inbox_tasks`` queryset."""
    if roles is None:
        roles = role_names(user)
    filtered = clean_query(q) or definition or due
    if tab == "roles" and not filtered and user.is_authenticated and user.is_active:
        return RolePages(user=user, roles=roles, sort=sort)
    return inbox_tasks(
        user=user, tab=tab, sort=sort, q=q, roles=roles, now=now, definition=definition, due=due
    )


def task_for_user(*, user, task_id):
    """The human task ``task_id`` with ``user``'s rights if they may see it, else None (a 404)."""
    return human_task_with_rights(user, task_id)


def delegate_candidates(task: TaskInstance, *, exclude=None) -> QuerySet:
    """Active members of the task's role a task may be delegated to."""
    qs = get_user_model().objects.filter(is_active=True, groups__name=task.candidate_role)
    if exclude is not None:
        qs = qs.exclude(pk=exclude.pk)
    if task.assignee_id:
        qs = qs.exclude(pk=task.assignee_id)
    return qs.order_by("username").distinct()


def process_tasks(process) -> QuerySet[TaskInstance]:
    return TaskInstance.objects.filter(process=process).only(
        "id", "name", "stage", "stage_index", "type", "state", "process_id"
    )


def process_timeline(process, limit: int = 500) -> list[ProcessEvent]:
    return list(ProcessEvent.objects.filter(process=process).order_by("seq")[:limit])


def absences_of(user, *, today, past: int = 5) -> list[Absence]:
    """``user``'s absences under way and to come, then their last few past ones."""
    mine = Absence.objects.filter(user=user).select_related("substitute")
    current = list(mine.filter(ends_on__gte=today).order_by("starts_on", "id"))
    return current + list(mine.filter(ends_on__lt=today).order_by("-ends_on", "-id")[:past])


def away_now(user, *, today) -> Absence | None:
    """``user``'s absence under way ``today``, if any (the inbox says so)."""
    return Absence.objects.on(today).filter(user=user).select_related("substitute").first()


def substitute_choices(user) -> QuerySet:
    """Whom ``user`` may name as substitute: active members of one of their roles."""
    return (
        get_user_model()
        .objects.filter(is_active=True, groups__name__in=role_names(user))
        .exclude(pk=user.pk)
        .distinct()
        .order_by("username")
    )

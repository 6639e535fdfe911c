"""Who may do what: one home for every permission rule of Flowdesk.

Two kinds of right, each defined once here and read by the engine, the inbox, the API and the
admin alike (``tests/test_authority_agreement.py`` checks that every reader agrees):

**Definition grants** (django-guardian object permissions on a ``ProcessDefinition`` row; any
version of a key counts, so a grant survives new versions). ``is_staff`` grants nothing here:
it only lets a person log in to the admin. Superusers hold every grant. Model-level (global)
permissions grant nothing per definition; the one exception is ``add_processdefinition``, which
lets a person create a *new* key (and makes them its first publisher).

**Human tasks**: who may list, see, read, claim, decide and delegate one task
(``task_rights``). A task held by someone (its spec ``assignee``, a delegation or a claim) is
decided by that person only; an unheld task by any member of its candidate role. Separation of
duties (``not_by``, ``not_by_var``) bars people by what they did or who they are. The
definition's ``visibility`` says what the rest of the role sees. Deciding is personal: no grant,
not even superuser, lets someone decide a task that isn't theirs (operators skip or cancel).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet
from guardian.shortcuts import assign_perm, get_objects_for_user

from processes import spec as spec_module
from processes.db import grants
from processes.models import (
    ACTIVE_PROCESS_STATES,
    Absence,
    ProcessDefinition,
    TaskInstance,
    TaskState,
    TaskType,
)

# --- definition grants ----------------------------------------------------------------------------

START = "processes.start_process"
VIEW = "processes.view_process"
OPERATE = "processes.operate_process"
PUBLISH = "processes.publish_definition"
CORRECT = "processes.correct_variables"
CREATE_KEYS = "processes.add_processdefinition"  # global: may create new definition keys
SEE = (VIEW, OPERATE, CORRECT)  # operating or correcting a definition's processes implies seeing
ANY = (START, VIEW, OPERATE, PUBLISH, CORRECT)  # any grant makes the definition visible


def _perm_list(perms) -> list[str]:
    return [perms] if isinstance(perms, str) else list(perms)


def is_superuser(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active and user.is_superuser)


def granted_keys(user, perms) -> QuerySet | None:
    """Definition keys on which ``user`` holds any of ``perms``; None means every key."""
    if is_superuser(user):
        return None
    if not user or not user.is_authenticated or not user.is_active:
        return ProcessDefinition.objects.none().values("key")
    return get_objects_for_user(
        user,
        _perm_list(perms),
        klass=ProcessDefinition,
        any_perm=True,
        accept_global_perms=False,
        with_superuser=False,
    ).values("key")


def codenames(perms) -> list[str]:
    return [p.split(".", 1)[1] for p in _perm_list(perms)]


def has_definition_perm(user, perms, definition_key: str) -> bool:
    """Whether ``user`` holds any of ``perms`` on some version of ``definition_key``.

    The same rule as ``granted_keys``, as one fixed statement (``db.grants``): every API detail
    and write asks it.
    """
    if is_superuser(user):
        return True
    if not user or not user.is_authenticated or not user.is_active:
        return False
    return grants.has_grant(user, codenames(perms), definition_key)


def has_any_grant(user, perms=ANY) -> bool:
    """Whether ``user`` holds any of ``perms`` on at least one definition (admin menus)."""
    keys = granted_keys(user, perms)
    return keys is None or keys.exists()


def may_publish(user, definition_key: str) -> bool:
    """Publishing a version of ``definition_key``: ``publish_definition`` on that key, or, for a
    key nobody created yet, the global ``add_processdefinition``."""
    if is_superuser(user):
        return True
    if not user or not user.is_authenticated or not user.is_active:
        return False
    if ProcessDefinition.objects.filter(key=definition_key).exists():
        return has_definition_perm(user, PUBLISH, definition_key)
    return user.has_perm(CREATE_KEYS)


def may_migrate(user, definition_key: str) -> bool:
    """Moving running instances of ``definition_key`` to another version: it changes both what
    the definition is (``publish_definition``) and running cases (``operate_process``)."""
    return has_definition_perm(user, PUBLISH, definition_key) and has_definition_perm(
        user, OPERATE, definition_key
    )


def may_create_keys(user) -> bool:
    return is_superuser(user) or bool(
        user and user.is_authenticated and user.is_active and user.has_perm(CREATE_KEYS)
    )


def grant_first_publisher(user, definition: ProcessDefinition) -> None:
    """Whoever creates a new key may publish and see its versions from then on."""
    if user is None or not user.pk or user.is_superuser:
        return
    assign_perm(PUBLISH, user, definition)
    assign_perm(VIEW, user, definition)


# --- human tasks ----------------------------------------------------------------------------------

PRIVATE, PARTICIPANTS, ROLE = spec_module.VISIBILITIES


@dataclass(frozen=True)
class TaskRights:
    """What one person may do with one human task.

    ``listed``: it is in their inbox (their work); ``see``: its page opens (business key, state,
    who holds it); ``read``: its variables (the task's ``show`` list) and result are shown.
    ``refusal`` says in plain words why a person who could otherwise decide may not.
    """

    listed: bool = False
    see: bool = False
    read: bool = False
    claim: bool = False
    decide: bool = False
    delegate: bool = False
    release: bool = False
    refusal: str = ""


NOTHING = TaskRights()


def roles_of(user) -> frozenset[str]:
    """The roles (group names) of ``user`` as the database holds them now (one query; nothing is
    kept on the user object: a caller that needs them twice passes the value along)."""
    if not user or not user.is_authenticated or not user.is_active:
        return frozenset()
    return frozenset(user.groups.values_list("name", flat=True))


def holder_id(task: TaskInstance) -> int | None:
    """Who holds an open task: its claimant, else its assignee (None: the whole role)."""
    return task.claimed_by_id or task.assignee_id


def is_participant(user, task: TaskInstance) -> bool:
    """Whether ``user`` held or decided ``task`` at some point."""
    return user.pk in (task.assignee_id, task.claimed_by_id, task.decided_by_id) or (
        user.pk in (task.participants or [])
    )


def separation_refusal(
    user, task: TaskInstance, *, process, spec, tasks: dict[str, TaskInstance], person=None
) -> str:
    """Why separation of duties bars ``user`` from deciding ``task``, in plain words ("" if not).

    Worded for ``user`` themself ("You started ..."), or about them when ``person`` is given
    (a delegation to them is refused). ``not_by`` is symmetric for tasks: whoever decided task A
    may not decide task B when either names the other, so the order of the two doesn't matter.
    """
    who = "You" if person is None else person.get_username()
    task_spec = spec.task(task.name)
    if spec_module.INITIATOR in task_spec.not_by and process.started_by_user_id == user.pk:
        return f"{who} started this process, so someone else must decide this task."
    for other in tasks.values():
        if other.name == task.name or other.decided_by_id != user.pk:
            continue
        try:
            other_spec = spec.task(other.name)
        except KeyError:
            continue
        if other.name in task_spec.not_by or task.name in other_spec.not_by:
            label = other_spec.label or other.name.replace("_", " ")
            return (
                f"{who} decided “{label}” of this process, so a second person must decide this "
                "one (four eyes)."
            )
    username = (user.get_username() or "").casefold()
    for path in task_spec.not_by_var:
        value = spec_module.lookup(process.variables or {}, path)
        if isinstance(value, str) and value.casefold() == username:
            about = "you" if person is None else "them"
            return f"This decision is about {about}, so someone else must make it."
    return ""


def away_until(user, day):
    """The last day of ``user``'s absence covering ``day``, or None when they are not away."""
    if user is None or not user.pk:
        return None
    return (
        Absence.objects.on(day)
        .filter(user_id=user.pk)
        .order_by("-ends_on")
        .values_list("ends_on", flat=True)
        .first()
    )


def handover_refusal(
    to_user, task: TaskInstance, *, process, spec, tasks: dict[str, TaskInstance], day
) -> str:
    """Why ``to_user`` may not be handed open ``task`` (a delegation, a substitute covering an
    absence), in plain words ("" if they may): they must be active, of the task's role, not
    away on ``day`` themself, and not barred by separation of duties."""
    if to_user is None or not to_user.is_active:
        return "unknown or inactive user"
    name = to_user.get_username()
    if task.candidate_role and task.candidate_role not in roles_of(to_user):
        return f"{name} is not a member of {task.candidate_role}"
    until = away_until(to_user, day)
    if until is not None:
        return f"{name} is away until {until:%Y-%m-%d}"
    return separation_refusal(
        to_user, task, process=process, spec=spec, tasks=tasks, person=to_user
    )


def task_rights(
    user,
    task: TaskInstance,
    *,
    process,
    spec,
    tasks: dict[str, TaskInstance] | None = None,
    operator: bool = False,
    roles: frozenset[str] | None = None,
) -> TaskRights:
    """What ``user`` may do with human ``task`` of ``process`` (whose parsed spec is ``spec``).

    ``tasks``: the process's tasks by name (for four-eyes checks), read when not given.
    ``operator``: ``user`` holds a grant that shows the definition's processes (``SEE``), which
    lets them read any of its tasks (never decide them). ``roles``: ``roles_of(user)`` when the
    caller already read them.
    """
    if not user or not user.is_authenticated or not user.is_active:
        return NOTHING
    if task.type != TaskType.HUMAN or task.state == TaskState.PENDING:
        return TaskRights(see=operator, read=operator) if operator else NOTHING
    uid = user.pk
    if roles is None:
        roles = roles_of(user)
    in_role = bool(task.candidate_role) and task.candidate_role in roles
    participant = is_participant(user, task)
    visibility = task.visibility or PARTICIPANTS
    is_open = task.state == TaskState.SCHEDULED and process.state in ACTIVE_PROCESS_STATES
    holder = holder_id(task)

    if is_open and (holder == uid or (holder is None and in_role)):
        if tasks is None:
            tasks = {t.name: t for t in TaskInstance.objects.filter(process_id=task.process_id)}
        refusal = separation_refusal(user, task, process=process, spec=spec, tasks=tasks)
        return TaskRights(
            listed=True,
            see=True,
            read=True,
            claim=holder is None and not refusal,
            decide=not refusal,
            delegate=True,
            release=task.claimed_by_id == uid,
            refusal=refusal,
        )
    if is_open:  # held by someone else, or not of this person's roles
        listed = in_role and visibility != PRIVATE
        see = listed or participant or operator
        read = participant or operator or (in_role and visibility == ROLE)
        return TaskRights(listed=listed, see=see, read=read)
    # closed: the role sees it was done (unless private); its data is for those who had it,
    # and for the role when the definition says so
    see = participant or operator or (in_role and visibility != PRIVATE)
    read = participant or operator or (in_role and visibility == ROLE)
    return TaskRights(see=see, read=read)


def attachment_rights(user, process, *, spec, tasks) -> tuple[bool, bool]:
    """(may read, may add) the files of ``process``: reading follows its human tasks (whoever
    reads one of them) and the definition's grants (``SEE``); adding, whoever may decide one of
    its open tasks, and its operators. Anyone else is told the case doesn't exist (404)."""
    if not user or not user.is_authenticated or not user.is_active:
        return False, False
    if is_superuser(user):
        return True, True
    key = process.definition_key
    operator = has_definition_perm(user, SEE, key)
    names = {t.name for t in spec.tasks}
    rights = [
        task_rights(user, t, process=process, spec=spec, tasks=tasks)
        for t in tasks.values()
        if t.type == TaskType.HUMAN and t.name in names
    ]
    read = operator or any(r.read for r in rights)
    add = any(r.decide for r in rights) or has_definition_perm(user, OPERATE, key)
    return read or add, add


def visible_variables(variables: dict, task_spec) -> dict:
    """The part of ``variables`` a task's deciders see: its ``show`` paths, or everything."""
    if task_spec.show is None:
        return dict(variables or {})
    shown: dict = {}
    for path in task_spec.show:
        value = spec_module.lookup(variables or {}, path)
        if value is spec_module.MISSING:
            continue
        parts = path.split(".")
        target = shown
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                break
        else:
            target[parts[-1]] = value
    return shown


def path_visible(path: str, task_spec) -> bool:
    """Whether a task's deciders see variable ``path``: it is one of its ``show`` paths or under
    one (every path, without ``show``)."""
    if task_spec.show is None:
        return True
    return any(path == shown or path.startswith(shown + ".") for shown in task_spec.show)


def visible_changes(changes: dict, task_spec) -> dict:
    """The part of a correction's ``changes`` (``{path: {"before": v, "after": v}}``, a side
    left out when absent) a task's deciders see, the same rule as ``visible_variables``: the
    paths they see whole, and for a path above a ``show`` path (``bonus`` above
    ``bonus.amount``) only that shown part, when it changed."""
    if task_spec.show is None:
        return dict(changes)
    seen: dict = {}
    for path, change in changes.items():
        if path_visible(path, task_spec):
            seen[path] = change
            continue
        for shown in task_spec.show:
            if not shown.startswith(path + "."):
                continue
            rest = shown[len(path) + 1 :]
            part = {}
            for side in ("before", "after"):
                if isinstance(change.get(side), dict):
                    value = spec_module.lookup(change[side], rest)
                    if value is not spec_module.MISSING:
                        part[side] = value
            missing = spec_module.MISSING
            if part and part.get("before", missing) != part.get("after", missing):
                seen[shown] = part
    return seen


# --- the same rule as SQL, for lists --------------------------------------------------------------


def held_by_q(user) -> Q:
    """Open tasks ``user`` holds: claimed by them, or assigned to them and claimed by nobody."""
    return Q(claimed_by=user) | Q(claimed_by__isnull=True, assignee=user)


def listed_q(user, roles) -> Q:
    """Open human tasks in ``user``'s inbox (``TaskRights.listed``): those they hold, and those
    of their roles that nobody holds or whose definition doesn't keep them private."""
    unheld = Q(claimed_by__isnull=True, assignee__isnull=True)
    of_roles = Q(candidate_role__in=list(roles)) & (unheld | ~Q(visibility=PRIVATE))
    return held_by_q(user) | of_roles


def role_listed_q(user, role: str) -> Q:
    """The open tasks of one of ``user``'s roles in their inbox (the *My roles* tab reads each
    role on its own index): unheld, not private, or held by them."""
    return Q(candidate_role=role) & _listed_in_role_q(user)


def roles_listed_q(user, roles) -> Q:
    """``role_listed_q`` over all of ``roles`` at once: one ``IN`` that the inbox's counts answer
    from one index alone (an OR per role would read every task's row)."""
    return Q(candidate_role__in=list(roles)) & _listed_in_role_q(user)


def _listed_in_role_q(user) -> Q:
    unheld = Q(claimed_by__isnull=True, assignee__isnull=True)
    return unheld | ~Q(visibility=PRIVATE) | held_by_q(user)

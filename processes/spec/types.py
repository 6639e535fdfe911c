"""The definition language's vocabulary: its constants and the frozen dataclasses a spec parses into."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

TASK_TYPES = ("SERVICE", "HUMAN", "PROCESS", "TIMER", "MESSAGE")
VALUE_TYPES = ("string", "text", "integer", "decimal", "boolean", "date", "choice")
# A form may also ask for a file (its value: the id of an attachment of the case).
FORM_FIELD_TYPES = (*VALUE_TYPES, "file")
# Declared input and results may also hold a list of values of one of the value types.
DATA_FIELD_TYPES = (*VALUE_TYPES, "list")
MAX_LIST_ITEMS = 10_000
CONDITION_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "exists", "truthy")
# Used with fullmatch (\Z, not $: "$" also matches before a trailing newline).
KEY_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,99}\Z")
NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_ .:-]{0,99}\Z")
VAR_PATH_RE = re.compile(r"[A-Za-z0-9_]{1,100}(\.[A-Za-z0-9_]{1,100}){0,20}\Z")
# A translated label's language: "fr", "de", "pt-BR" (BCP 47's language and region).
LANGUAGE_RE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?\Z")


class LocalText(str):
    """A definition's human-facing words (a label) with its translations: the string itself
    is the English one (else the first given), so code that reads it as text keeps working;
    ``in_language`` picks the one to show."""

    translations: dict[str, str]

    def __new__(cls, text: str, translations: dict[str, str] | None = None):
        obj = super().__new__(cls, text)
        obj.translations = dict(translations or {})
        return obj

    def __reduce__(self):
        return (LocalText, (str(self), self.translations))

    def in_language(self, language: str | None) -> str:
        """The words in ``language`` ("fr-ca" falls back to "fr"), else English, else the
        first translation given."""
        language = (language or "").lower()
        lowered = {code.lower(): text for code, text in self.translations.items()}
        for code in (language, language.split("-")[0]):
            if code in lowered:
                return lowered[code]
        return str(self)


def in_language(text: str, language: str | None) -> str:
    """``text`` in ``language`` when it is a translated label; plain text as it is."""
    return text.in_language(language) if isinstance(text, LocalText) else text


# Fields of a task this language understands; any other field is kept and passed through
# in the StartTask payload, as the seed's workflow manager does.
KNOWN_TASK_FIELDS = {
    "task_name",
    "parent_task",
    "task_queue",
    "task_type",
    "business_status",
    "waiting_status",
    "assigned_to",
    "assignee",
    "handler",
    "retry",
    "timeout",
    "condition",
    "outcomes",
    "form",
    "escalation",
    "compensate",
    "on_error",
    "label",
    "description",
    "due",
    "not_by",
    "not_by_var",
    "show",
    "external_decision",
    "process",
    "on_timeout",
    "summary",
    "explain",
    "inline",
    "result",
    "wait",
    "until",
    "message",
}
# How a summary item shows its value (tasks_inbox.presenters formats them).
SUMMARY_FORMATS = ("text", "money", "number", "percent", "date", "datetime", "duration", "choice")
VISIBILITIES = ("private", "participants", "role")
BUSINESS_KEY_UNIQUE = ("active", "ever")
ON_FAILURE = ("incident", "compensate")  # what a task failing for good does to its process
# What happens when an external task's ``timeout`` or a human task's ``due`` (without escalation)
# passes: an incident while the task still waits, the task fails, or it is skipped.
ON_TIMEOUT = ("incident", "fail", "skip")
INITIATOR = "initiator"


class SpecValidationError(Exception):
    """Raised by ``parse_or_raise`` with every problem found."""

    def __init__(self, errors: list[SpecError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


@dataclass(frozen=True)
class SpecError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 1
    backoff: dt.timedelta = dt.timedelta(seconds=5)
    backoff_factor: float = 2.0
    max_backoff: dt.timedelta = dt.timedelta(hours=1)

    def delay_after(self, attempt: int) -> dt.timedelta:
        """Back-off before attempt ``attempt + 1`` (attempt counts from 1)."""
        seconds = self.backoff.total_seconds() * (self.backoff_factor ** max(attempt - 1, 0))
        return min(dt.timedelta(seconds=seconds), self.max_backoff)


@dataclass(frozen=True)
class Escalation:
    after: dt.timedelta
    to_role: str | None = None
    notify: bool = True


@dataclass(frozen=True)
class FieldRule:
    """``show_if`` / ``required_if`` of a form field: true when the form's ``field`` (or the
    ``decision``) equals ``equals``."""

    field: str
    equals: Any = None


@dataclass(frozen=True)
class FormField:
    """One typed field: of a human task's form, a definition's ``input`` or a SERVICE task's
    ``result`` (there ``name`` may be a dotted path, ``bonus.amount``). Checked by
    ``spec.data.coerce``."""

    name: str
    type: str = "string"
    label: str = ""
    required: bool = False
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    pattern: str | None = None  # string/text: a regular expression the whole value matches
    places: int | None = None  # decimal: at most this many places, stored with exactly these
    items: FormField | None = None  # list: what each element is (min/max: how many elements)
    accept: tuple[str, ...] = ()  # file: content types taken ("image/*"); empty: every known one
    max_size: int | None = None  # file: at most this many bytes
    show_if: FieldRule | None = None  # form: asked (and kept) only when this holds
    required_if: FieldRule | None = None  # form: required when this holds


@dataclass(frozen=True)
class ReworkSpec:
    """A decision outcome that sends the process back to an earlier stage (``goto``): that
    stage and every later one up to the deciding task's run again, at most ``max_rounds``
    rounds in all (the first included)."""

    outcome: str
    goto: str
    max_rounds: int = 3


@dataclass(frozen=True)
class CallSpec:
    """What a ``PROCESS`` task starts: one child process of ``definition`` (``version`` pinned,
    or the newest published), or one per element of the list variable ``for_each``. ``input``
    maps each child variable to a path in the parent's variables (``item`` and ``index`` name
    the element in a ``for_each``); ``output`` maps each result field to a path in the child's
    variables, read when it completes."""

    definition: str
    version: int | None = None
    for_each: str | None = None
    input: tuple[tuple[str, str], ...] = ()
    output: tuple[tuple[str, str], ...] = ()
    business_key: str | None = None  # a path giving the child's business key


DEFAULT_MAX_ROUNDS = 3
MAX_ROUNDS_LIMIT = 100


@dataclass(frozen=True)
class MessageSpec:
    """What a ``MESSAGE`` task waits for: the message ``name`` whose correlation key equals the
    value of the variable path ``key`` when the task starts waiting."""

    name: str
    key: str


@dataclass(frozen=True)
class SummaryItem:
    """One line of a human task's summary: "Bonus to approve: €409.32", read from ``var``."""

    label: str
    var: str
    format: str = "text"
    currency: str | None = None  # a fixed ISO currency code for money
    currency_var: str | None = None  # or the variable path that holds it


@dataclass(frozen=True)
class TaskSpec:
    name: str
    type: str
    stage: str
    parents: tuple[str, ...] = ()
    task_queue: str | None = None
    business_status: str | None = None  # set on the process when the task completes
    # set on the process when the task is scheduled: what the case waits for while it is open
    waiting_status: str | None = None
    assigned_to: str | None = None
    assignee: str | None = None  # variable path resolving to a username
    handler: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: dt.timedelta | None = None
    condition: Any = None
    outcomes: tuple[str, ...] = ()
    rework: tuple[ReworkSpec, ...] = ()  # outcomes that loop back (``{"goto": stage}``)
    # (outcome, label): the words a decision is shown with (``{"approve": {"label": ...}}``)
    outcome_labels: tuple[tuple[str, str], ...] = ()
    call: CallSpec | None = None  # a PROCESS task's child process
    form: tuple[FormField, ...] = ()
    escalation: Escalation | None = None
    due: dt.timedelta | None = None
    compensate: str | None = None
    notify_on_error: bool = True
    label: str = ""
    description: str = ""
    # Separation of duties (HUMAN): who may not decide this task. ``not_by``: "initiator" (whoever
    # started the process) or names of other human tasks (whoever decided them: four eyes);
    # ``not_by_var``: variable paths holding the username of the person the decision is about.
    not_by: tuple[str, ...] = ()
    not_by_var: tuple[str, ...] = ()
    show: tuple[str, ...] | None = None  # variable paths its deciders see; None: every variable
    external_decision: bool = False  # may be decided by a TaskCompleted seed event too
    on_timeout: str = "incident"  # ON_TIMEOUT: when the external timeout / human due passes
    summary: tuple[SummaryItem, ...] = ()  # the facts a decider needs first (HUMAN)
    # How the amount came about (HUMAN): the figures it was computed from, in order, e.g. base,
    # rating, rate, amount; the same items as ``summary``, shown as a small calculation.
    explain: tuple[SummaryItem, ...] = ()
    result: tuple[FormField, ...] | None = None  # SERVICE: its declared result (None: free)
    # A pure-compute SERVICE handler run inside the engine transaction that makes it ready
    # (no queue, no lease: one ``task_completed`` event); a failed attempt retries on a worker.
    inline: bool = False
    wait: dt.timedelta | None = None  # TIMER: fires this long after it is scheduled
    until: str | None = None  # TIMER: or at the ISO date-time this variable path holds
    message: MessageSpec | None = None  # MESSAGE: the message it waits for
    extra: dict = field(default_factory=dict)

    def rework_for(self, outcome) -> ReworkSpec | None:
        return next((r for r in self.rework if r.outcome == outcome), None)

    def outcome_label(self, outcome) -> str:
        """The label the definition gives ``outcome`` (maybe translated), or ""."""
        return next((label for name, label in self.outcome_labels if name == outcome), "")

    @property
    def is_external(self) -> bool:
        """A SERVICE task with no handler is worked by an outside system polling its queue."""
        return self.type == "SERVICE" and not self.handler

    @property
    def wait_deadline(self) -> dt.timedelta | None:
        """How long this task may wait for the outside world before ``on_timeout`` applies: an
        external task's ``timeout``, a human task's ``due`` when it has no escalation."""
        if self.is_external:
            return self.timeout
        if self.type == "HUMAN" and self.escalation is None:
            return self.due
        return None


@dataclass(frozen=True)
class StageSpec:
    name: str
    order: float
    tasks: tuple[TaskSpec, ...] = ()


@dataclass(frozen=True)
class Retention:
    """How long a closed process is kept: whole years, months and days (ISO 8601 ``P7Y``)."""

    years: int = 0
    months: int = 0
    days: int = 0
    text: str = ""

    def cutoff(self, now: dt.datetime) -> dt.datetime:
        """The moment before which a process closed is due: ``now`` minus this retention (a
        month or year shorter than the day of ``now`` ends on its last day)."""
        months = now.year * 12 + (now.month - 1) - self.years * 12 - self.months
        year, month = divmod(months, 12)
        last_day = calendar.monthrange(year, month + 1)[1]
        moved = now.replace(year=year, month=month + 1, day=min(now.day, last_day))
        return moved - dt.timedelta(days=self.days)


@dataclass(frozen=True)
class ProcessSpec:
    key: str
    name: str
    component_name: str | None
    stages: tuple[StageSpec, ...]
    description: str = ""
    on_error_notify: bool = True
    visibility: str = "participants"  # who reads human tasks held by someone else (VISIBILITIES)
    business_key_unique: str = "active"  # "ever": a business key runs once, whatever its state
    on_failure: str = "incident"  # "compensate": undo the completed tasks, end ``compensated``
    deadline: dt.timedelta | None = None  # from the start; an incident (one SMS) when it passes
    retention: Retention | None = None  # closed instances older than this are archived
    input: tuple[FormField, ...] | None = None  # the declared input (None: free-form)
    search: tuple[str, ...] = ()  # variable paths cases are found by (spec.search)
    schedule: tuple = ()  # ScheduleSpec: starts at cron moments (spec.schedule)
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    def task(self, name: str) -> TaskSpec:
        for stage in self.stages:
            for task in stage.tasks:
                if task.name == name:
                    return task
        raise KeyError(name)

    def stage(self, name: str) -> StageSpec:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    @property
    def tasks(self) -> list[TaskSpec]:
        return [t for s in self.stages for t in s.tasks]

    def stage_index(self, name: str) -> int:
        return [s.name for s in self.stages].index(name)

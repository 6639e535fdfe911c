"""List filters and the paginator of the admin's instance and event lists.

Every filter here is chosen so the list stays fast with millions of rows: choices come from the
definitions (a few rows), never from a DISTINCT over the instances.
"""

from __future__ import annotations

import datetime as dt
import json

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connection
from django.utils import timezone
from django.utils.functional import cached_property

from processes import dashboard, selectors
from processes.models import ProcessDefinition, ProcessState

EXACT_COUNT_BELOW = 20_000


class EstimatedCountPaginator(Paginator):
    """On PostgreSQL, trust the planner's row estimate for big results instead of COUNT(*).

    Counting a million rows costs more than rendering the page; the admin only needs the order
    of magnitude. Small results (under ``EXACT_COUNT_BELOW`` estimated rows) are counted exactly.
    """

    estimated = False

    @cached_property
    def count(self) -> int:
        qs = self.object_list
        if connection.vendor != "postgresql" or not hasattr(qs, "query"):
            return super().count
        try:
            plan = json.loads(qs.order_by().explain(format="json"))
            estimate = int(plan[0]["Plan"]["Plan Rows"])
        except Exception:  # an estimate is an optimisation, never a reason to fail
            return super().count
        if estimate < EXACT_COUNT_BELOW:
            return super().count
        self.estimated = True
        return estimate


def _first(params: dict, name: str) -> str | None:
    value = params.pop(name, None)
    if isinstance(value, list):
        value = value[-1] if value else None
    return value


class DefinitionKeyFilter(admin.SimpleListFilter):
    title = "definition"
    parameter_name = "definition_key"

    def lookups(self, request, model_admin):
        names: dict[str, str] = {}  # each key under its newest version's name
        definitions = ProcessDefinition.objects.order_by("key", "-version")
        for key, name in definitions.values_list("key", "name"):
            names.setdefault(key, name)
        return [(key, f"{name} ({key})") for key, name in names.items()]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(definition_key=self.value())
        return queryset


class BusinessStatusFilter(admin.SimpleListFilter):
    """Choices are the business statuses the definitions declare, not a scan of the instances."""

    title = "business status"
    parameter_name = "business_status"
    NONE = "__none__"

    def lookups(self, request, model_admin):
        statuses: set[str] = set()
        for definition in ProcessDefinition.objects.only("key", "spec"):
            try:
                spec = definition.parsed()
            except Exception:
                continue
            statuses.update(
                status
                for t in spec.tasks
                for status in (t.waiting_status, t.business_status)
                if status
            )
        return [(self.NONE, "(none yet)")] + [(s, s) for s in sorted(statuses)]

    def queryset(self, request, queryset):
        value = self.value()
        if value == self.NONE:
            return queryset.filter(business_status="")
        if value:
            return queryset.filter(business_status=value)
        return queryset


class IncidentFilter(admin.SimpleListFilter):
    title = "has incident"
    parameter_name = "incident"

    def lookups(self, request, model_admin):
        return [("yes", "Yes (a task failed for good)"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(state=ProcessState.FAILED)
        if self.value() == "no":
            return queryset.exclude(state=ProcessState.FAILED)
        return queryset


class OverdueFilter(admin.SimpleListFilter):
    title = "overdue human task"
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(dashboard.has_overdue_task())
        if self.value() == "no":
            return queryset.filter(~dashboard.has_overdue_task())
        return queryset


class RetentionDueFilter(admin.SimpleListFilter):
    """Closed instances past their definition's ``retention``: what ``archive_processes``
    would archive and delete now."""

    title = "retention"
    parameter_name = "retention"

    def lookups(self, request, model_admin):
        return [("due", "Due for archiving")]

    def queryset(self, request, queryset):
        if self.value() == "due":
            due = selectors.due_for_archiving(now=timezone.now())
            return queryset.filter(pk__in=due.values("pk"))
        return queryset


class StartedBetweenFilter(admin.ListFilter):
    """Two dates (inclusive) on ``created_at``; a bad date is ignored, and said so in the
    filter's box."""

    title = "started between"
    template = "admin/processes/started_between_filter.html"
    params = ("started_from", "started_to")

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        self.values: dict[str, str] = {}
        self.dates: dict[str, dt.date] = {}
        self.errors: list[str] = []
        for name in self.params:
            value = _first(params, name)
            if not value:
                continue
            self.values[name] = value
            try:
                self.dates[name] = dt.date.fromisoformat(value)
            except ValueError:
                self.errors.append(f"“{value}” is not a date (YYYY-MM-DD): ignored.")

    def has_output(self) -> bool:
        return True

    def expected_parameters(self):
        return list(self.params)

    def choices(self, changelist):
        # The template renders a small form; keep the other filters as hidden fields.
        keep = {k: v for k, v in changelist.get_filters_params().items() if k not in self.params}
        yield {
            "values": self.values,
            "errors": self.errors,
            "keep": [
                (k, v) for k, vs in keep.items() for v in (vs if isinstance(vs, list) else [vs])
            ],
            "clear_url": changelist.get_query_string(remove=list(self.params)),
        }

    def queryset(self, request, queryset):
        tz = timezone.get_current_timezone()
        if "started_from" in self.dates:
            start = dt.datetime.combine(self.dates["started_from"], dt.time.min, tzinfo=tz)
            queryset = queryset.filter(created_at__gte=start)
        if "started_to" in self.dates:
            end = dt.datetime.combine(
                self.dates["started_to"] + dt.timedelta(days=1), dt.time.min, tzinfo=tz
            )
            queryset = queryset.filter(created_at__lt=end)
        return queryset

"""Turn process data into what a person reads: labelled rows, formatted amounts, event sentences."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal
from django.utils import timezone, translation
from django.utils.dateformat import format as django_dateformat
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.formats import date_format, number_format
from django.utils.translation import gettext, ngettext

from processes import spec as spec_module
from processes import timeline
from processes.models import TaskState

AMOUNT_WORDS = re.compile(
    r"(amount|salary|bonus|total|price|cost|pay|sum|budget|fee|base)", re.IGNORECASE
)
MAX_ROWS = 200


humanize = timeline.humanize  # one way a name reads, in the history and on the pages


def _finite(value) -> Decimal | None:
    """``value`` as a finite decimal, or None ("NaN", "Infinity" and words stay text)."""
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() and abs(number) < Decimal("1e30") else None


def local(text: str) -> str:
    """A definition's label in the active language (``{"en": ..., "fr": ...}``; else English)."""
    return spec_module.in_language(text, translation.get_language())


def babel_locale() -> str | None:
    """The active language as a Babel locale ("fr", "de"), or None for English, whose
    formats stay Flowdesk's own ("€3,411.00", "CHF 12.50")."""
    language = translation.get_language() or "en"
    return None if language.split("-")[0] == "en" else translation.to_locale(language)


def format_number(value, *, amount: bool = False) -> str:
    number = _finite(value)
    if number is None:
        return str(value)
    locale = babel_locale()
    if locale is not None:
        whole = not amount and number == number.to_integral_value()
        pattern = "#,##0" if whole else "#,##0.00"
        return format_decimal(
            number if whole else number.quantize(Decimal("0.01")), pattern, locale=locale
        )
    if amount or number != number.to_integral_value():
        return number_format(number.quantize(Decimal("0.01")), 2, force_grouping=True)
    return number_format(int(number), 0, force_grouping=True)


def format_value(key: str, value) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return gettext("Yes") if value else gettext("No")
    if isinstance(value, int | float | Decimal):
        return format_number(value, amount=bool(AMOUNT_WORDS.search(key)))
    if isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            return ", ".join(format_value(key, v) for v in value) or "—"
        return ngettext("%(count)d item", "%(count)d items", len(value)) % {"count": len(value)}
    return str(value)


CURRENCY_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "CHF": "CHF "}


def format_money(value, currency: str | None = None) -> str:
    """€3,411.00 / CHF 12.50 / 12.50 (no currency known); in the active language's way
    elsewhere (Babel: fr "1 234,50 €", with the narrow no-break space CLDR gives)."""
    number = _finite(value)
    if number is None:
        return str(value)
    number = number.quantize(Decimal("0.01"))
    locale = babel_locale()
    if locale is not None:  # "1 234,50 €" in French, "1.234,50 €" in German
        if not currency:
            return format_decimal(number, "#,##0.00", locale=locale)
        return format_currency(number, currency.upper(), locale=locale)
    text = number_format(abs(number), 2, force_grouping=True)
    sign = "-" if number < 0 else ""
    if not currency:
        return sign + text
    symbol = CURRENCY_SYMBOLS.get(currency.upper())
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency.upper()}"


DAY_PATTERNS = {"fr": "d MMM y", "de": "d. MMM y"}  # CLDR patterns; English: config/formats


def format_when(value) -> str:
    """A moment in the site's time zone, in the one format of config/formats (zone shown)."""
    if isinstance(value, str):
        value = parse_datetime(value) or value
    if not isinstance(value, dt.datetime):
        return str(value)
    if timezone.is_naive(value):
        value = timezone.make_aware(value, dt.UTC)
    value = timezone.localtime(value)
    locale = babel_locale()
    if locale is not None:  # "28 nov. 2026, 19:23 CET": the month in the language, zone shown
        pattern = DAY_PATTERNS.get(locale[:2], "d MMM y") + ", HH:mm"
        return f"{format_datetime(value, pattern, locale=locale)} {django_dateformat(value, 'T')}"
    return date_format(value, "DATETIME_FORMAT")


def format_day(value) -> str:
    if isinstance(value, str):
        value = parse_date(value[:10]) or value
    if isinstance(value, dt.datetime):
        value = timezone.localtime(value).date() if timezone.is_aware(value) else value.date()
    if not isinstance(value, dt.date):
        return str(value)
    locale = babel_locale()
    if locale is not None:
        return format_date(value, DAY_PATTERNS.get(locale[:2], "d MMM y"), locale=locale)
    return date_format(value, "DATE_FORMAT")


def format_duration(value) -> str:
    """ "2 days 3 hours" from seconds or an ISO-8601 duration such as "P2DT3H"."""
    if isinstance(value, dt.timedelta):
        delta = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        delta = dt.timedelta(seconds=value)
    else:
        delta = spec_module.parse_iso_duration(value) if isinstance(value, str) else None
        if delta is None:
            return str(value)
    seconds = int(abs(delta.total_seconds()))
    parts = []
    for size, words in (
        (86400, lambda n: ngettext("%(count)d day", "%(count)d days", n)),
        (3600, lambda n: ngettext("%(count)d hour", "%(count)d hours", n)),
        (60, lambda n: ngettext("%(count)d minute", "%(count)d minutes", n)),
    ):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(words(count) % {"count": count})
    if not parts:
        return ngettext("%(count)d second", "%(count)d seconds", seconds) % {"count": seconds}
    return " ".join(parts[:2])


@dataclass(frozen=True)
class Fact:
    label: str
    value: str
    missing: bool = False


def summary_facts(task_spec, variables: dict, items=None) -> list[Fact]:
    """The task's declared summary (or ``items``: its ``explain``), read from the variables its
    decider may see."""
    facts = []
    for item in getattr(task_spec, "summary", ()) if items is None else items:
        value = spec_module.lookup(variables, item.var)
        if value is spec_module.MISSING or value in (None, ""):
            facts.append(Fact(local(item.label), gettext("not available"), missing=True))
            continue
        facts.append(Fact(local(item.label), format_fact(item, value, variables)))
    return facts


def amount_of(task_spec, variables: dict) -> tuple[Decimal, str] | None:
    """The amount a decision is about: the task summary's first ``money`` fact, as (number,
    currency or ""); None when it declares none or the value is missing or not a number."""
    item = next((i for i in getattr(task_spec, "summary", ()) if i.format == "money"), None)
    if item is None:
        return None
    number = _finite(spec_module.lookup(variables, item.var))
    if number is None:
        return None
    currency = item.currency or ""
    if item.currency_var:
        found = spec_module.lookup(variables, item.currency_var)
        currency = found if isinstance(found, str) else currency
    return number, currency


def totals_text(amounts) -> str:
    """Amounts summed by currency: "€1,234.00" or "€1,000.00 + $20.00" ("" if none)."""
    sums: dict[str, Decimal] = {}
    for number, currency in amounts:
        sums[currency] = sums.get(currency, Decimal(0)) + number
    return " + ".join(format_money(total, cur or None) for cur, total in sorted(sums.items()))


def format_fact(item, value, variables: dict) -> str:
    fmt = item.format
    if fmt == "money":
        currency = item.currency
        if item.currency_var:
            found = spec_module.lookup(variables, item.currency_var)
            currency = found if isinstance(found, str) else currency
        return format_money(value, currency)
    if fmt == "number":
        return format_number(value)
    if fmt == "percent":
        return f"{format_number(value)} %"
    if fmt == "date":
        return format_day(value)
    if fmt == "datetime":
        return format_when(value)
    if fmt == "duration":
        return format_duration(value)
    if fmt == "choice":
        return humanize(value)
    return format_value(item.var, value)


@dataclass(frozen=True)
class Row:
    label: str
    value: str
    depth: int
    is_group: bool = False


def variable_rows(variables, depth: int = 0, prefix: str = "") -> list[Row]:
    """Nested variables as indented rows: groups for objects, formatted values for leaves."""
    rows: list[Row] = []
    if not isinstance(variables, dict):
        return [Row(humanize(prefix or "value"), format_value(prefix, variables), depth)]
    for key, value in variables.items():
        if len(rows) >= MAX_ROWS:
            rows.append(Row("…", gettext("more values not shown"), depth))
            break
        if isinstance(value, dict) and value:
            rows.append(Row(humanize(key), "", depth, is_group=True))
            rows.extend(variable_rows(value, depth + 1, key))
        else:
            rows.append(Row(humanize(key), format_value(key, value), depth))
    return rows


def status_line(task, task_spec, process) -> str:
    """The page's "Status": the process's business status; for an open task whose definition
    sets no ``waiting_status``, what the process waits for (its stored status would be stale)."""
    if task.state == TaskState.SCHEDULED and not task_spec.waiting_status:
        return gettext("Waiting for: %(task)s") % {
            "task": local(task_spec.label) or humanize(task.name)
        }
    return process.business_status or "—"


@dataclass(frozen=True)
class CorrectionNote:
    """A correction as the decider reads it: "Corrected by X at T: reason", then each path."""

    by: str
    at: object
    reason: str
    changes: tuple[tuple[str, str, str], ...]  # (label, before, after)


def _correction_value(path: str, value, present: bool) -> str:
    """A value before or after a correction, formatted as the page formats it (an amount kept
    as text, "300", reads as the amount it is, as the value it replaced or replaces does)."""
    if not present:
        return gettext("not set")
    if isinstance(value, dict):
        parts = [f"{humanize(k)}: {format_value(k, v)}" for k, v in list(value.items())[:6]]
        return "; ".join(parts) or "—"
    key = path.rsplit(".", 1)[-1]
    if isinstance(value, str) and AMOUNT_WORDS.search(path):
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = None
        if number is not None and number.is_finite():
            return format_number(number, amount=True)
    return format_value(key, value)


def correction_notes(corrections) -> list[CorrectionNote]:
    """``timeline.Correction``s (already cut to what the decider may see) as notes."""
    return [
        CorrectionNote(
            by=c.by,
            at=c.at,
            reason=c.reason,
            changes=tuple(
                (
                    humanize(change.path),
                    _correction_value(change.path, change.before, change.had_before),
                    _correction_value(change.path, change.after, change.has_after),
                )
                for change in c.changes
            ),
        )
        for c in corrections
    ]


@dataclass(frozen=True)
class AttachmentRow:
    """One file of the case on the task page: a signed link, and how to preview it."""

    name: str
    size: str
    content_type: str
    who: str
    at: object
    link: str
    preview: str  # "image", "pdf" or ""


def attachment_rows(process) -> list[AttachmentRow]:
    from processes import attachment_links, selectors

    rows = []
    for a in selectors.attachments_of(process.pk):
        preview = (
            "image"
            if a.content_type.startswith("image/")
            else "pdf"
            if a.content_type == "application/pdf"
            else ""
        )
        size = f"{a.size / 1024:.0f} KB" if a.size >= 1024 else f"{a.size} bytes"
        rows.append(
            AttachmentRow(
                a.name, size, a.content_type, a.uploaded_by_label, a.created_at,
                attachment_links.signed_path(a), preview,
            )
        )  # fmt: skip
    return rows

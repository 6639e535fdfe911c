from django import template

from tasks_inbox import presenters

register = template.Library()


@register.filter
def humanize(value) -> str:
    return presenters.humanize(value or "")


@register.filter
def when(value) -> str:
    """A moment in the site's time zone, in the one date format, zone shown."""
    return presenters.format_when(value) if value else "—"


@register.filter
def money(amount) -> str:
    """An (number, currency) pair as money: €409.32."""
    number, currency = amount
    return presenters.format_money(number, currency or None)

from django import template

from tasks_inbox import presenters

register = template.Library()


@register.filter
def humanize(value) -> str:
    return presenters.humanize(value or "")

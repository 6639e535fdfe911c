"""Search by business data: what a definition's ``search`` list declares, the text a case is
found by (its business key and those variables' values), and the form of a query.

One home for the rule: the engine writes ``ProcessInstance.search_text`` with ``search_text``
at every event; the admin, the inbox and the API narrow with ``search_term`` of what was typed
(``processes.control.search_filter``). Both sides are case-folded, so a match ignores case.
"""

from __future__ import annotations

from typing import Any

from processes.spec.conditions import MISSING, lookup

MAX_SEARCH_PATHS = 10
MAX_SEARCH_TEXT = 2000  # characters kept per case (the index's rows stay small)
MAX_TERM = 200
SEPARATOR = "\n"  # never inside a term (search_term drops control characters)


def parse_search(c, value: Any) -> tuple[str, ...]:
    """The ``search`` list: variable paths (a path or a list of them), at most
    ``MAX_SEARCH_PATHS``; each a business fact operators find cases by (``employee_id``)."""
    from processes.spec.fields import _path_list

    if value is None:
        return ()
    if isinstance(value, list) and len(value) > MAX_SEARCH_PATHS:
        c.add("search", f"at most {MAX_SEARCH_PATHS} variable paths")
        return ()
    return _path_list(c, value, "search", "variable paths")


def _words(value: Any) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        return ""  # an object is no business fact to type in; name its leaves instead
    return str(value)


def search_text(spec, business_key: str, variables: dict) -> str:
    """What a case is found by: its business key and the values of its definition's ``search``
    paths, case-folded, one per line."""
    parts = [business_key or ""]
    for path in getattr(spec, "search", ()):
        value = lookup(variables or {}, path)
        if value is not MISSING and (words := _words(value)):
            parts.append(words.replace(SEPARATOR, " "))
    return SEPARATOR.join(parts).casefold()[:MAX_SEARCH_TEXT]


def search_term(q: Any) -> str:
    """What was typed, as it is compared: trimmed, case-folded, without control characters,
    at most ``MAX_TERM`` characters ("" for nothing to search)."""
    if not isinstance(q, str):
        return ""
    text = "".join(ch for ch in q if ch.isprintable())
    return text.strip().casefold()[:MAX_TERM]

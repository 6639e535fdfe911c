"""The one rule for a business key, however it comes in (``spec.data`` re-exports it)."""

from __future__ import annotations

import unicodedata
from typing import Any

BUSINESS_KEY_MAX = 200
_KEY_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}
# Trimmed around a key: the white space a text variable may hold too (spaces, tab, line feed),
# so a key and a child's key template built from a variable agree. Other white space that is a
# control character (CR, U+001C-U+001F, U+0085, ...) is refused, at the ends as anywhere.
_KEY_TRIMMED = "".join(
    c
    for c in map(chr, range(0x3001))
    if c.isspace() and (c in "\t\n" or unicodedata.category(c) == "Zs")
)


def normalize_business_key(value: Any) -> tuple[str | None, str | None]:
    """(the key, None) or (None, why not): the one rule for a business key however it comes in
    (single start, batch, CSV, a child's template, a seed event's ``business_ref_no``).

    Surrounding spaces, tabs and line feeds are trimmed; an empty key, one over 200 characters, and one with a
    control or format character (bidi overrides and isolates, zero-width characters, line
    separators) is refused."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None, "must be a text"
    key = str(value).strip(_KEY_TRIMMED)
    if not key:
        return None, "must not be empty"
    if len(key) > BUSINESS_KEY_MAX:
        return None, f"must be at most {BUSINESS_KEY_MAX} characters (it has {len(key)})"
    for char in key:
        if unicodedata.category(char) in _KEY_REFUSED_CATEGORIES:
            return None, f"must not contain control or format characters (U+{ord(char):04X})"
    return key, None

"""The one rule for a business key, however it comes in (``spec.data`` re-exports it)."""

from __future__ import annotations

import unicodedata
from typing import Any

BUSINESS_KEY_MAX = 200
_KEY_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}
# Trimmed around a key: the white space a text variable may hold too (tab, line feed and the
# Unicode space separators), so a key and a child's key template built from a variable agree.
# White space that is a control character (CR, U+001C-U+001F, U+0085, ...) is refused instead.
_KEY_TRIMMED = (
    "\t\n \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u202f\u205f\u3000"
)


def normalize_business_key(value: Any) -> tuple[str | None, str | None]:
    """(the key, None) or (None, why not): the one rule for a business key however it comes in
    (single start, batch, CSV, a child's template, a seed event's ``business_ref_no``).

    Surrounding spaces, tabs, line feeds and Unicode spaces are trimmed; an empty key, one over
    200 characters, and one with a control or format character anywhere (bidi overrides and
    isolates, zero-width characters, line separators) is refused."""
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

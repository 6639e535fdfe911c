"""Labels a person reads: one string, or its translations ``{"en": ..., "fr": ...}``."""

from __future__ import annotations

from typing import Any

from processes.spec.types import LANGUAGE_RE, LocalText


def parse_label(c, value: Any, path: str, *, required: bool = False) -> str:
    """A label: a string, or translations ``{"en": ..., "fr": ...}`` (a ``LocalText`` whose
    text is the English one, else the first). ``required``: not blank, in every language."""
    if isinstance(value, str):
        if required and not value.strip():
            c.add(path, "is required: the words shown before the value")
        return value
    if not isinstance(value, dict) or not value:
        c.add(
            path,
            "is required: the words shown before the value"
            if required and value is None
            else 'must be a string or translations like {"en": "Amount", "fr": "Montant"}',
        )
        return ""
    translations: dict[str, str] = {}
    for code, text in value.items():
        if not isinstance(code, str) or not LANGUAGE_RE.match(code):
            c.add(path, f"{code!r} is not a language code like 'en', 'fr' or 'pt-BR'")
        elif not isinstance(text, str) or (required and not text.strip()):
            c.add(f"{path}.{code}", "must be the words in that language")
        else:
            translations[code] = text
    if not translations:
        return ""
    return LocalText(translations.get("en", next(iter(translations.values()))), translations)

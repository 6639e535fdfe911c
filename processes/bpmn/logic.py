"""When does an element run? A condition over the guards of the flows that lead to it, kept as a
small disjunctive normal form and simplified, so that an exclusive gateway's branches joining
again give back the condition before the split (``p and c or p and not c`` is ``p``).

A literal is one flow's condition (opaque: ``{"all": ...}`` stays one literal), maybe negated.
"""

from __future__ import annotations

import json
from typing import Any

Literal = tuple[str, bool]  # (the condition as canonical JSON, negated)
Term = frozenset  # of Literals: all of them hold
Dnf = frozenset  # of Terms: one of them holds

TRUE: Dnf = frozenset({frozenset()})
FALSE: Dnf = frozenset()
MAX_TERMS = 64


class TooComplex(ValueError):
    """The conditions leading to an element grew past MAX_TERMS alternatives."""


def literal(cond: Any, originals: dict[str, Any]) -> Dnf:
    """One condition as a formula; a top-level ``not`` is a negated literal. ``originals`` keeps
    each literal's condition as written (its keys in their order)."""
    negated = False
    if isinstance(cond, dict) and set(cond) == {"not"}:
        cond, negated = cond["not"], True
    key = json.dumps(cond, sort_keys=True)
    originals.setdefault(key, cond)
    return frozenset({frozenset({(key, negated)})})


def negate(dnf: Dnf) -> Dnf:
    result = TRUE
    for term in dnf:
        result = both(result, frozenset(frozenset({(k, not n)}) for k, n in term))
    return result


def both(a: Dnf, b: Dnf) -> Dnf:
    terms = set()
    for x in a:
        for y in b:
            term = x | y
            if not any((k, not n) in term for k, n in term):
                terms.add(frozenset(term))
    return _simplify(terms)


def either(a: Dnf, b: Dnf) -> Dnf:
    return _simplify(set(a) | set(b))


def _simplify(terms: set) -> Dnf:
    changed = True
    while changed:
        changed = False
        for x in list(terms):  # absorption: a term implied by a smaller one goes
            if any(y < x for y in terms):
                terms.discard(x)
                changed = True
        merged = None
        for x in terms:  # consensus: (A and l) or (A and not l) is A
            for k, n in x:
                other = (x - {(k, n)}) | {(k, not n)}
                if other in terms:
                    merged = (x, frozenset(other), x - {(k, n)})
                    break
            if merged:
                break
        if merged:
            terms -= {merged[0], merged[1]}
            terms.add(merged[2])
            changed = True
        if len(terms) > MAX_TERMS:
            raise TooComplex(f"more than {MAX_TERMS} alternative paths")
    return frozenset(terms)


def to_condition(dnf: Dnf, originals: dict[str, Any]) -> Any:
    """A Flowdesk condition (None: always); FALSE has none and is the caller's to refuse."""
    if dnf == TRUE:
        return None
    terms = []
    for term in sorted(dnf, key=lambda t: sorted(t)):
        items = [{"not": originals[k]} if negated else originals[k] for k, negated in sorted(term)]
        terms.append(items[0] if len(items) == 1 else {"all": items})
    return terms[0] if len(terms) == 1 else {"any": terms}


def disjoint(a: Any, b: Any) -> bool:
    """Two conditions that can't both hold, seen at a glance (same variable, different values)."""
    if not (isinstance(a, dict) and isinstance(b, dict) and "var" in a and "var" in b):
        return False
    if a["var"] != b["var"] or a.get("op", "eq") != "eq" or b.get("op", "eq") != "eq":
        return False
    return a.get("value") != b.get("value")

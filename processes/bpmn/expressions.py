"""Condition expressions on sequence flows: a small subset of FEEL (Camunda 8, ``=a.b > 3``) and
JUEL (Camunda 7, ``${a.b > 3}``) read into a Flowdesk condition, and a condition written back as
FEEL. Never evaluated: a condition stays data (``{"var", "op", "value"}`` under all/any/not).

The subset: variable paths (``approve.decision``), literals (numbers, 'single' or "double" quoted
strings, true, false, null), comparisons ``= == != > >= < <=`` (JUEL's ``eq ne gt ge lt le``
too), ``x in (1, 2)``, ``is defined(x)``, a bare path (true when truthy), ``not``/``!``,
``and``/``&&``, ``or``/``||`` and parentheses. Anything else is refused with the reason.
"""

from __future__ import annotations

import json
import re
from typing import Any

from processes.spec.types import VAR_PATH_RE


class ExpressionError(ValueError):
    """The text is outside the subset; the message says where."""


TOKEN_RE = re.compile(
    r"""\s*(?:
    (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
    |(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    |(?P<op>==|!=|>=|<=|&&|\|\||[=><!(),])
    |(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_0-9]+)*)
    )""",
    re.VERBOSE,
)
WORD_OPS = {"eq": "==", "ne": "!=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
COMPARE = {"==": "eq", "=": "eq", "!=": "ne", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
FLIPPED = {"eq": "eq", "ne": "ne", "gt": "lt", "gte": "lte", "lt": "gt", "lte": "gte"}
LITERAL_WORDS = {"true": True, "false": False, "null": None}
MAX_LENGTH = 2000


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        found = TOKEN_RE.match(text, pos)
        if not found or found.end() == pos:
            raise ExpressionError(f"unexpected {text[pos:].strip()[:20]!r}")
        pos = found.end()
        kind = found.lastgroup
        value = found.group(kind)
        if kind == "number":
            out.append(("lit", json.loads(value)))
        elif kind == "string":
            body = value[1:-1]
            if value[0] == "'":
                body = body.replace('\\"', '"').replace("\\'", "'").replace('"', '\\"')
            try:
                out.append(("lit", json.loads(f'"{body}"')))
            except ValueError:
                raise ExpressionError(f"bad string {value[:20]}") from None
        elif kind == "name" and value in LITERAL_WORDS:
            out.append(("lit", LITERAL_WORDS[value]))
        elif kind == "name" and value in WORD_OPS:
            out.append(("op", WORD_OPS[value]))
        elif kind == "name" and value in ("and", "or", "not", "in", "is", "defined", "empty"):
            out.append(("op", {"and": "&&", "or": "||", "not": "!"}.get(value, value)))
        else:
            out.append((kind if kind == "op" else "path", value))
    return out


class _Parser:
    def __init__(self, tokens):
        self.tokens = tokens
        self.i = 0

    def peek(self, value=None):
        token = self.tokens[self.i] if self.i < len(self.tokens) else (None, None)
        return token if value is None or token[1] == value else None

    def take(self, value=None):
        token = self.peek(value)
        if token is None or token[0] is None:
            raise ExpressionError(f"expected {value!r}" if value else "unexpected end")
        self.i += 1
        return token

    def expr(self):
        return self._chain("||", "any", self.conjunction)

    def conjunction(self):
        return self._chain("&&", "all", self.unary)

    def _chain(self, op, key, inner):
        items = [inner()]
        while self.peek(op) and self.peek()[0] == "op":
            self.take(op)
            items.append(inner())
        if len(items) == 1:
            return items[0]
        flat = []
        for item in items:
            flat.extend(item[key] if set(item) == {key} else [item])
        return {key: flat}

    def unary(self):
        if self.peek("!") and self.peek()[0] == "op":
            self.take("!")
            return {"not": self.unary()}
        if self.peek("is") and self.peek()[0] == "op":  # FEEL: is defined(x)
            self.take("is")
            self.take("defined")
            self.take("(")
            path = self._path()
            self.take(")")
            return {"var": path, "op": "exists"}
        if self.peek("empty") and self.peek()[0] == "op":  # JUEL: empty x
            self.take("empty")
            return {"not": {"var": self._path(), "op": "truthy"}}
        return self.comparison()

    def comparison(self):
        if self.peek("(") and self.peek()[0] == "op":
            self.take("(")
            inner = self.expr()
            self.take(")")
            return inner
        left = self.take()
        token = self.peek()
        if token[0] == "op" and token[1] in COMPARE:
            self.take()
            right = self.take()
            return _compare(left, COMPARE[token[1]], right)
        if token[0] == "op" and token[1] == "in":
            self.take()
            if left[0] != "path":
                raise ExpressionError("'in' needs a variable on its left")
            return {"var": _check_path(left[1]), "op": "in", "value": self._list()}
        if left[0] != "path":
            raise ExpressionError(f"{left[1]!r} alone is not a condition")
        return {"var": _check_path(left[1]), "op": "truthy"}

    def _path(self):
        kind, value = self.take()
        if kind != "path":
            raise ExpressionError(f"expected a variable, got {value!r}")
        return _check_path(value)

    def _list(self):
        close = {"(": ")", "[": "]"}
        opener = self.take()[1]
        if opener not in ("(",):
            raise ExpressionError("'in' takes a list of values in parentheses")
        values = []
        while not self.peek(close[opener]):
            kind, value = self.take()
            if kind != "lit":
                raise ExpressionError("'in' takes values, not variables")
            values.append(value)
            if not self.peek(close[opener]):
                self.take(",")
        self.take(close[opener])
        return values


def _check_path(path: str) -> str:
    if not VAR_PATH_RE.fullmatch(path):
        raise ExpressionError(f"{path!r} is not a variable path")
    return path


def _compare(left, op, right):
    if left[0] == "path" and right[0] == "lit":
        path, value = left[1], right[1]
    elif left[0] == "lit" and right[0] == "path":
        path, value, op = right[1], left[1], FLIPPED[op]
    else:
        raise ExpressionError("compare one variable with one value")
    path = _check_path(path)
    if value is None and op in ("eq", "ne"):  # x == null: missing; x != null: there
        exists = {"var": path, "op": "exists"}
        return exists if op == "ne" else {"not": exists}
    return {"var": path, "op": op, "value": value}


def parse_expression(text: str) -> Any:
    """A Flowdesk condition from a FEEL (``=...``) or JUEL (``${...}``) expression; raises
    ``ExpressionError`` for anything outside the subset."""
    body = text.strip()
    if len(body) > MAX_LENGTH:
        raise ExpressionError(f"longer than {MAX_LENGTH} characters")
    if body[:2] in ("${", "#{") and body.endswith("}"):
        body = body[2:-1]
    elif body.startswith("="):
        body = body[1:]
    tokens = _tokens(body)
    if not tokens:
        raise ExpressionError("empty condition")
    parser = _Parser(tokens)
    try:
        result = parser.expr()
    except RecursionError:
        raise ExpressionError("nested too deeply") from None
    if parser.i != len(tokens):
        raise ExpressionError(f"unexpected {tokens[parser.i][1]!r}")
    return result


SYMBOLS = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _literal(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True)


def render_expression(cond: Any) -> str:
    """A condition as FEEL text (``=`` and the expression); ``parse_expression`` reads it back."""
    return "=" + _render(cond)


def _render(cond: Any) -> str:
    if set(cond) == {"all"} or set(cond) == {"any"}:
        key = next(iter(cond))
        joiner = " and " if key == "all" else " or "
        return joiner.join(_wrapped(c) for c in cond[key])
    if set(cond) == {"not"}:
        return f"not({_render(cond['not'])})"
    path, op = cond["var"], cond.get("op", "eq")
    if op == "exists":
        return f"is defined({path})"
    if op == "truthy":
        return path
    value = cond.get("value")
    if op in ("in", "not_in"):
        listed = ", ".join(_literal(v) for v in value) if isinstance(value, list) else ""
        text = f"{path} in ({listed})"
        return text if op == "in" else f"not({text})"
    return f"{path} {SYMBOLS[op]} {_literal(value)}"


def _wrapped(cond: Any) -> str:
    text = _render(cond)
    return f"({text})" if set(cond) in ({"all"}, {"any"}) else text

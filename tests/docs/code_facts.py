"""What the code says, read from its source (AST, no imports): the environment variables it
reads, the names it defines, its management commands. The docs tests compare the docs to these."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The application's code (tests and benches are not what a user configures or calls).
PACKAGES = ("config", "processes", "integrations", "tasks_inbox", "examples")
DOCS_TESTS = ROOT / "tests" / "docs"
ENV_READERS = {"get", "getenv", "env_bool", "setdefault", "pop"}


def python_files(*roots: str):
    for root in roots:
        base = ROOT / root
        files = [base] if base.suffix == ".py" else sorted(base.rglob("*.py"))
        # the docs tests name what does not exist, on purpose: they are not evidence
        yield from (f for f in files if "migrations" not in f.parts and DOCS_TESTS not in f.parents)


@functools.cache
def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _literal(node, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def _is_environ(node) -> bool:
    """``os.environ`` or ``environ``."""
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def env_vars_read(*roots: str) -> dict[str, list[str]]:
    """Every environment variable the code reads, with where: ``os.environ.get("X")``,
    ``os.environ["X"]``, ``os.getenv("X")``, ``env_bool("X")``, ``"X" in os.environ``, also
    through a module constant (``LANE_ENV = "FLOWDESK_HEARTBEAT_LANE"``)."""
    found: dict[str, list[str]] = {}
    for path in python_files(*(roots or PACKAGES)):
        module = tree(path)
        constants = {
            t.id: n.value.value
            for n in module.body
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
            for t in n.targets
            if isinstance(t, ast.Name) and isinstance(n.value.value, str)
        }
        for node in ast.walk(module):
            name = None
            if isinstance(node, ast.Call) and node.args:
                func = node.func
                if isinstance(func, ast.Attribute) and func.attr in ENV_READERS:
                    if _is_environ(func.value) or func.attr == "getenv":
                        name = _literal(node.args[0], constants)
                elif isinstance(func, ast.Name) and func.id == "env_bool":
                    name = _literal(node.args[0], constants)
            elif isinstance(node, ast.Subscript) and _is_environ(node.value):
                if isinstance(node.ctx, ast.Load):
                    name = _literal(node.slice, constants)
            elif isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
                name = _literal(node.left, constants)
            if name:
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                found.setdefault(name, []).append(where)
    return found


@functools.cache
def defined_names() -> frozenset[str]:
    """Every name the code defines or uses as an attribute: functions, classes, assignments,
    arguments, attributes, imports, plus module names."""
    names: set[str] = set()
    for path in python_files(*PACKAGES, "tests", "bench", "scripts", "manage.py"):
        names.add(path.stem)
        for node in ast.walk(tree(path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Name):
                names.add(node.id)
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.alias):
                names.add((node.asname or node.name).split(".")[-1])
            elif isinstance(node, ast.keyword) and node.arg:
                names.add(node.arg)
    return frozenset(names)


@functools.cache
def string_literals() -> frozenset[str]:
    """Every string constant of the code (and the words in it, docstrings aside: SQL, URLs), and
    every string (key or value) of the JSON definitions: event types, field names, variable
    paths, schedule names, codes, table names."""
    found: set[str] = set()
    for path in python_files(*PACKAGES, "tests", "bench", "scripts", "manage.py"):
        module = tree(path)
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(module)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(module):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value)
                if id(node) not in docstrings:  # the names inside SQL, URLs, messages
                    found.update(re.findall(r"\w+", node.value))
    return frozenset(found) | json_strings()


@functools.cache
def json_strings() -> frozenset[str]:
    """Every string (key or value) of the shipped definitions."""
    import json

    found: set[str] = set()
    for path in [*ROOT.glob("processes/definitions/*.json"), *ROOT.glob("examples/*/*.json")]:

        def walk(value):
            if isinstance(value, dict):
                for key, item in value.items():
                    found.add(key)
                    walk(item)
            elif isinstance(value, list):
                for item in value:
                    walk(item)
            elif isinstance(value, str):
                found.add(value)

        walk(json.loads(path.read_text()))
    return frozenset(found)


def module_index() -> dict[str, Path]:
    """Dotted module name → file, for every module of the application."""
    index = {}
    for path in python_files(*PACKAGES):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        index[".".join(parts)] = path
    return index


def top_level_names(path: Path) -> dict[str, ast.AST]:
    """Names a module defines or imports at its top level (what ``module.name`` can reach)."""
    names: dict[str, ast.AST] = {}
    for node in tree(path).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        names[name.id] = node
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                names[(alias.asname or alias.name).split(".")[0]] = node
        elif isinstance(node, ast.If | ast.Try):  # conditional definitions
            for sub in ast.walk(node):
                if isinstance(sub, ast.FunctionDef | ast.ClassDef):
                    names[sub.name] = sub
    return names


def class_members(node: ast.ClassDef) -> set[str]:
    members = set()
    for sub in node.body:
        if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            members.add(sub.name)
        elif isinstance(sub, ast.Assign | ast.AnnAssign):
            targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
            members.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return members


def management_commands() -> dict[str, Path]:
    return {
        path.stem: path
        for path in sorted(ROOT.glob("*/management/commands/*.py"))
        if not path.stem.startswith("_")
    }

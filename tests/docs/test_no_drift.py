"""What the docs and the README name exists in the code.

The rule, applied to the inline code (`like this`) of README.md and every page under docs/
(code blocks are programs, checked by running them; docs/_incoming/ holds drafts):

- a **path** (`processes/engine/steps.py`, `tests/x.py::test_y`, `engine/steps.py` under a
  package, globs like `tests/artifacts/demo-*.png` except run-time output) exists;
- a **module and a name** (`processes.worker.run_steps`, `engine.task_decide`, `_run._lock`,
  `db/engine.lock_with_tasks`, `_Run.save`) resolve: the module exists and defines or imports the
  name (a class defines the member);
- a **code-like name** (`lock_with_tasks`, `TaskInstance`, `MAX_WIDTH`) is defined, used or
  spelled as a string somewhere in the code, the tests or the shipped definitions;
- a **command** (`manage.py verify_history …`, `make docs`) exists;
- anywhere in the text, code blocks included, a **setting** (`FLOWDESK_…`, `DJANGO_…`) is read
  or set by the code, the tests or the Makefile.

Plain words in backticks (`approve`, `running`, `GET /api/…`) are left alone.
"""

from __future__ import annotations

import html
import re
from functools import cache
from pathlib import Path

import markdown
import pytest

from tests.docs.code_facts import (
    PACKAGES,
    ROOT,
    class_members,
    defined_names,
    json_strings,
    module_index,
    string_literals,
    top_level_names,
    tree,
)

DOCS = [
    ROOT / "README.md",
    *sorted(p for p in (ROOT / "docs").rglob("*.md") if "_incoming" not in p.parts),
]
TOP = {p.name for p in ROOT.iterdir() if not p.name.startswith(".")} | {".ci"}
RUNTIME = ("var/", "tests/artifacts/", "staticfiles/", "site/", ".venv/")
SUBDIRS = {d.name for package in PACKAGES for d in (ROOT / package).rglob("*") if d.is_dir()} - {
    "__pycache__",
    "migrations",
}
SOURCE_SUFFIXES = (".py", ".json", ".html", ".md", ".toml", ".yml", ".sh", ".css", ".js")
SETTING = re.compile(r"\b(?:FLOWDESK|DJANGO)_[A-Z0-9_]*[A-Z0-9]\b")
SNAKE = re.compile(r"_?[a-z][a-z0-9]*(?:_[a-z0-9]+)+")
CAMEL = re.compile(r"_?[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+")
UPPER = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
DOTTED = re.compile(r"_?[A-Za-z]\w*(?:\.\w+)+")
PATHLIKE = re.compile(r"[\w.\-…]+(?:/[\w.\-*<>{}\[\]…]+)+/?(?:::\w+)?")
# Names of other systems the docs talk about, with their home: not ours to define.
EXTERNAL = {
    "TimeoutStopSec": "systemd",
    "futex_do_wait": "the Linux kernel's wait channel",
    "PR_SET_CHILD_SUBREAPER": "prctl(2)",
    "SalaryFlow": "the Django peer (Viewflow) the benches compare with",
    "max_connections": "PostgreSQL",
    "HTTP_PROXY": "the proxy variable HTTP clients read (webhooks ignore it: trust_env=False)",
}


def inline_code(text: str) -> list[str]:
    """The inline code spans of a Markdown text (not its code blocks), as the site renders it."""
    rendered = markdown.markdown(
        text, extensions=["tables", "admonition", "attr_list", "md_in_html", "pymdownx.superfences"]
    )
    rendered = re.sub(r"<pre>.*?</pre>", "", rendered, flags=re.S)
    return [html.unescape(code) for code in re.findall(r"<code>([^<]*)</code>", rendered)]


@cache
def known() -> frozenset[str]:
    return defined_names() | string_literals() | set(EXTERNAL)


@cache
def modules() -> dict[str, Path]:
    return module_index()


@cache
def classes() -> dict[str, list]:
    import ast

    found: dict[str, list] = {}
    for path in modules().values():
        for node in ast.walk(tree(path)):
            if isinstance(node, ast.ClassDef):
                found.setdefault(node.name, []).append(node)
    return found


def resolves(module: str, attrs: list[str]) -> bool:
    """``module`` (dotted, exact) defines ``attrs[0]`` (and its class the member ``attrs[1]``)."""
    if not attrs:
        return True
    path = modules().get(module)
    if path is None:
        return False
    if f"{module}.{attrs[0]}" in modules():  # a submodule
        return resolves(f"{module}.{attrs[0]}", attrs[1:])
    names = top_level_names(path)
    if attrs[0] not in names:
        return False
    if len(attrs) == 1:
        return True
    node = names[attrs[0]]
    return node.__class__.__name__ == "ClassDef" and attrs[1] in class_members(node)


def dotted_problem(token: str) -> str | None:
    parts = token.split(".")
    if parts[0] in PACKAGES:
        if token in string_literals():  # a permission: integrations.add_eventsubscription
            return None
        for cut in range(len(parts), 0, -1):
            if ".".join(parts[:cut]) in modules():
                if resolves(".".join(parts[:cut]), parts[cut:]):
                    return None
                break
        return f"{token}: no such module or name in it"
    if parts[0] in classes():  # Class.member
        if any(parts[1] in class_members(node) for node in classes()[parts[0]]):
            return None
        return f"{token}: class {parts[0]} has no {parts[1]}"
    if parts[0] in json_strings():
        return None  # a variable path: bonus.amount, approve_bonus.decision
    # a module named by its last parts (engine.task_decide, db.core.update, _run._lock)
    for cut in range(len(parts) - 1, 0, -1):
        suffix = "." + ".".join(parts[:cut])
        candidates = [m for m in modules() if ("." + m).endswith(suffix)]
        if candidates:
            if any(resolves(m, parts[cut:]) for m in candidates) or token in known():
                return None
            return f"{token}: {', '.join(sorted(candidates))} define no {'.'.join(parts[cut:])}"
    return None  # not code: a variable path, a schedule's name, ...


def path_problem(token: str) -> str | None:
    token = token.rstrip("/")
    name = None
    if "::" in token:
        token, name = token.split("::", 1)
    if "<" in token or "{" in token or "…" in token or token.startswith(".."):
        return None
    first = token.split("/", 1)[0]
    if first in TOP:
        bases = [ROOT]
    elif first in SUBDIRS or token.endswith(SOURCE_SUFFIXES):
        bases = [ROOT / package for package in PACKAGES]
    else:
        return None  # not a path of ours (application/json, ...)
    for base in bases:
        relative = (base / token).relative_to(ROOT).as_posix() + "/"
        if relative.startswith(RUNTIME):
            return None
        if "*" in token and list(base.glob(token)):
            return None
        target = base / token
        if target.exists():
            if name and name not in top_level_names(target):
                return f"{token}::{name}: not defined there"
            return None
        # module.attr written with slashes: tasks_inbox/views.decide, db/engine.lock_with_tasks
        head, _, last = token.rpartition("/")
        stem, dot, attrs = last.partition(".")
        module_file = base / head / f"{stem}.py"
        if dot and module_file.exists() and not token.endswith(SOURCE_SUFFIXES):
            module = module_file.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
            if resolves(module, attrs.split(".")):
                return None
            return f"{token}: {module} defines no {attrs}"
    return f"{token}: no such file or directory"


@cache
def django_commands() -> frozenset[str]:
    from django.core.management import get_commands

    return frozenset(get_commands())


def make_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), flags=re.M))


def problem(token: str) -> str | None:
    token = token.strip()
    if token.startswith("manage.py "):
        command = token.split()[1]
        return None if command in django_commands() else f"{token}: no such command"
    if token.startswith("make ") and re.fullmatch(r"make [\w-]+", token.split(" CMD=")[0]):
        target = token.split()[1]
        return None if target in make_targets() else f"{token}: no such make target"
    if " " in token or "://" in token or token.startswith("/"):
        return None
    if SETTING.fullmatch(token):
        return None  # checked on the whole text
    if "/" in token and PATHLIKE.fullmatch(token):
        return path_problem(token)
    if token.endswith(SOURCE_SUFFIXES) and "/" not in token and "…" not in token:
        if (ROOT / token).exists() or any(ROOT.glob(f"[!.]*/**/{token}")):
            return None
        return f"{token}: no such file"
    name = token.removesuffix("()")
    if DOTTED.fullmatch(name):
        return dotted_problem(name)
    if SNAKE.fullmatch(name) or CAMEL.fullmatch(name) or UPPER.fullmatch(name):
        return None if name in known() else f"{name}: not in the code"
    return None


def settings_known() -> set[str]:
    words = set(string_literals())
    for extra in ("Makefile", ".ci/run", "scripts/test.sh"):
        path = ROOT / extra
        if path.exists():
            words |= set(SETTING.findall(path.read_text()))
    return words


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_what_the_page_names_exists(page):
    text = page.read_text()
    problems = sorted({p for token in inline_code(text) if (p := problem(token))})
    unknown = sorted(set(SETTING.findall(text)) - settings_known())
    problems += [f"{name}: no such setting in the code" for name in unknown]
    assert problems == [], "\n".join(problems)


# --- the rule itself ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "processes/engine/steps.py",
        "engine/steps.py",
        "tests/test_authority_matrix.py::test_matrix_cell",
        "db/engine.lock_with_tasks",
        "tasks_inbox/views.decide",
        "processes.worker.run_steps",
        "processes.supervisor.RedisBroker",
        "engine.task_decide",
        "_run._lock_for_task",
        "db.internals.write",
        "_Run.finish",
        "lock_with_tasks",
        "TaskInstance",
        "task_completed",
        "approve_bonus.decision",
        "bonus.amount",
        "tests/artifacts/demo-*.png",
        "manage.py verify_history [ID...]",
        "make docs-build",
        "pizza.json",
        "integrations.add_eventsubscription",
        "Progress.busy_until",
    ],
)
def test_the_rule_accepts_what_exists(token):
    assert problem(token) is None


@pytest.mark.parametrize(
    "token",
    [
        "processes/engine/stepz.py",
        "engine/nothing.py",
        "tests/test_authority_matrix.py::test_gone",
        "db/engine.lock_process_of_tusk",
        "processes.worker.run_stepz",
        "integrations.add_eventsubscriptions",
        "progress.busy_until",
        "engine.task_decide_all",
        "_Run.flush_all",
        "lock_everything_at_once",
        "TaskInstanse",
        "manage.py no_such_command",
        "make no-such-target",
        "nothing_here.py",
    ],
)
def test_the_rule_refuses_what_does_not(token):
    assert problem(token) is not None


def test_inline_code_leaves_code_blocks_alone():
    text = "A `lock_with_tasks` call.\n\n```python\nnot_checked_here()\n```\n\n    indented_too()\n"
    assert inline_code(text) == ["lock_with_tasks"]

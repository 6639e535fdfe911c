"""Outcomes that loop back (rework) and tasks that start child processes (call activities):
the parts of a task that change the flow, checked apart from the rest of ``parse``."""

from __future__ import annotations

import re
from typing import Any

from processes.spec.fields import (
    _Collector,
)
from processes.spec.labels import parse_label
from processes.spec.types import (
    DEFAULT_MAX_ROUNDS,
    KEY_RE,
    MAX_ROUNDS_LIMIT,
    VAR_PATH_RE,
    CallSpec,
    ReworkSpec,
    SpecError,
    StageSpec,
)


def _parse_outcomes(c: _Collector, raw: Any, path: str, ttype: str):
    """A list of outcome names, or an object outcome -> options, where ``{"goto": stage,
    "max_rounds": n}`` makes the outcome a rework loop and ``label`` names it for people.
    Returns (names, rework specs, (name, label) pairs)."""
    if not raw:
        return (), (), ()
    if ttype != "HUMAN":
        c.add(path, "only a HUMAN task has outcomes")
        return (), (), ()
    if isinstance(raw, list):
        if not all(isinstance(o, str) and VAR_PATH_RE.match(o) for o in raw) or len(
            set(raw)
        ) != len(raw):
            c.add(path, "must be a list of distinct identifiers like 'approve'")
            return (), (), ()
        return tuple(raw), (), ()
    if not isinstance(raw, dict):
        c.add(path, "must be a list of outcomes or an object outcome -> options")
        return (), (), ()
    names, rework, labels = [], [], []
    for name, options in raw.items():
        if not VAR_PATH_RE.match(name):
            c.add(f"{path}.{name}", "an outcome is an identifier like 'approve'")
            continue
        names.append(name)
        if options is None:
            continue
        if not isinstance(options, dict):
            c.add(f"{path}.{name}", "must be an object ({} or {goto, max_rounds, label})")
            continue
        unknown = sorted(set(options) - {"goto", "max_rounds", "label"})
        if unknown:
            c.add(
                f"{path}.{name}", f"unknown option {unknown[0]!r}: only goto, max_rounds and label"
            )
        if "label" in options:
            label = parse_label(c, options["label"], f"{path}.{name}.label", required=True)
            if label:
                labels.append((name, label))
        goto = options.get("goto")
        if "max_rounds" in options and goto is None:
            c.add(f"{path}.{name}.max_rounds", "max_rounds needs goto")
        if goto is None:
            continue
        if not isinstance(goto, str) or not goto:
            c.add(f"{path}.{name}.goto", "must be the name of an earlier stage")
            continue
        rounds = options.get("max_rounds", DEFAULT_MAX_ROUNDS)
        if (
            isinstance(rounds, bool)
            or not isinstance(rounds, int)
            or not (2 <= rounds <= MAX_ROUNDS_LIMIT)
        ):
            c.add(
                f"{path}.{name}.max_rounds",
                f"must be a whole number from 2 to {MAX_ROUNDS_LIMIT} (rounds in all)",
            )
            rounds = DEFAULT_MAX_ROUNDS
        rework.append(ReworkSpec(outcome=name, goto=goto, max_rounds=rounds))
    return tuple(names), tuple(rework), tuple(labels)


BUSINESS_KEY_TEMPLATE_RE = re.compile(r"(?:[^{}]|\{[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*\})+")


def _parse_call(c: _Collector, raw: Any, path: str, ttype: str) -> CallSpec | None:
    """A PROCESS task's ``process``: {definition, version?, for_each?, input?, output?,
    business_key?}."""
    if ttype != "PROCESS":
        if raw is not None:
            c.add(path, "only a PROCESS task starts a child process")
        return None
    if not isinstance(raw, dict):
        c.add(path, "is required: {definition, version, for_each, input, output}")
        return None
    unknown = sorted(
        set(raw) - {"definition", "version", "for_each", "input", "output", "business_key"}
    )
    for name in unknown:
        c.add(f"{path}.{name}", "unknown field")
    key = raw.get("definition")
    if not isinstance(key, str) or not KEY_RE.match(key):
        c.add(f"{path}.definition", "is required: the key of the child's definition")
        key = ""
    version = raw.get("version")
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        c.add(f"{path}.version", "must be a version number, or left out for the newest")
        version = None
    paths = {}
    for name in ("for_each", "business_key"):
        value = raw.get(name)
        if name == "business_key" and isinstance(value, str) and "{" in value:
            if not BUSINESS_KEY_TEMPLATE_RE.fullmatch(value):
                c.add(f"{path}.{name}", "a template like 'SAL-{period}-{item}' of variable paths")
                value = None
        elif value is not None and (not isinstance(value, str) or not VAR_PATH_RE.match(value)):
            c.add(f"{path}.{name}", "must be a variable path like 'employees'")
            value = None
        paths[name] = value
    maps = {}
    for name in ("input", "output"):
        value = raw.get(name, {})
        pairs = []
        if not isinstance(value, dict):
            c.add(f"{path}.{name}", "must be an object: name -> variable path")
        else:
            for target, source in value.items():
                if not VAR_PATH_RE.match(target) or "." in target:
                    c.add(f"{path}.{name}.{target}", "must be a variable name")
                elif not isinstance(source, str) or not VAR_PATH_RE.match(source):
                    c.add(f"{path}.{name}.{target}", "must be a variable path like 'item.id'")
                else:
                    pairs.append((target, source))
        maps[name] = tuple(pairs)
    return CallSpec(
        definition=key,
        version=version,
        for_each=paths["for_each"],
        input=maps["input"],
        output=maps["output"],
        business_key=paths["business_key"],
    )


def _check_rework(c: _Collector, stages_raw: list, stages: list[StageSpec]) -> None:
    """A rework loop goes back to its own stage or an earlier one."""
    order = {s.name: s.order for s in stages}
    for stage in stages:
        for task in stage.tasks:
            for loop in task.rework:
                where = task_path(stages_raw, task.name) + f".outcomes.{loop.outcome}.goto"
                if loop.goto not in order:
                    c.add(where, f"unknown stage {loop.goto!r}")
                elif order[loop.goto] > stage.order:
                    c.add(where, f"stage {loop.goto!r} comes after {stage.name!r}: go back only")


def task_path(stages_raw: list, name: str) -> str:
    """The JSON path of task ``name`` in the raw ``stages`` (``stages[0].tasks[1]``)."""
    for si, stage in enumerate(stages_raw):
        tasks = stage.get("tasks") if isinstance(stage, dict) else None
        for ti, task in enumerate(tasks if isinstance(tasks, list) else []):
            if isinstance(task, dict) and task.get("task_name") == name:
                return f"stages[{si}].tasks[{ti}]"
    return name


# --- the call graph -------------------------------------------------------------------------------

CallNode = tuple[str, int]  # (definition key, version)


def call_cycles(root: CallNode, spec, resolve) -> list:
    """Every PROCESS task of ``spec`` (version ``root``, being published) whose call leads into
    a cycle: a definition that, through its calls, would start itself again without end.

    ``resolve(call)`` answers the ``(node, spec)`` a call starts (its pinned version, or the
    newest published one, which may be ``root`` itself), or None when there is nothing to start
    (that is the run-time's error, not a cycle). Each error names the task's path and the chain:
    ``stages[0].tasks[1].process.definition: calls itself: a → b → a``.
    """
    stages_raw = spec.raw.get("stages") if isinstance(spec.raw, dict) else None
    stages_raw = stages_raw if isinstance(stages_raw, list) else []
    acyclic: set[CallNode] = set()  # explored before without finding a cycle
    errors = []
    for task in spec.tasks:
        if task.call is None:
            continue
        found = _cycle_below(resolve(task.call), [root], acyclic, resolve)
        if found is None:
            continue
        chain = " → ".join(_node_labels(found))
        what = "calls itself" if found[-1] == root else "leads into a cycle"
        where = task_path(stages_raw, task.name) + ".process.definition"
        errors.append(SpecError(where, f"{what}: {chain}"))
    return errors


def _cycle_below(target, trail: list[CallNode], acyclic: set, resolve) -> list | None:
    """The trail from the root to the first node seen twice, or None (depth first)."""
    if target is None:
        return None
    node, spec = target
    if node in trail:
        return [*trail, node]
    if node in acyclic:
        return None
    trail.append(node)
    for task in spec.tasks:
        if task.call is not None:
            found = _cycle_below(resolve(task.call), trail, acyclic, resolve)
            if found is not None:
                return found
    trail.pop()
    acyclic.add(node)
    return None


def _node_labels(nodes: list[CallNode]) -> list[str]:
    """Keys, with their versions where one key appears in two versions."""
    versions: dict[str, set[int]] = {}
    for key, version in nodes:
        versions.setdefault(key, set()).add(version)
    return [key if len(versions[key]) == 1 else f"{key} v{version}" for key, version in nodes]

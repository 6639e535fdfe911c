"""Bulk decide: one decision for several tasks, after a confirmation page that says how many
cases and what total amount it decides (a plain form: it works without JavaScript)."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext, ngettext

from processes import authority, engine
from processes.db.core import parse_id
from processes.errors import EngineError
from processes.events import Actor
from tasks_inbox import presenters, selectors
from tasks_inbox.views import _sentence, _why_not, post_or_back

MAX_BULK = 100


@dataclass(frozen=True)
class _Case:
    task: object
    key: str
    label: str
    amount: tuple | None  # (number, currency) the decision is about, when the task says


def _cases(request, ids, decision: str, refused: list[str]) -> list[_Case]:
    """The selected tasks this person may give ``decision`` in bulk; the others are added to
    ``refused`` with the reason."""
    cases = []
    for task_id in dict.fromkeys(ids):
        found = selectors.task_for_user(user=request.user, task_id=task_id)
        if found is None:
            refused.append(f"task {task_id}: not in your inbox")
            continue
        task, rights = found
        key = task.process.business_key
        task_spec = task.process.definition.parsed().task(task.name)
        if task_spec is None or any(f.required for f in task_spec.form):
            refused.append(f"{key}: " + gettext("its form needs your input, open it"))
            continue
        if task_spec.outcomes and decision not in task_spec.outcomes:
            refused.append(
                f"{key}: "
                + gettext("%(decision)r is not one of its decisions")
                % {"decision": decision or gettext("no decision")}
            )
            continue
        if decision and task_spec.rework_for(decision) is not None:
            refused.append(f"{key}: " + gettext("sending it back needs your comment, open it"))
            continue
        if not rights.decide:
            refused.append(f"{key}: {_why_not(task, rights)}")
            continue
        shown = authority.visible_variables(task.process.variables, task_spec)
        label = presenters.local(task_spec.label) or presenters.humanize(task.name)
        cases.append(_Case(task, key, label, presenters.amount_of(task_spec, shown)))
    return cases


@login_required
@post_or_back("tasks_inbox:inbox", with_pk=False)
def bulk_decide(request):
    """First POST: the confirmation page (the cases, their number and total amount). The
    confirmed POST decides each task on its own through ``engine.task_decide`` (its own
    transaction and decision event); a refusal of one is reported and leaves the others."""
    decision = (request.POST.get("decision") or "")[:100]
    comment = request.POST.get("comment", "")[:2000]
    back = request.POST.get("back") or reverse("tasks_inbox:inbox")
    if not back.startswith("/inbox/"):
        back = reverse("tasks_inbox:inbox")
    ids, refused = [], []
    for raw in request.POST.getlist("task")[: MAX_BULK + 1]:
        task_id = parse_id(raw)
        if task_id is None:  # text, a negative or a 5,000-digit number: said, never looked up
            refused.append(f"{raw[:20]!r}: " + gettext("not a task"))
        else:
            ids.append(task_id)
    if not ids and not refused:
        messages.error(request, gettext("Nothing decided: select at least one task."))
        return redirect(back)
    if len(ids) + len(refused) > MAX_BULK:
        messages.error(
            request, gettext("Nothing decided: at most %(max)d tasks at once.") % {"max": MAX_BULK}
        )
        return redirect(back)
    cases = _cases(request, ids, decision, refused)
    if cases and request.POST.get("confirmed") != "yes":
        amounts = [c.amount for c in cases if c.amount is not None]
        return render(
            request,
            "tasks_inbox/bulk_confirm.html",
            {
                "cases": cases,
                "decision": decision,
                "comment": comment,
                "back": back,
                "refused": refused,
                "total": presenters.totals_text(amounts),
                "without_amount": len(cases) - len(amounts),
            },
        )
    actor = Actor.for_user(request.user)
    done = []
    for case in cases:
        try:
            engine.task_decide(
                task_id=case.task.pk,
                actor=actor,
                decision=decision or None,
                comment=comment,
                data={},
            )
        except EngineError as exc:
            refused.append(f"{case.key}: {_sentence(exc.message)}")
            continue
        done.append(case.key)
    if done:
        what = presenters.humanize(decision) if decision else gettext("Done")
        tasks = ngettext("%(count)d task", "%(count)d tasks", len(done)) % {"count": len(done)}
        messages.success(request, f"{what}: {', '.join(done)} ({tasks}).")
    if refused:
        messages.error(request, gettext("Not decided: ") + "; ".join(refused))
    return redirect(back)

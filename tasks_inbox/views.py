"""Inbox pages. Thin: they read through ``selectors`` and change state only through ``engine``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import wraps

from django.contrib import admin, messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from processes import authority, diagram, engine, timeline
from processes import selectors as process_selectors
from processes.db.core import MAX_DB_INT
from processes.errors import Conflict, EngineError, Forbidden, InvalidInput, NotFound
from processes.events import Actor
from processes.models import TaskState
from tasks_inbox import presenters, selectors
from tasks_inbox.forms import DecisionForm, DelegateForm, outcome_words

PAGE_SIZE = 25


@require_http_methods(["GET", "HEAD"])
def home(request):
    """The site's root: people go to their inbox; a probe's ``HEAD /`` (load balancers, uptime
    checks) gets 200 without following a redirect to the login page."""
    if request.method == "HEAD":
        return HttpResponse()
    return redirect("tasks_inbox:inbox")


@require_http_methods(["GET", "HEAD"])
def favicon(request):
    """``/favicon.ico``, which browsers ask for by themselves: the icon the pages link."""
    return redirect(static("flowdesk/favicon.svg"))


class LogoutView(auth_views.LogoutView):
    """Log out by POST (the header's button); a GET (a typed or bookmarked address) shows a
    page with that button instead of a blank 405."""

    http_method_names = ["get", "head", "post", "options"]

    def get(self, request, *args, **kwargs):
        return render(request, "registration/logout.html")


def post_or_back(to: str, *, with_pk: bool = True):
    """For a form's target: a visit (GET, e.g. reloading it after a form error) goes back to
    the page the form is on (``to``, a URL name; ``with_pk``: it takes the view's ``pk``)."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method in ("GET", "HEAD"):
                return redirect(reverse(to, args=[kwargs["pk"]] if with_pk else None))
            if request.method != "POST":
                return HttpResponseNotAllowed(["POST"])
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


class LoginView(auth_views.LoginView):
    """Log in; without a ``next``, staff land in the admin (their work) and everyone else in
    the inbox."""

    template_name = "registration/login.html"

    def get_default_redirect_url(self):
        if self.request.user.is_staff:
            return reverse("admin:index")
        return super().get_default_redirect_url()


def admin_login(request):
    """The admin's login: a logged-in person who isn't staff goes back to their inbox with a
    word, instead of the admin's bare "not authorized" login form."""
    if request.user.is_authenticated and not request.user.is_staff:
        messages.info(request, gettext("The admin is for administrators; your tasks are here."))
        return redirect("tasks_inbox:inbox")
    return admin.site.login(request)


@login_required
@require_GET
def inbox(request):
    tab = request.GET.get("tab", selectors.DEFAULT_TAB)
    if tab not in selectors.TABS:
        tab = selectors.DEFAULT_TAB
    sort = request.GET.get("sort", "")
    if sort not in selectors.SORTS:
        sort = "" if tab == "done" else selectors.DEFAULT_SORT
    q = request.GET.get("q", "").replace("\x00", "").strip()[: selectors.MAX_QUERY]
    roles = selectors.role_names(request.user)
    definitions = selectors.definition_choices(request.user, roles)
    definition = request.GET.get("definition", "")
    if definition not in {key for key, _, _ in definitions}:
        definition = ""
    due = request.GET.get("due", "")
    if due not in selectors.DUE_FILTERS or tab == "done":
        due = ""
    now = timezone.now()
    tasks = selectors.inbox_list(
        user=request.user, tab=tab, sort=sort, q=q, roles=roles, definition=definition, due=due
    )
    page = Paginator(tasks, PAGE_SIZE).get_page(request.GET.get("page"))
    counts = selectors.tab_counts(user=request.user, roles=roles, now=now)
    specs: dict = {}  # parsed once per definition version, not once per row
    held = frozenset(roles)
    rows = [(task, _row(request.user, task, specs, held, for_done=tab == "done")) for task in page]
    return render(
        request,
        "tasks_inbox/inbox.html",
        {
            "tab": tab,
            "tabs": [(key, label, counts.get(key)) for key, label in selectors.TABS.items()],
            "sort": sort,
            "sorts": selectors.SORTS.items(),
            "q": q,
            "definition": definition,
            "definitions": definitions,
            "open_total": sum(count for _, _, count in definitions),
            "due": due,
            "due_filters": selectors.DUE_FILTERS.items(),
            "filtered": bool(q or definition or due),
            "roles": roles,
            "page": page,
            "rows": rows,
            "bulk_outcomes": sorted({o for _, row in rows for o in row.bulk}),
            "due_toggle": "-due" if sort == "due" else "due",
            "age_toggle": "-age" if sort == "age" else "age",
            "now": now,
            "away": selectors.away_now(request.user, today=timezone.localdate(now)),
        },
    )


def bulk_outcomes(task_spec) -> tuple[str, ...]:
    """The outcomes a task may be given in bulk: none when its form needs input, and never one
    that sends the case back for rework (that needs the decider's own words)."""
    if any(f.required for f in task_spec.form):
        return ()
    return tuple(o for o in task_spec.outcomes if task_spec.rework_for(o) is None)


@dataclass(frozen=True)
class _Row:
    facts: list
    bulk: tuple[str, ...] = ()  # outcomes this person may give it from the list (bulk decide)
    decision: str = ""  # the decision's words (the definition's label in the active language)
    label: str = ""  # the task's label in the active language


def _row(user, task, specs: dict, roles: frozenset, for_done: bool = False) -> _Row:
    """A list row's extras: the first facts of the task's summary when this person may read the
    task's data, and the outcomes they may give it in bulk (a form that needs no input).
    ``roles``: the person's roles, read once for the page."""
    process = task.process
    spec = specs.get(process.definition_id)
    if spec is None:
        spec = specs[process.definition_id] = process.definition.parsed()
    task_spec = spec.task(task.name)
    if task_spec is None:
        return _Row([])
    rights = authority.task_rights(user, task, process=process, spec=spec, tasks={}, roles=roles)
    facts = []
    if rights.read and task_spec.summary:
        shown = authority.visible_variables(process.variables, task_spec)
        facts = presenters.summary_facts(task_spec, shown)[:2]
    bulk = bulk_outcomes(task_spec) if rights.decide and not for_done else ()
    words = _decision_words(task, task_spec) if for_done else ""
    return _Row(facts, bulk, words, presenters.local(task_spec.label))


def _decision_words(task, task_spec) -> str:
    decision = (task.result or {}).get("decision") if isinstance(task.result, dict) else None
    if not isinstance(decision, str) or not decision or task_spec is None:
        return ""
    return outcome_words(task_spec, decision)


def _load(request, pk):
    if pk > MAX_DB_INT:
        raise Http404(gettext("No such task in your inbox."))
    found = selectors.task_for_user(user=request.user, task_id=pk)
    if found is None:
        raise Http404(gettext("No such task in your inbox."))
    return found


def _task_page(request, task, rights, *, decision_form=None, delegate_form=None, status=200):
    process = task.process
    spec = process.definition.parsed()
    task_spec = spec.task(task.name)
    if rights.decide and decision_form is None:
        decision_form = DecisionForm(task_spec)
    if rights.delegate and delegate_form is None:
        delegate_form = DelegateForm(selectors.delegate_candidates(task, exclude=request.user))
    history = timeline.lines(selectors.process_timeline(process), task_spec=task_spec)
    shown = authority.visible_variables(process.variables, task_spec) if rights.read else {}
    summary = presenters.summary_facts(task_spec, shown) if rights.read else []
    siblings = list(selectors.process_tasks(process))
    return render(
        request,
        "tasks_inbox/task.html",
        {
            "task": task,
            "task_label": presenters.local(task_spec.label) or presenters.humanize(task.name),
            "decision_words": _decision_words(task, task_spec),
            "task_description": task_spec.description,
            "process": process,
            "definition": process.definition,
            "rights": rights,
            "holder": task.claimed_by if task.claimed_by_id else task.assignee,
            "summary": summary,
            "summary_missing": any(fact.missing for fact in summary),
            "explain": presenters.summary_facts(task_spec, shown, items=task_spec.explain)
            if rights.read
            else [],
            "variables": presenters.variable_rows(shown),
            "result": presenters.variable_rows(task.result) if task.result and rights.read else [],
            "siblings": siblings,
            # the same picture as the admin's, read-only (no links), for those who read the task
            "diagram_svg": mark_safe(diagram.render_instance(process, siblings))  # noqa: S308
            if rights.read
            else "",
            "timeline": history if rights.read else [],
            "corrections": presenters.correction_notes(
                timeline.corrections(process_selectors.corrections_before_decision(task), task_spec)
            )
            if rights.read
            else [],
            "status": presenters.status_line(task, task_spec, process),
            "attachments": presenters.attachment_rows(process) if rights.read else [],
            "decision_form": decision_form if rights.decide else None,
            "delegate_form": delegate_form if rights.delegate else None,
            "now": timezone.now(),
        },
        status=status,
    )


@login_required
@require_GET
def task_detail(request, pk):
    task, rights = _load(request, pk)
    return _task_page(request, task, rights)


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else text + "."


def _why_not(task, rights) -> str:
    """The plain-words reason a person may not act on a task they can see."""
    if rights.refusal:
        return rights.refusal
    if task.state != TaskState.SCHEDULED:
        return gettext("the task is already %(state)s.") % {"state": task.get_state_display()}
    if task.claimed_by_id:
        return gettext("task is claimed by %(name)s.") % {"name": task.claimed_by.get_username()}
    if task.assignee_id:
        return gettext("the task is assigned to %(name)s; only they can decide it.") % {
            "name": task.assignee.get_username()
        }
    return gettext("this task is not yours to decide.")


def _back(pk):
    return redirect(reverse("tasks_inbox:task", args=[pk]))


def _run(request, pk, action, success: str, prefix: str = "", sentence: bool = False):
    """Call one engine service; a refusal becomes a message on the task page."""
    try:
        action(actor=Actor.for_user(request.user))
    except NotFound as exc:
        raise Http404(exc.message) from None
    except (Conflict, Forbidden, InvalidInput) as exc:
        messages.error(request, prefix + (_sentence(exc.message) if sentence else exc.message))
        return _back(pk)
    messages.success(request, str(success))
    return _back(pk)


def _hold_view(service: str, success: str):
    """A POST view that claims or releases the task through ``engine.<service>``."""

    @login_required
    @post_or_back("tasks_inbox:task")
    def view(request, pk):
        task, _ = _load(request, pk)
        return _run(
            request,
            pk,
            lambda actor: getattr(engine, service)(task_id=task.pk, actor=actor),
            success,
        )

    view.__name__ = view.__qualname__ = service.removeprefix("task_")
    return view


claim = _hold_view(
    "task_claim",
    gettext_lazy("You claimed this task: it is locked to you until you decide or release it."),
)
release = _hold_view("task_release", gettext_lazy("Released: the task is back with its role."))


@login_required
@post_or_back("tasks_inbox:task")
def decide(request, pk):
    task, rights = _load(request, pk)
    if task.state != "scheduled":  # too late: the engine records the attempt and says who decided
        return _run(
            request,
            pk,
            lambda actor: engine.task_decide(
                task_id=task.pk,
                actor=actor,
                decision=(request.POST.get("decision") or "")[:100] or None,
                comment=request.POST.get("comment", "")[:4000],
            ),
            "",
            prefix=gettext("Your decision was not recorded: "),
            sentence=True,
        )
    if not rights.decide:
        messages.error(
            request, gettext("Your decision was not recorded: ") + _why_not(task, rights)
        )
        return _back(pk)
    spec = task.process.definition.parsed()
    form = DecisionForm(spec.task(task.name), request.POST, request.FILES)
    if not form.is_valid():
        return _task_page(request, task, rights, decision_form=form, status=400)
    try:
        engine.task_decide(
            task_id=task.pk,
            actor=Actor.for_user(request.user),
            decision=form.decision(),
            comment=form.cleaned_data.get("comment", ""),
            data=form.payload(),
            files=form.uploads(),
        )
    except InvalidInput as exc:
        form.add_engine_errors(exc.fields or {"__all__": [exc.message]})
        return _task_page(request, task, rights, decision_form=form, status=400)
    except (Conflict, Forbidden) as exc:
        messages.error(
            request, gettext("Your decision was not recorded: ") + _sentence(exc.message)
        )
        return _back(pk)
    except NotFound:
        raise Http404(gettext("No such task.")) from None
    decision = form.decision()
    what = outcome_words(form.task_spec, decision) if decision else gettext("Done")
    messages.success(
        request,
        gettext("%(what)s: %(key)s — the process has moved on.")
        % {"what": what, "key": task.process.business_key},
    )
    return redirect(reverse("tasks_inbox:inbox") + "?tab=done")


@login_required
@post_or_back("tasks_inbox:task")
def delegate(request, pk):
    task, rights = _load(request, pk)
    if not rights.delegate:
        messages.error(request, gettext("Not delegated: ") + _why_not(task, rights))
        return _back(pk)
    candidates = selectors.delegate_candidates(task, exclude=request.user)
    form = DelegateForm(candidates, request.POST)
    if not form.is_valid():
        return _task_page(request, task, rights, delegate_form=form, status=400)
    to_user = form.cleaned_data["to"]
    try:
        engine.task_delegate(
            task_id=task.pk,
            actor=Actor.for_user(request.user),
            to_user=to_user,
            comment=form.cleaned_data.get("comment", ""),
        )
    except InvalidInput as exc:
        form.add_engine_errors(exc.fields or {"__all__": [exc.message]})
        return _task_page(request, task, rights, delegate_form=form, status=400)
    except EngineError as exc:
        if isinstance(exc, NotFound):
            raise Http404(gettext("No such task.")) from None
        messages.error(request, exc.message)
        return _back(pk)
    messages.success(request, gettext("Delegated to %(name)s.") % {"name": to_user.get_username()})
    if selectors.task_for_user(user=request.user, task_id=pk) is None:
        return redirect("tasks_inbox:inbox")
    return _back(pk)

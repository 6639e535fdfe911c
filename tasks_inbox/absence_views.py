"""The absences page: a person records when they are away and who covers for them."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.http import require_http_methods

from processes import engine
from processes.db.core import parse_id
from processes.errors import InvalidInput, NotFound
from processes.events import Actor
from tasks_inbox import selectors
from tasks_inbox.forms import AbsenceForm
from tasks_inbox.views import post_or_back


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def absences(request):
    """List one's absences; POST records one through ``engine.absence_record``."""
    candidates = selectors.substitute_choices(request.user)
    status = 200
    if request.method == "POST":
        form = AbsenceForm(candidates, request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                absence = engine.absence_record(
                    actor=Actor.for_user(request.user),
                    starts_on=data["starts_on"],
                    ends_on=data["ends_on"],
                    substitute=data.get("substitute"),
                    note=data.get("note", ""),
                )
            except InvalidInput as exc:
                form.add_engine_errors(exc.fields or {"__all__": [exc.message]})
            else:
                who = (
                    absence.substitute.get_username()
                    if absence.substitute
                    else gettext("your roles")
                )
                messages.success(
                    request,
                    gettext(
                        "Absence recorded: %(start)s to %(end)s; your tasks go to %(who)s meanwhile."
                    )
                    % {
                        "start": f"{absence.starts_on:%Y-%m-%d}",
                        "end": f"{absence.ends_on:%Y-%m-%d}",
                        "who": who,
                    },
                )
                return redirect("tasks_inbox:absences")
        status = 400
    else:
        form = AbsenceForm(candidates)
    today = timezone.localdate()
    return render(
        request,
        "tasks_inbox/absences.html",
        {
            "form": form,
            "absences": selectors.absences_of(request.user, today=today),
            "today": today,
        },
        status=status,
    )


@login_required
@post_or_back("tasks_inbox:absences", with_pk=False)
def absence_end(request, pk):
    absence_id = parse_id(str(pk))
    try:
        engine.absence_end(actor=Actor.for_user(request.user), absence_id=absence_id)
    except NotFound:
        raise Http404(gettext("No such absence of yours.")) from None
    messages.success(request, gettext("Absence ended: new tasks come to you again."))
    return redirect("tasks_inbox:absences")

"""The "Language and time zone" page: what a person reads the inbox and notices in."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from tasks_inbox.forms import ProfileForm
from tasks_inbox.models import Profile


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def profile(request):
    """Show and change one's language and time zone (the page answers in the new language)."""
    instance = Profile.objects.filter(user=request.user).first() or Profile(user=request.user)
    if request.method == "POST":
        form = ProfileForm(request.POST, instance=instance)
        if form.is_valid():
            saved = form.save()
            if saved.language:
                translation.activate(saved.language)
            messages.success(request, _("Your language and time zone are saved."))
            return redirect("tasks_inbox:profile")
        return render(request, "tasks_inbox/profile.html", {"form": form}, status=400)
    return render(request, "tasks_inbox/profile.html", {"form": ProfileForm(instance=instance)})

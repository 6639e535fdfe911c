"""What every page of the control room shares: who sees what (per-definition grants, never
``is_staff``), and the confirmation page every change asks for."""

from __future__ import annotations

from django.contrib import admin
from django.template.response import TemplateResponse

from processes import authority


def can_operate(request, definition_key: str) -> bool:
    """Operating (retry, skip, replay, cancel) needs ``operate_process`` on the definition."""
    return authority.has_definition_perm(request.user, authority.OPERATE, definition_key)


class GrantedAdmin(admin.ModelAdmin):
    """Pages of rows that belong to a definition: what a person sees comes from their grants per
    definition key (``processes.authority``), never from ``is_staff`` or model permissions."""

    key_lookup = "definition_key"  # how a row names its definition key
    see_perms: tuple[str, ...] = authority.SEE

    def key_of(self, obj) -> str:
        value = obj
        for part in self.key_lookup.split("__"):
            value = getattr(value, part)
        return value

    def has_module_permission(self, request):
        return authority.has_any_grant(request.user, self.see_perms)

    def has_view_permission(self, request, obj=None):
        if obj is None:
            return authority.has_any_grant(request.user, self.see_perms)
        return authority.has_definition_perm(request.user, self.see_perms, self.key_of(obj))

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        keys = authority.granted_keys(request.user, self.see_perms) if request else None
        return qs if keys is None else qs.filter(**{f"{self.key_lookup}__in": keys})

    def confirm_page(self, request, *, obj, title, verb, explanation, cancel_url, **context):
        """The page that asks "really?" (with ``form``, a reason) before a change."""
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "object": obj,
            "explanation": explanation,
            "verb": verb,
            "cancel_url": cancel_url,
            "form": None,
            **context,
        }
        return TemplateResponse(request, "admin/processes/confirm_action.html", context)


class NoWrites:
    """Written by the engine only: no add, change or delete in the admin."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(NoWrites, GrantedAdmin):
    """History and state are written by the engine only: no add, change or delete here."""

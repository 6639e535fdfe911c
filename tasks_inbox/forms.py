"""Forms of the task page. Typed checks live in the spec (``spec.validate_decision``, the engine runs them): these
forms render the spec's outcomes and fields and put the engine's errors next to them."""

from __future__ import annotations

import zoneinfo

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from processes import spec as spec_module
from tasks_inbox.models import Profile
from tasks_inbox.presenters import humanize, local

COMMENT_MAX = 2000


def outcome_words(task_spec, outcome: str) -> str:
    """How a decision reads: the definition's label in the active language, else its name."""
    return local(task_spec.outcome_label(outcome)) or humanize(outcome)


def _rule_attrs(f: spec_module.FormField) -> dict:
    """What ``static/js/conditional-fields.js`` reads to show a field only when it applies
    (without JavaScript every field shows, and the server checks the rules)."""
    attrs = {}
    for key, rule in (("show-if", f.show_if), ("required-if", f.required_if)):
        if rule is not None:
            attrs[f"data-{key}-field"] = rule.field
            equals = rule.equals
            text = (
                ""
                if equals is None
                else str(equals).lower()
                if isinstance(equals, bool)
                else str(equals)
            )
            attrs[f"data-{key}-equals"] = text
    return attrs


def _field_for(f: spec_module.FormField) -> forms.Field:
    field = _plain_field_for(f)
    field.widget.attrs.update(_rule_attrs(f))
    return field


def _plain_field_for(f: spec_module.FormField) -> forms.Field:
    label = (local(f.label) or humanize(f.name)) + (" *" if f.required else "")
    attrs: dict = {}
    if f.min is not None:
        attrs["min"] = f"{f.min:g}"
    if f.max is not None:
        attrs["max"] = f"{f.max:g}"
    if f.type == "boolean":
        return forms.BooleanField(label=label, required=False)
    if f.type == "file":
        accept = ",".join(f.accept) if f.accept else None
        widget = forms.ClearableFileInput(attrs={"accept": accept} if accept else {})
        return forms.FileField(label=label, required=False, widget=widget)
    if f.type == "text":
        widget = forms.Textarea(attrs={"rows": 3})
    elif f.type == "integer":
        widget = forms.NumberInput(attrs={**attrs, "step": "1"})
    elif f.type == "decimal":
        widget = forms.NumberInput(attrs={**attrs, "step": "any"})
    elif f.type == "date":
        widget = forms.DateInput(attrs={"type": "date"})
    elif f.type == "choice":
        widget = forms.Select(choices=[("", "—")] + [(c, humanize(c)) for c in f.choices])
    else:
        widget = forms.TextInput()
    return forms.CharField(label=label, required=False, widget=widget, strip=True, max_length=4000)


class DecisionForm(forms.Form):
    """Outcome (radio buttons, no default: Enter never approves by accident), fields, comment."""

    def __init__(self, task_spec: spec_module.TaskSpec, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.task_spec = task_spec
        if task_spec.outcomes:
            # A CharField: an unknown outcome is reported by the engine, in its words.
            self.fields["decision"] = forms.CharField(
                label=_("Decision"),
                widget=forms.RadioSelect(
                    choices=[(o, outcome_words(task_spec, o)) for o in task_spec.outcomes]
                ),
                required=False,
                max_length=200,
            )
        for f in task_spec.form:
            self.fields[f.name] = _field_for(f)
        self.fields["comment"] = forms.CharField(
            label=_("Comment"),
            required=False,
            max_length=COMMENT_MAX,
            widget=forms.Textarea(attrs={"rows": 3}),
        )

    def decision(self) -> str | None:
        return self.cleaned_data.get("decision") or None if self.task_spec.outcomes else None

    def uploads(self) -> dict:
        """The files given for the form's ``file`` fields, by field name."""
        return {
            f.name: self.cleaned_data[f.name]
            for f in self.task_spec.form
            if f.type == "file" and self.cleaned_data.get(f.name)
        }

    def payload(self) -> dict:
        data = {}
        for f in self.task_spec.form:
            value = self.cleaned_data.get(f.name)
            if f.type == "file":
                continue  # given to the engine as an upload (``uploads``)
            if f.type == "boolean":
                data[f.name] = bool(value)
            elif value not in (None, ""):
                data[f.name] = value
        return data

    def add_engine_errors(self, fields: dict[str, list[str]]) -> None:
        """Put ``InvalidInput.fields`` ("decision", "comment", "data.<name>") next to fields."""
        for key, messages in fields.items():
            name = key.removeprefix("data.")
            target = name if name in self.fields else None
            for message in messages:
                self.add_error(target, message)


class DelegateForm(forms.Form):
    to = forms.ModelChoiceField(queryset=None, label=_("Delegate to"), empty_label=_("— choose —"))
    comment = forms.CharField(
        label=_("Note"), required=False, max_length=COMMENT_MAX, widget=forms.Textarea({"rows": 2})
    )

    def __init__(self, candidates, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["to"].queryset = candidates
        self.fields["to"].label_from_instance = lambda u: (
            f"{u.get_full_name()} ({u.get_username()})" if u.get_full_name() else u.get_username()
        )

    def add_engine_errors(self, fields: dict[str, list[str]]) -> None:
        for key, messages in fields.items():
            for message in messages:
                self.add_error(key if key in self.fields else None, message)


class AbsenceForm(forms.Form):
    """An absence: the days are checked by ``engine.absence_record`` (its errors are put next
    to the fields), the substitute must be one of the choices (people of the same roles)."""

    starts_on = forms.CharField(label=_("First day away"), widget=forms.DateInput({"type": "date"}))
    ends_on = forms.CharField(label=_("Last day away"), widget=forms.DateInput({"type": "date"}))
    substitute = forms.ModelChoiceField(
        queryset=None,
        required=False,
        label=_("Substitute"),
        empty_label=_("— nobody: my roles take my tasks —"),
    )
    note = forms.CharField(label=_("Note"), required=False, max_length=200)

    def __init__(self, candidates, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["substitute"].queryset = candidates
        self.fields["substitute"].label_from_instance = lambda u: (
            f"{u.get_full_name()} ({u.get_username()})" if u.get_full_name() else u.get_username()
        )

    def add_engine_errors(self, fields: dict[str, list[str]]) -> None:
        for key, messages in fields.items():
            for message in messages:
                self.add_error(key if key in self.fields else None, message)


class ProfileForm(forms.ModelForm):
    """A person's language and time zone; blank keeps the browser's language / the site's zone."""

    class Meta:
        model = Profile
        fields = ["language", "time_zone"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["language"] = forms.ChoiceField(
            label=_("Language"),
            required=False,
            choices=[("", _("The browser's language"))] + list(settings.LANGUAGES),
        )
        self.fields["time_zone"].label = _("Time zone")
        self.fields["time_zone"].widget = forms.Select(
            choices=[("", _("The site's time zone (%(zone)s)") % {"zone": settings.TIME_ZONE})]
            + [(z, z) for z in sorted(zoneinfo.available_timezones())]
        )

"""Forms of the admin: a definition's JSON with every validation error at its path, and the
confirmation form every operating action asks for."""

from __future__ import annotations

import csv
import io
import json
import uuid

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext, gettext_lazy

from processes import bpmn
from processes import spec as spec_module
from processes.admin.widgets import pretty
from processes.models import ProcessDefinition

MAX_UPLOAD = 1024 * 1024


class DefinitionForm(forms.ModelForm):
    """Paste or upload a definition (native JSON or a seed workflow template)."""

    spec_text = forms.CharField(
        label="Definition (JSON)",
        required=False,
        widget=forms.Textarea(
            attrs={"rows": 28, "cols": 100, "class": "fd-json", "spellcheck": "false"}
        ),
        help_text="Native Flowdesk JSON or a seed workflow template (or BPMN 2.0 XML). Every "
        "problem is listed with its JSON path (in BPMN: the element's id).",
    )
    upload = forms.FileField(
        label="…or import a file",
        required=False,
        help_text="A .json file, or a .bpmn file from Camunda Modeler or bpmn.io; when given it "
        "replaces the text above.",
    )
    key_override = forms.SlugField(
        label="Key",
        required=False,
        max_length=100,
        help_text="Optional: store under this key instead of the file's "
        "(key, component_name or workflow_name).",
    )

    class Meta:
        model = ProcessDefinition
        fields: list[str] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.spec_errors: list[spec_module.SpecError] = []
        if self.instance.pk and not self.is_bound:
            self.initial.setdefault("spec_text", pretty(self.instance.spec))

    def clean(self):
        cleaned = super().clean()
        upload = cleaned.get("upload")
        text = cleaned.get("spec_text") or ""
        if upload is not None:
            if upload.size > MAX_UPLOAD:
                raise ValidationError({"upload": "the file is larger than 1 MB"})
            try:
                text = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                raise ValidationError({"upload": "the file is not UTF-8 text"}) from None
            cleaned["spec_text"] = text
        if not text.strip():
            raise ValidationError({"spec_text": "paste a definition or choose a file"})
        field = "spec_text" if upload is None else "upload"
        if text.lstrip().startswith("<"):  # BPMN 2.0 XML: the one BPMN check, then as JSON
            try:
                data = bpmn.definition_from_bpmn(text.encode("utf-8"))
            except spec_module.SpecValidationError as exc:
                self.spec_errors = exc.errors
                raise ValidationError(
                    {field: [f"{e.path or '(the file)'}: {e.message}" for e in exc.errors]}
                ) from None
            return self._checked(cleaned, data)
        try:
            # As the API's parser: NaN and Infinity are not JSON.
            data = json.loads(text, parse_constant=_refuse_constant)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                {field: f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"}
            ) from None
        except RecursionError:
            raise ValidationError({field: "not valid JSON: nested too deeply"}) from None
        except ValueError as exc:  # NaN, or an integer of more than 4,300 digits
            raise ValidationError({field: f"not valid JSON: {exc}"}) from None
        return self._checked(cleaned, data)

    def _checked(self, cleaned: dict, data) -> dict:
        """The definition with the key asked for, validated: every problem at its path."""
        key = cleaned.get("key_override")
        if key and isinstance(data, dict):
            data = {**data, "key": key}
        if self.instance.pk and isinstance(data, dict) and "key" not in data:
            data = {**data, "key": self.instance.key}
        parsed, errors = spec_module.parse(data)
        if not errors and self.instance.pk and parsed.key != self.instance.key:
            errors = [spec_module.SpecError("key", f"must stay {self.instance.key!r}")]
        if errors:
            self.spec_errors = errors
            raise ValidationError(
                {"spec_text": [f"{e.path or '(top level)'}: {e.message}" for e in errors]}
            )
        cleaned["data"] = data
        return cleaned


class ReasonForm(forms.Form):
    """Confirm a change; the reason lands in the history."""

    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        max_length=1000,
        label=gettext_lazy("Reason"),
        help_text=gettext_lazy("Why? It is recorded in the process history with your name."),
    )

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise ValidationError(gettext_lazy("a reason is required"))
        return reason


class ActionForm(ReasonForm):
    """Confirm an operating action (replaying a stage: which one; skipping a task: the values
    of its results that later tasks read, set with the same reason, each with the input of its
    declared type)."""

    def __init__(
        self,
        *args,
        stages: list[str] | None = None,
        set_paths: list[str] = (),
        declared: dict | None = None,
        reassign: bool = False,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        if reassign:
            person = gettext_lazy(
                "A username: they hold the task (unless separation of duties bars them)."
            )
            role = gettext_lazy("A role (group): its members may claim the task.")
            for name, label, help_text in (
                ("to_user", gettext_lazy("To a person"), person),
                ("to_role", gettext_lazy("Or to a role"), role),
            ):
                self.fields[name] = forms.CharField(
                    label=label, required=False, max_length=150, help_text=help_text
                )
            self.order_fields(["to_user", "to_role", "reason"])
        if stages is not None:
            self.fields["stage"] = forms.ChoiceField(
                choices=[(s, s) for s in stages],
                label=gettext_lazy("Stage"),
                help_text=gettext_lazy("This stage and every later one run again."),
            )
            self.order_fields(["stage", "reason"])
        self.set_paths = list(set_paths)
        self.declared = declared or {}
        for path in self.set_paths:
            self.fields[f"set:{path}"] = typed_input(
                self.declared.get(path),
                label=gettext("Set %(path)s") % {"path": path},
                empty_hint=gettext("Leave empty to leave it missing."),
            )

    def values_to_set(self) -> dict:
        return {
            path: value
            for path in self.set_paths
            if (value := typed_value(self.declared.get(path), self.cleaned_data.get(f"set:{path}")))
            is not None
        }

    def add_engine_errors(self, fields: dict[str, list[str]]) -> bool:
        """Put the engine's ``set.<path>`` (and this form's fields') errors next to their
        inputs; True if any was."""
        placed = False
        for key, problems in fields.items():
            path = key.removeprefix("set.")
            target = next(
                (p for p in self.set_paths if path == p or path.startswith(p + ".")), None
            )
            if key.startswith("set.") and target is not None:
                self.add_error(f"set:{target}", problems)
                placed = True
            elif key in self.fields:
                self.add_error(key, problems)
                placed = True
        return placed


def describe_field(f: spec_module.FormField | None) -> str:
    """What a declared field takes, in a few words: "decimal, 2 places, at least 0, required"."""
    if f is None:
        return "not declared: any JSON value"
    words = [f"list of {f.items.type}" if f.type == "list" and f.items else f.type]
    if f.places is not None:
        words.append(f"{f.places} place{'s' if f.places != 1 else ''}")
    unit = " elements" if f.type == "list" else ""
    if f.min is not None:
        words.append(f"at least {f.min:g}{unit}")
    if f.max is not None:
        words.append(f"at most {f.max:g}{unit}")
    if f.choices:
        words.append("one of " + ", ".join(f.choices))
    pattern = f.pattern or (f.items.pattern if f.type == "list" and f.items else None)
    if pattern:
        words.append(f"matching {pattern}")
    if f.required:
        words.append("required")
    return ", ".join(words)


def typed_input(
    f: spec_module.FormField | None, *, label: str, empty_hint: str = "", initial=None
) -> forms.Field:
    """The input for a value of the declared field ``f`` (its text is converted by the engine's
    one check, ``spec.coerce``); an undeclared value is typed as JSON."""
    hint = f" {empty_hint}" if empty_hint else ""
    if f is None:
        return forms.CharField(
            label=label,
            required=False,
            max_length=10000,
            initial=initial,
            widget=forms.Textarea(attrs={"rows": 3, "cols": 80, "class": "fd-json"}),
            help_text='Not declared: JSON (409.32, "EUR", {…}); plain text is taken as text.'
            + hint,
        )
    attrs: dict = {}
    if f.type in ("integer", "decimal"):
        for bound in ("min", "max"):
            if getattr(f, bound) is not None:
                attrs[bound] = f"{getattr(f, bound):g}"
        step = "1" if f.type == "integer" else ("any" if f.places is None else f"{10**-f.places:f}")
        widget = forms.NumberInput(attrs={**attrs, "step": step})
    elif f.type == "boolean":
        widget = forms.Select(choices=[("", "—"), ("true", "true"), ("false", "false")])
    elif f.type == "date":
        widget = forms.DateInput(attrs={"type": "date"})
    elif f.type == "choice":
        widget = forms.Select(choices=[("", "—")] + [(c, c) for c in f.choices])
    elif f.type in ("text", "list"):
        widget = forms.Textarea(attrs={"rows": 3, "cols": 80})
    else:
        widget = forms.TextInput(attrs={"size": 60})
    list_hint = " Elements separated by commas." if f.type == "list" else ""
    return forms.CharField(
        label=label,
        required=False,
        max_length=10000,
        strip=f.type != "text",
        initial=initial,
        widget=widget,
        help_text=f"{describe_field(f)}.{list_hint}{hint}",
    )


def typed_value(f: spec_module.FormField | None, text) -> object | None:
    """What an input of ``typed_input`` sends the engine: None when empty; the text for a
    declared field (the engine converts and checks it); JSON, else text, when undeclared."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if f is not None:
        return text
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, ValidationError, RecursionError):
        return text.strip()


class BatchCsvForm(forms.Form):
    """A CSV of processes to start: a ``business_key`` column; every other column is an input
    variable (text; an empty cell is left out)."""

    file = forms.FileField(label="CSV file", help_text="UTF-8, with a header row.")

    MAX_BYTES = 16 * 1024 * 1024

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > self.MAX_BYTES:
            raise forms.ValidationError("the file is over 16 MB")
        try:
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise forms.ValidationError("the file is not UTF-8 text") from None
        try:
            rows = list(csv.reader(io.StringIO(text)))
        except csv.Error as exc:
            raise forms.ValidationError(f"not a CSV file: {exc}") from None
        rows = [r for r in rows if any(cell.strip() for cell in r)]
        if not rows:
            raise forms.ValidationError("the file is empty")
        header = [h.strip() for h in rows[0]]
        _refuse_nul(rows, header)
        if "business_key" not in header:
            raise forms.ValidationError("the header row has no business_key column")
        if len(set(header)) != len(header) or "" in header:
            raise forms.ValidationError("the header row has an empty or repeated column name")
        if len(rows) == 1:
            raise forms.ValidationError("the file has a header row but no process to start")
        if len(rows) - 1 > 10_000:
            raise forms.ValidationError(f"at most 10,000 rows, the file has {len(rows) - 1}")
        items = []
        for number, row in enumerate(rows[1:], start=2):
            if len(row) != len(header):
                raise forms.ValidationError(
                    f"line {number} has {len(row)} cells, the header {len(header)}"
                )
            values = dict(zip(header, row, strict=True))
            key = values.pop("business_key")  # as sent: the engine's one key rule trims it
            items.append(
                {"business_key": key, "input": {k: v for k, v in values.items() if v != ""}}
            )
        return items


def _refuse_nul(rows: list[list[str]], header: list[str]) -> None:
    """A NUL character can't be stored (PostgreSQL text and JSON refuse it): say where it is."""
    for number, row in enumerate(rows, start=1):
        for index, cell in enumerate(row):
            if "\x00" in cell:
                name = header[index] if number > 1 and index < len(header) else ""
                where = f"column {name!r}" if name else f"column {index + 1}"
                raise forms.ValidationError(
                    f"line {number}, {where}: NUL characters (\\x00) are not allowed"
                )


class MigrationForm(forms.Form):
    """Which instances move to this version, and how their tasks map."""

    source = forms.ModelChoiceField(queryset=ProcessDefinition.objects.none(), label="from version")
    mapping = forms.CharField(
        required=False,
        label="Task mapping (JSON)",
        help_text='{"old task": "new task", "dropped task": null}; tasks left out keep their name.',
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80, "class": "fd-json"}),
    )
    instances = forms.CharField(
        required=False,
        label="Instances",
        help_text="Ids, one per line; empty: every active instance of that version.",
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
    )

    def __init__(self, *args, definition: ProcessDefinition, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["source"].queryset = ProcessDefinition.objects.filter(
            key=definition.key
        ).exclude(pk=definition.pk)

    def clean_mapping(self):
        text = self.cleaned_data["mapping"].strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("must be a JSON object")
        return value

    def clean_instances(self):
        ids = []
        for line in self.cleaned_data["instances"].split():
            try:
                ids.append(uuid.UUID(line.strip().strip(",")))
            except ValueError:
                raise forms.ValidationError(f"not an instance id: {line[:60]!r}") from None
        return ids or None


class DiffForm(forms.Form):
    other = forms.ModelChoiceField(queryset=ProcessDefinition.objects.none(), label="compare with")

    def __init__(self, *args, definition: ProcessDefinition, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["other"].queryset = ProcessDefinition.objects.filter(
            key=definition.key
        ).exclude(pk=definition.pk)


class VariableForm(ReasonForm):
    """Correct one variable (as Camunda Operate does): its new value in the input of its declared
    type, or remove it; and why."""

    field_order = ["value", "remove", "reason"]

    def __init__(self, *args, path: str, declared: spec_module.FormField | None, current, **kwargs):
        super().__init__(*args, **kwargs)
        self.path, self.declared = path, declared
        present = current is not spec_module.MISSING
        initial = None
        if present:
            initial = pretty(current) if declared is None or isinstance(current, dict | list) else (
                str(current).lower() if isinstance(current, bool) else str(current)
            )  # fmt: skip
            if declared is not None and declared.type == "list" and isinstance(current, list):
                initial = ", ".join(str(v) for v in current)
        self.fields["value"] = typed_input(declared, label=f"New value of {path}", initial=initial)
        if present and not (declared is not None and declared.required):
            self.fields["remove"] = forms.BooleanField(
                required=False, label=f"Remove {path}", help_text="Instead of a new value."
            )
        self.order_fields(self.field_order)

    def clean(self):
        cleaned = super().clean()
        value = typed_value(self.declared, cleaned.get("value"))
        if cleaned.get("remove"):
            cleaned["set"], cleaned["unset"] = {}, [self.path]
        elif value is None:
            self.add_error("value", "give the new value (or remove the variable)")
        else:
            cleaned["set"], cleaned["unset"] = {self.path: value}, []
        return cleaned


class VariablePathForm(forms.Form):
    """Which variable to correct when it is not listed (a new, undeclared one)."""

    path = forms.CharField(
        label="Another variable",
        max_length=2100,
        help_text="A variable path like 'bonus.note'.",
        widget=forms.TextInput(attrs={"size": 40}),
    )

    def clean_path(self):
        path = self.cleaned_data["path"].strip()
        if not spec_module.VAR_PATH_RE.fullmatch(path):
            raise ValidationError("not a variable path like 'bonus.amount'")
        return path


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")

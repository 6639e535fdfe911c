"""The output base class, the error shapes (for the schema) and the token endpoint."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import SkipField
from rest_framework.relations import PKOnlyObject

from processes import spec


class OutputSerializer(serializers.Serializer):
    """An output serializer whose fields are built and bound once per class, not per instance.

    DRF deep-copies every declared field for every serializer it creates: a third of the CPU of
    writing a process with its tasks. Output fields here keep no per-call state and never read
    ``context``, so one bound set per class serves every call; the output is DRF's own.
    ``given``: fields the caller hands in beside the instance (a subclass writes them in its
    ``to_representation``), not read from it.
    """

    given: tuple[str, ...] = ()

    @classmethod
    def _readable(cls) -> list[serializers.Field]:
        bound = cls.__dict__.get("_bound_fields")
        if bound is None:
            bound = [
                f
                for f in cls().fields.values()
                if not f.write_only and f.field_name not in cls.given
            ]
            cls._bound_fields = bound
        return bound

    def to_representation(self, instance):
        data = {}
        for field in self._readable():
            try:
                attribute = field.get_attribute(instance)
            except SkipField:
                continue
            empty = (attribute.pk if isinstance(attribute, PKOnlyObject) else attribute) is None
            data[field.field_name] = None if empty else field.to_representation(attribute)
        return data


@extend_schema_field(OpenApiTypes.DATETIME)
class OccurredAtField(serializers.Field):
    """When an incoming event happened, as its sender says: an ISO 8601 date-time, checked by
    ``spec.data.moment`` (the one rule), kept beside the time it is recorded."""

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        kwargs.setdefault(
            "help_text",
            "When it happened, as you say (ISO 8601; UTC when no offset): kept in the history "
            "beside the time it was recorded.",
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        try:
            return spec.moment(data)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def to_representation(self, value):
        return value.isoformat()


@extend_schema_field(OpenApiTypes.STR)
class BusinessKeyField(serializers.Field):
    """A business key, checked and trimmed by ``spec.normalize_business_key`` alone (the one
    rule every entrance calls): DRF's CharField would trim and measure it by rules of its own
    first."""

    def to_internal_value(self, data):
        key, problem = spec.normalize_business_key(data)
        if problem:
            raise serializers.ValidationError(problem)
        return key

    def to_representation(self, value):
        return value


class SpecErrorSerializer(serializers.Serializer):
    path = serializers.CharField(
        help_text="JSON path in the definition, e.g. `stages[2].tasks[0]`."
    )
    message = serializers.CharField()


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="Machine-readable: `invalid`, `not_found`, `conflict`, ..."
    )
    message = serializers.CharField()
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Field path → messages (400 only; empty otherwise).",
    )
    errors = SpecErrorSerializer(
        many=True, required=False, help_text="Definition import only: every problem with its path."
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()

"""Definitions and their versions."""

from __future__ import annotations

from rest_framework import serializers


class DefinitionSerializer(serializers.Serializer):
    key = serializers.CharField()
    version = serializers.IntegerField()
    name = serializers.CharField()
    component_name = serializers.CharField(help_text="The seed template's component_name.")
    description = serializers.CharField()
    status = serializers.CharField()
    published_at = serializers.DateTimeField(allow_null=True)


class DefinitionVersionSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField()
    published_at = serializers.DateTimeField(allow_null=True)


class DefinitionDetailSerializer(DefinitionSerializer):
    spec = serializers.JSONField()
    versions = DefinitionVersionSerializer(many=True)
    retention = serializers.SerializerMethodField(
        help_text="How long closed processes are kept before `archive_processes` archives and "
        "deletes them (ISO 8601, e.g. `P7Y`); null: kept for ever."
    )

    def get_retention(self, definition) -> str | None:
        kept = definition.parsed().retention
        return kept.text if kept is not None else None


class DefinitionImportedSerializer(serializers.Serializer):
    key = serializers.CharField()
    version = serializers.IntegerField()
    created = serializers.BooleanField(help_text="False when the newest version was identical.")

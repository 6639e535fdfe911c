"""``/api/definitions/``: list, import (a native spec, a seed-002 template or a BPMN 2.0 file),
read one, its BPMN diagram, move running instances to another version, and the definition
language as JSON Schema."""

from django.http import HttpResponse
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from processes import authority, bpmn, engine, selectors
from processes.api import serializers as ser
from processes.api.base import BPMN_PARSERS, ApiView, BpmnDocument, StrictJSONParser
from processes.api.docs import definitions as docs
from processes.api.views.common import ListView, actor_of, validated
from processes.errors import Forbidden, InvalidInput, NotFound
from processes.models import ProcessDefinition
from processes.spec.schema import definition_schema


class DefinitionListView(ListView):
    queryset = ProcessDefinition.objects.none()  # the schema's model; reads: selectors
    parser_classes = [StrictJSONParser, *BPMN_PARSERS]

    @docs.list_definitions
    def get(self, request):
        return self.page(selectors.definitions_for(request.user), ser.DefinitionSerializer)

    @docs.import_definition
    def post(self, request):
        if not authority.has_any_grant(request.user, authority.PUBLISH) and not (
            authority.may_create_keys(request.user)
        ):
            raise Forbidden("you may not import definitions")
        key = request.query_params.get("key") or None
        if key is not None and (len(key) > 100 or "\x00" in key):
            raise InvalidInput("invalid key", fields={"key": ["at most 100 characters"]})
        data = request.data
        if request.content_type.split(";")[0].strip().lower() in bpmn.CONTENT_TYPES:
            # a BPMN file: read into a definition, then imported as any JSON one
            data = bpmn.definition_from_bpmn(data if isinstance(data, BpmnDocument) else b"")
        definition, created = engine.definition_import(data=data, key=key, actor=actor_of(request))
        body = {"key": definition.key, "version": definition.version, "created": created}
        return Response(
            body,
            status=201 if created else 200,
            headers={"Location": f"/api/definitions/{definition.key}/"},
        )


class DefinitionSchemaView(ApiView):
    """Public, like the OpenAPI schema: editors fetch it without credentials."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @docs.definition_schema
    def get(self, request):
        return Response(definition_schema(request.build_absolute_uri()))


class DefinitionDetailView(ApiView):
    @docs.definition_detail
    def get(self, request, key):
        definition, versions = selectors.definition_detail(request.user, key)
        definition.versions = versions
        return Response(ser.DefinitionDetailSerializer(definition).data)


class DefinitionBpmnView(ApiView):
    """The definition as BPMN 2.0 XML with its diagram (the newest published version, or
    ``?version=``): for bpmn.io, Camunda Modeler, or an import elsewhere."""

    @docs.definition_bpmn
    def get(self, request, key):
        definition, versions = selectors.definition_detail(request.user, key)
        wanted = request.query_params.get("version")
        if wanted is not None:
            if not wanted.isdigit():
                raise InvalidInput("invalid version", fields={"version": ["a version number"]})
            definition = next((v for v in versions if v.version == int(wanted)), None)
            if definition is None:
                raise NotFound(f"no version {wanted} of {key!r}")
        response = HttpResponse(
            bpmn.bpmn_from_definition(definition.spec, definition.key),
            content_type="application/xml",
        )
        name = f"{definition.key}-v{definition.version}.bpmn"
        response["Content-Disposition"] = f'inline; filename="{name}"'
        return response


class DefinitionMigrationView(ApiView):
    @docs.migrate_instances
    def post(self, request, key):
        data = validated(ser.MigrationRequestSerializer, request.data)
        if not authority.has_definition_perm(request.user, authority.ANY, key):
            raise NotFound(f"no definition {key!r}")
        results = engine.migrate_instances(
            key=key,
            from_version=data["from_version"],
            to_version=data["to_version"],
            mapping=data.get("mapping"),
            instance_ids=data.get("instances"),
            actor=actor_of(request),
            dry_run=data["dry_run"],
        )
        summary = {"planned": 0, "migrated": 0, "refused": 0}
        rows = []
        for plan, migrated in results:
            summary["refused" if not plan.ok else "migrated" if migrated else "planned"] += 1
            rows.append({**plan.as_dict(), "migrated": migrated})
        return Response({"dry_run": data["dry_run"], "summary": summary, "instances": rows})

"""What the API's views share: the caller as an actor, validated input, 403 or 404, pages."""

from __future__ import annotations

from rest_framework.generics import GenericAPIView

from processes import authority
from processes.api.authentication import FlowdeskTokenAuthentication
from processes.api.base import ApiView, Pagination
from processes.errors import Forbidden, NotFound
from processes.events import Actor


def actor_of(request) -> Actor:
    """The caller as the history records it: a system calling with its token (``api``), or a
    person signed in to the site (``user``)."""
    if isinstance(request.successful_authenticator, FlowdeskTokenAuthentication):
        return Actor.api(request.user)
    return Actor.for_user(request.user)


def validated(serializer_class, data) -> dict:
    """``data`` checked by an input serializer; 400 with every field's problem otherwise."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def require(request, perm: str, definition_key: str, what: str) -> None:
    """403 when the caller sees the definition but lacks ``perm``; 404 when it sees nothing."""
    user = request.user
    if authority.has_definition_perm(user, perm, definition_key):
        return
    if authority.has_definition_perm(user, authority.ANY, definition_key):
        raise Forbidden(f"you may not {what} of {definition_key!r}")
    raise NotFound(f"no published definition {definition_key!r}")


class ListView(ApiView, GenericAPIView):
    """A paged list (a GenericAPIView, so that the schema shows the page around the items)."""

    pagination_class = Pagination

    def page(self, queryset, serializer_class):
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(serializer_class(page, many=True).data)

"""The API's token authentication, in a module of its own so that the settings can name it as
DRF's default (``processes.api.base`` imports DRF's views, which read that default)."""

from __future__ import annotations

import time

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models.signals import post_delete, post_save
from django.utils.translation import gettext_lazy as _
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

from processes.db import api as db_api


class _TokenUsers:
    """Token -> the user row's values, kept ``FLOWDESK_TOKEN_CACHE_SECONDS`` per web worker.

    Revocation: deleting a token or saving its user (deactivated, demoted, new password) drops
    every entry of this process at once (signals below); another web worker keeps answering
    from its entry for at most that many seconds. Grants are not cached: every permission is
    still read from the database per request. ``0`` turns the cache off.
    """

    MAX = 10_000

    def __init__(self) -> None:
        self.entries: dict[str, tuple[float, list]] = {}

    def user(self, key: str):
        from django.conf import settings

        ttl = settings.FLOWDESK_TOKEN_CACHE_SECONDS
        now = time.monotonic()
        found = self.entries.get(key) if ttl > 0 else None
        model = get_user_model()
        if found is not None and found[0] > now:
            return model.from_db(connection.alias, None, list(found[1]))  # a fresh instance
        user = db_api.token_user(key)
        if user is not None and ttl > 0:
            if len(self.entries) >= self.MAX:
                self.entries.clear()
            values = [getattr(user, f.attname) for f in model._meta.concrete_fields]
            self.entries[key] = (now + ttl, values)
        return user

    def clear(self, **_) -> None:
        self.entries.clear()


token_users = _TokenUsers()
post_delete.connect(token_users.clear, sender=Token, dispatch_uid="flowdesk-token-cache-token")
post_save.connect(token_users.clear, sender=Token, dispatch_uid="flowdesk-token-cache-token-save")


def _user_saved(sender, **kwargs) -> None:
    if sender is get_user_model():
        token_users.clear()


post_save.connect(_user_saved, dispatch_uid="flowdesk-token-cache-user")
post_delete.connect(_user_saved, dispatch_uid="flowdesk-token-cache-user-delete")


class FlowdeskTokenAuthentication(TokenAuthentication):
    """Token auth for systems; their events are recorded with the API actor type
    (``views.common.actor_of`` asks which authenticator let the request in).

    The token and its user are read with one fixed statement (``processes/db/``) and kept a few
    seconds per web worker (``_TokenUsers``: every API call needs them). Same answers as DRF's.
    """

    def authenticate_credentials(self, key):
        user = token_users.user(key)
        if user is None:
            raise AuthenticationFailed(_("Invalid token."))
        if not user.is_active:
            raise AuthenticationFailed(_("User inactive or deleted."))
        token = Token(key=key, user_id=user.pk)
        token.user = user
        return user, token

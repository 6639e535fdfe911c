"""The API's token authentication, in a module of its own so that the settings can name it as
DRF's default (``processes.api.base`` imports DRF's views, which read that default)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

from processes.db import api as db_api


class FlowdeskTokenAuthentication(TokenAuthentication):
    """Token auth for systems; their events are recorded with the API actor type.

    The token and its user are read with one fixed statement (``processes/db/``): every API
    call pays for it, and DRF's ORM lookup cost three times the CPU. Same answers as DRF's.
    """

    def authenticate_credentials(self, key):
        user = db_api.token_user(key)
        if user is None:
            raise AuthenticationFailed(_("Invalid token."))
        if not user.is_active:
            raise AuthenticationFailed(_("User inactive or deleted."))
        user._flowdesk_api = True
        token = Token(key=key, user_id=user.pk)
        token.user = user
        return user, token

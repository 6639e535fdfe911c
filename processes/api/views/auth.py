"""``POST /api/auth/token/``: a username and password for an API token."""

from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_logged_in
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from processes.api import serializers as ser
from processes.api.base import ApiView
from processes.api.docs import auth as docs
from processes.api.views.common import validated
from processes.errors import InvalidInput


class TokenView(ApiView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @docs.token
    def post(self, request):
        data = validated(ser.TokenRequestSerializer, request.data)
        user = authenticate(request._request, username=data["username"], password=data["password"])
        if user is None or not user.is_active:
            raise InvalidInput("unable to log in with the given credentials")
        # A login like the page's: django-axes resets the failure count, last_login is kept.
        user_logged_in.send(sender=type(user), request=request._request, user=user)
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})

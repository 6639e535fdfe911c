"""OpenAPI of ``POST /api/auth/token/``."""

from drf_spectacular.utils import extend_schema

from processes.api import schema as s
from processes.api import serializers as ser

token = extend_schema(
    tags=["auth"],
    summary="Get an API token",
    description="Send it as `Authorization: Token <token>` on every other request.",
    request=ser.TokenRequestSerializer,
    responses={
        200: ser.TokenSerializer,
        400: s.BAD_REQUEST,
        413: s.TOO_LARGE,
        415: s.UNSUPPORTED,
        429: s.LOCKED_OUT,
    },
    examples=[
        s.request_example("credentials", {"username": "shop-frontend", "password": "s3cret"}),
        s.response_example("token", {"token": "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"}),
    ],
    auth=[],
)

"""Every path parameter of the API and of the inbox, given NUL bytes, invalid text, huge numbers
or a trailing newline, answers 400 or 404 (or 401/403/405), never a 500 (issue 13).

The routes are read from the URL configuration, so a path added later is walked too.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import URLPattern, get_resolver

from tests.api.conftest import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ODD_SEGMENTS = [
    "%00",
    "a%00b",
    "%FF%FE",  # invalid UTF-8
    "%ED%A0%80",  # an encoded surrogate
    "pizza%0A",  # a trailing newline after a valid key
    "1" * 400,
    "1" * 5000,  # past Python's 4,300-digit limit for int(text)
    "9" * 25,  # past bigint
    "-1",
    "00000000-0000-0000-0000-000000000000",
    "x" * 300,
]
PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")


def _routes(patterns=None, prefix="") -> list[str]:
    """Every route (as text, parameters included) of the URL configuration, admin excepted."""
    routes = []
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        text = prefix + str(entry.pattern)
        if text.startswith("admin/"):
            continue  # walked by tests/admin/test_every_url.py
        if isinstance(entry, URLPattern):
            routes.append(text)
        else:
            routes.extend(_routes(entry.url_patterns, text))
    return routes


def test_the_walk_finds_the_parameters_of_the_api_and_the_inbox():
    with_parameters = [r for r in _routes() if PARAMETER.search(r)]

    assert "api/definitions/<text:key>/" in with_parameters
    assert "api/processes/<uuid:pk>/cancel/" in with_parameters
    assert "inbox/tasks/<int:pk>/decide/" in with_parameters
    assert len(with_parameters) >= 12


@pytest.mark.parametrize("method", ["get", "post"])
def test_odd_path_parameters_never_give_a_500(pizza, method):
    superuser = UserFactory(username="root", is_staff=True, is_superuser=True)
    api = client_for(superuser)
    web = Client(raise_request_exception=False)
    web.force_login(superuser)
    api.raise_request_exception = False
    problems, walked = [], 0
    for route in _routes():
        if not PARAMETER.search(route):
            continue
        for segment in ODD_SEGMENTS:
            path = "/" + PARAMETER.sub(segment, route)
            client = api if path.startswith("/api/") else web
            kwargs = {"data": {}, "format": "json"} if client is api and method == "post" else {}
            response = getattr(client, method)(path, **kwargs)
            walked += 1
            if response.status_code >= 500:
                problems.append((method, path, response.status_code))
    assert walked >= 12 * len(ODD_SEGMENTS)
    assert problems == [], problems

"""Fixtures shared by the engine's tests."""

import datetime as dt

import pytest
from django.utils import timezone


@pytest.fixture
def clock(monkeypatch):
    """Move the engine's clock forward: ``clock.advance(seconds)``."""
    real_now = timezone.now

    class Clock:
        offset = dt.timedelta(0)

        def advance(self, seconds):
            self.offset += dt.timedelta(seconds=seconds)

    c = Clock()
    monkeypatch.setattr(timezone, "now", lambda: real_now() + c.offset)
    return c

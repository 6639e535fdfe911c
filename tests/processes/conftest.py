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


FILE_STORAGE = "django.core.files.storage.FileSystemStorage"


@pytest.fixture
def storages_at(settings):
    """Point named storages elsewhere for one test: ``storages_at(flowdesk_archive={...})``.
    Django keeps the storages it built, so they are forgotten before and after."""
    from django.core.files.storage import storages

    names = set()

    def point(**backends):
        settings.STORAGES = {**settings.STORAGES, **backends}
        names.update(backends)
        for name in backends:
            storages._storages.pop(name, None)
        storages._backends = None

    yield point
    for name in names:
        storages._storages.pop(name, None)
    storages._backends = None


@pytest.fixture
def archive_dir(tmp_path, storages_at):
    """Archives go to a directory of this test's own."""
    storages_at(
        flowdesk_archive={
            "BACKEND": FILE_STORAGE,
            "OPTIONS": {"location": str(tmp_path / "archive")},
        }
    )
    return tmp_path / "archive"

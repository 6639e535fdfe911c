"""Settings of the test suite: the project's own, with a test-only secret and plain HTTP.

The project refuses to start without ``DJANGO_SECRET_KEY`` when DEBUG is off; tests set their
own here (subprocesses the tests start inherit it through the environment).
"""

import os
import tempfile

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-" + "x" * 50)
os.environ.setdefault("FLOWDESK_HTTPS", "0")
# files attached in tests (content-addressed: tests running side by side may share the folder)
os.environ.setdefault(
    "FLOWDESK_ATTACHMENTS_DIR", os.path.join(tempfile.gettempdir(), "flowdesk-test-attachments")
)  # the test client and servers speak plain HTTP

from config.settings import *  # noqa: E402,F403

# A password hash per test user costs ~0.4 s with the production hasher; tests check behaviour,
# not the hash's strength.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if os.environ.get("FLOWDESK_SERVE_AS_PRODUCTION") != "1":
    # The in-process test client renders {% static %} without a collectstatic run; the browser
    # tests' gunicorn (tests/conftest.py, web_server) keeps the production manifest storage.
    STORAGES = {  # noqa: F405
        **STORAGES,  # noqa: F405
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }

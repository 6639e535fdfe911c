"""Safe by default in production: a secret key is required, `check --deploy` is clean with the
docs' production settings (docs/operations/production.md), logins are throttled, and the event log can't be emptied."""

import os
import subprocess
import sys
import uuid

import psycopg
import pytest
from django.db import connection
from django.urls import reverse

from processes import engine
from processes.events import Actor
from tests.conftest import ROOT, subprocess_env
from tests.factories import UserFactory

# The production example of docs/operations/production.md, with a stand-in secret.
PRODUCTION_ENV = {
    "DJANGO_SECRET_KEY": "k" + uuid.uuid4().hex + uuid.uuid4().hex,
    "DJANGO_DEBUG": "0",
    "DJANGO_ALLOWED_HOSTS": "flowdesk.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://flowdesk.example.com",
    "FLOWDESK_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO",
    "FLOWDESK_BASE_URL": "https://flowdesk.example.com",
}


def manage(*args, env):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "FLOWDESK_"))}
    base["DJANGO_SETTINGS_MODULE"] = "config.settings"
    base["DATABASE_URL"] = subprocess_env()["DATABASE_URL"]
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.django_db
def test_no_secret_key_with_debug_off_refuses_to_start_in_one_line():
    done = manage("check", env={"DJANGO_DEBUG": "0"})
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "error: DJANGO_SECRET_KEY is not set and DJANGO_DEBUG is off: set a long random "
        "DJANGO_SECRET_KEY (python -c 'import secrets; print(secrets.token_urlsafe(50))')"
    ]


@pytest.mark.django_db
def test_commands_that_sign_nothing_run_without_a_secret_key():
    done = manage("makemigrations", "--check", "--dry-run", env={"DJANGO_DEBUG": "0"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No changes detected" in done.stdout


@pytest.mark.django_db
def test_check_deploy_is_clean_with_the_readme_production_settings():
    done = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


@pytest.mark.django_db
def test_production_defaults_are_secure():
    done = manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, "
        "s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, "
        "s.SECURE_PROXY_SSL_HEADER, len(s.AUTH_PASSWORD_VALIDATORS))",
        env=PRODUCTION_ENV,
    )
    assert done.stdout.split() == [
        "True",
        "True",
        "True",
        "31536000",
        "('HTTP_X_FORWARDED_PROTO',",
        "'https')",
        "4",
    ], done.stderr


# --- throttling ---------------------------------------------------------------------------------


@pytest.fixture
def throttled(settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 5
    return UserFactory(username="mallory-target", password="right-password")


@pytest.mark.django_db
def test_thirty_wrong_passwords_lock_the_token_endpoint(throttled, client):
    url = "/api/auth/token/"
    body = {"username": "mallory-target", "password": "wrong"}
    codes = [client.post(url, body, content_type="application/json").status_code for _ in range(30)]
    assert codes[:4] == [400] * 4 and set(codes[5:]) == {429}
    right = client.post(
        url,
        {"username": "mallory-target", "password": "right-password"},
        content_type="application/json",
    )
    assert right.status_code == 429
    assert right.json()["error"]["code"] == "too_many_attempts"
    assert "try again in 15 minutes" in right.json()["error"]["message"]
    assert int(right["Retry-After"]) == 15 * 60


@pytest.mark.django_db
def test_thirty_wrong_passwords_lock_the_login_page_with_a_plain_message(throttled, client):
    url = reverse("tasks_inbox:login")
    for _ in range(30):
        client.post(url, {"username": "mallory-target", "password": "wrong"})
    page = client.post(url, {"username": "mallory-target", "password": "right-password"})
    assert page.status_code == 429
    assert "Too many failed logins for this account from your address" in page.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_a_success_before_the_limit_resets_the_count(throttled, client):
    url = "/api/auth/token/"
    for _ in range(2):
        for _ in range(4):
            client.post(
                url,
                {"username": "mallory-target", "password": "x"},
                content_type="application/json",
            )
        ok = client.post(
            url,
            {"username": "mallory-target", "password": "right-password"},
            content_type="application/json",
        )
        assert ok.status_code == 200


# --- the event log on PostgreSQL ------------------------------------------------------------------


def _event_count(process_id):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM processes_processevent WHERE process_id = %s", [process_id]
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_truncate_of_the_event_log_is_refused_even_for_its_owner(postgres, pizza):
    process = engine.process_start(
        definition_key="pizza", business_key="T1", actor=Actor.system("t")
    ).process
    with (
        pytest.raises(Exception, match="append-only: TRUNCATE refused"),
        connection.cursor() as cursor,
    ):
        cursor.execute("TRUNCATE processes_processevent CASCADE")
    assert _event_count(process.pk) > 0


@pytest.fixture
def app_role(postgres, transactional_db):
    """A role made by ``manage.py app_db_role``, connected to the test database."""
    from django.core.management import call_command

    role = f"flowdesk_app_{uuid.uuid4().hex[:8]}"
    call_command("app_db_role", role)
    db = connection.settings_dict
    conn = psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=role,
        dbname=db["NAME"],
        autocommit=True,
    )
    yield conn
    conn.close()
    with connection.cursor() as cursor:
        cursor.execute(f'DROP OWNED BY "{role}"')
        cursor.execute(f'DROP ROLE "{role}"')


def test_the_app_role_works_but_can_not_change_or_empty_the_event_log(app_role, pizza):
    process = engine.process_start(
        definition_key="pizza", business_key="T2", actor=Actor.system("t")
    ).process
    pid = str(process.pk)
    # what the application needs works
    assert (
        app_role.execute(
            "SELECT count(*) FROM processes_processevent WHERE process_id = %s", [pid]
        ).fetchone()[0]
        > 0
    )
    app_role.execute(
        "UPDATE processes_processinstance SET business_status = 'X' WHERE id = %s", [pid]
    )
    # the event log refuses everything but reading and appending, even with the purge flag
    refused = [
        "UPDATE processes_processevent SET data = '{}'",
        "DELETE FROM processes_processevent",
        "TRUNCATE processes_processevent",
        "ALTER TABLE processes_processevent DISABLE TRIGGER ALL",
        "ALTER TABLE processes_processevent DISABLE TRIGGER processes_processevent_append_only",
        "DROP TRIGGER processes_processevent_no_truncate ON processes_processevent",
    ]
    for statement in refused:
        with pytest.raises(psycopg.errors.InsufficientPrivilege), app_role.transaction():
            app_role.execute("SET LOCAL flowdesk.purge = 'on'")
            app_role.execute(statement)
    assert _event_count(process.pk) > 0


def test_app_db_role_refuses_bad_input(postgres, transactional_db):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="invalid role name"):
        call_command("app_db_role", "x; DROP TABLE y")
    with pytest.raises(CommandError, match="is the role running this command"):
        call_command("app_db_role", connection.settings_dict["USER"] or "postgres")

"""Shared fixtures. Real parts everywhere: the test database is the one DATABASE_URL names."""

import json
from pathlib import Path

import pytest

from processes import engine
from processes.events import Actor

DEFINITIONS = Path(__file__).resolve().parent.parent / "processes" / "definitions"


@pytest.fixture
def system_actor():
    return Actor.system("test")


@pytest.fixture
def import_definition(db, system_actor):
    """Import and publish a definition dict (or a reference file name such as "pizza.json")."""

    def _import(data, key=None):
        if isinstance(data, str):
            data = json.loads((DEFINITIONS / data).read_text())
        definition, _ = engine.definition_import(data=data, key=key, actor=system_actor)
        return definition

    return _import


@pytest.fixture
def pizza(import_definition):
    return import_definition("pizza.json", key="pizza")


def task_states(process):
    return {t.name: t.state for t in process.tasks.order_by("id")}


# --- real parts: PostgreSQL, Redis, chromium, a qcluster subprocess -------------------------------

import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

from django.db import connection  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REQUIRE_ALL = os.environ.get("FLOWDESK_REQUIRE_ALL") == "1"


def need(condition: bool, reason: str) -> None:
    """Skip when a real part is missing; in CI (FLOWDESK_REQUIRE_ALL=1) fail instead."""
    if condition:
        return
    if REQUIRE_ALL:
        pytest.fail(f"CI needs this: {reason}")
    pytest.skip(reason)


@pytest.fixture
def postgres(db):
    need(connection.vendor == "postgresql", "needs PostgreSQL (set DATABASE_URL)")


@pytest.fixture(scope="session")
def redis_url():
    url = os.environ.get("FLOWDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        import redis

        redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception:
        need(False, f"needs Redis at {url}")
    return url


@pytest.fixture(scope="session")
def chromium_path():
    path = "/usr/bin/chromium"
    need(os.path.exists(path), "needs Debian's chromium at /usr/bin/chromium")
    return path


def subprocess_env(**extra) -> dict:
    """Environment for a subprocess that must use the test database (not the dev one)."""
    env = dict(os.environ)
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        env["DATABASE_URL"] = (
            f"postgresql://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}"
        )
    else:
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    env.update({k: str(v) for k, v in extra.items()})
    return env


class QCluster:
    """A real ``manage.py qcluster`` subprocess on the test database."""

    def __init__(self, log_path: Path, **env):
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self) -> "QCluster":
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=subprocess_env(**self.env),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL the whole cluster (guard and workers): a crash, not a shutdown."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10) -> None:
        # qcluster can hang on SIGTERM (django-q2 #346): give it a moment, then SIGKILL.
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "log", None):
            self.log.close()

    def manage(self, *args: str, timeout: float = 60) -> str:
        """Run a manage.py command with this cluster's environment (same broker and queue)."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=subprocess_env(**self.env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def qcluster_factory(transactional_db, tmp_path):
    """Start real qcluster subprocesses: ``qcluster_factory(broker="orm"|"redis", **env)``."""
    clusters: list[QCluster] = []
    name = f"t{uuid.uuid4().hex[:8]}"

    def start(broker: str = "orm", **env) -> QCluster:
        env.setdefault("FLOWDESK_Q_NAME", name)
        env.setdefault("FLOWDESK_Q_POLL", "0.1")
        if broker == "redis":
            env.setdefault(
                "FLOWDESK_REDIS_URL",
                os.environ.get("FLOWDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
            )
        else:
            env["FLOWDESK_REDIS_URL"] = ""
        cluster = QCluster(tmp_path / f"qcluster-{len(clusters)}.log", **env).start()
        clusters.append(cluster)
        return cluster

    yield start
    for cluster in clusters:
        cluster.stop()


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    if not predicate():
        raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_ = shutil  # kept for helpers that look up executables


BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture
def browser_page(chromium_path, tmp_path, monkeypatch):
    """A Playwright page in Debian's headless chromium (never a downloaded browser)."""
    from django.db import connections
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test are
    # still synchronous, so tell Django not to refuse them.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path,
            headless=True,
            args=BROWSER_ARGS,
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15000)
        try:
            yield page
        finally:
            context.close()
            browser.close()
            # While that loop runs, asgiref's Local keeps Django's connections per context, not
            # per thread: the ones the test opened here are not the ones closed at teardown.
            # Close them now, or the test database can't be dropped ("1 other session").
            connections.close_all()


# --- the append-only event log and the test database's flush --------------------------------------


def _allow_flush_of_the_event_log() -> None:
    """Django empties a transactional test's database with TRUNCATE, which the event log refuses;
    its owner may purge it on purpose (``SET LOCAL flowdesk.purge = 'on'``, inside the flush's
    own transaction), which is what a test database's flush is."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    if getattr(DatabaseOperations.sql_flush, "_flowdesk", False):
        return
    original = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        statements = original(
            self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
        )
        return ["SET LOCAL flowdesk.purge = 'on'", *statements] if statements else statements

    sql_flush._flowdesk = True
    DatabaseOperations.sql_flush = sql_flush


_allow_flush_of_the_event_log()
